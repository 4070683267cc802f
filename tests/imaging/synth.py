"""Synthetic micrographs with known truth for the imaging tests, independent of any generator in the package.

A hard-core Voronoi tessellation gives grains with slightly different grey levels, separated by dark grooves;
some whole grains are a bright second phase; dark circular pores and a few dark thin cracks are drawn on top;
then blur, noise and (optionally) shading. The truth is measured on the ideal label image with the same
definitions the pipeline uses (mean lineal intercept over every row and column of the solid).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.measure import regionprops

MATRIX, SECOND, VOID, GROOVE_DEPTH = 0.50, 0.80, 0.08, 0.24


@dataclass(frozen=True)
class Micrograph:
    """A synthetic image (float32 in [0, 1]) and its ground truth; lengths in pixels unless named ``_um``."""

    image: NDArray[np.float32]
    labels: NDArray[np.int32]  # grain id ≥ 1 in the solid, 0 in pores and cracks
    pores: NDArray[np.bool_]
    second: NDArray[np.bool_]
    cracks: NDArray[np.bool_]
    crack_lengths_px: tuple[float, ...]
    pixel_size_um: float

    @property
    def porosity(self) -> float:
        return float(self.pores.mean())

    @property
    def second_phase_fraction(self) -> float:
        """Second-phase area over the total image area (pores included in the denominator)."""
        return float(self.second.mean())

    @property
    def intercept_um(self) -> float:
        return reference_intercept_px(self.labels) * self.pixel_size_um

    @property
    def ecd_um(self) -> float:
        """Mean equivalent-circle diameter of grains that do not touch the image border."""
        h, w = self.labels.shape
        diam = [
            r.equivalent_diameter_area
            for r in regionprops(self.labels)
            if r.bbox[0] > 0 and r.bbox[1] > 0 and r.bbox[2] < h and r.bbox[3] < w
        ]
        return float(np.mean(diam)) * self.pixel_size_um

    @property
    def crack_length_um(self) -> float:
        return float(sum(self.crack_lengths_px)) * self.pixel_size_um


def reference_intercept_px(labels: NDArray[np.integer]) -> float:
    """Mean lineal intercept of a label image (0 = void) over all rows and columns: solid length / boundary count."""
    solid = labels > 0
    length = 2 * int(solid.sum())
    crossings = 0
    for a in (labels, labels.T):
        left, right = a[:, :-1], a[:, 1:]
        crossings += int(((left != right) & (left > 0) & (right > 0)).sum())
    return length / max(crossings, 1)


def _hard_core_seeds(rng: np.random.Generator, n: int, size: int) -> NDArray[np.float64]:
    """``n`` points in the square with a minimum spacing of half the mean spacing (more even grains than Poisson)."""
    min_d = 0.5 * size / np.sqrt(n)
    pts: list[NDArray[np.float64]] = []
    while len(pts) < n:
        p = rng.uniform(0, size, 2)
        if all(np.hypot(*(p - q)) >= min_d for q in pts):
            pts.append(p)
    return np.array(pts)


def _segment_distance(
    yy: NDArray[np.float64], xx: NDArray[np.float64], a: NDArray[np.float64], b: NDArray[np.float64]
) -> NDArray[np.float64]:
    d = b - a
    t = np.clip(((yy - a[0]) * d[0] + (xx - a[1]) * d[1]) / float(d @ d), 0.0, 1.0)
    return np.hypot(yy - (a[0] + t * d[0]), xx - (a[1] + t * d[1]))


def make_micrograph(
    *,
    size: int = 512,
    n_grains: int = 120,
    porosity: float = 0.05,
    second_fraction: float = 0.15,
    n_cracks: int = 2,
    boundary_width_px: float = 2.5,
    pore_radius_px: tuple[float, float] = (4.0, 11.0),
    noise: float = 0.03,
    blur_px: float = 0.8,
    shading: float = 0.0,
    grain_contrast: float = 0.03,
    pixel_size_um: float = 0.1,
    seed: int = 0,
) -> Micrograph:
    """A micrograph with the given structure; ``noise`` is the std of additive Gaussian noise on a [0, 1] scale."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    seeds = _hard_core_seeds(rng, n_grains, size)
    dist, idx = cKDTree(seeds).query(np.stack([yy.ravel(), xx.ravel()], 1), k=2)
    labels = (idx[:, 0] + 1).reshape(size, size).astype(np.int32)
    # distance to the Voronoi edge between the nearest and second-nearest seed
    gap = np.linalg.norm(seeds[idx[:, 1]] - seeds[idx[:, 0]], axis=1)
    edge = ((dist[:, 1] ** 2 - dist[:, 0] ** 2) / (2 * gap)).reshape(size, size)

    second_ids: list[int] = []
    for gid in rng.permutation(n_grains) + 1:
        if np.isin(labels, second_ids).mean() >= second_fraction:
            break
        second_ids.append(int(gid))
    second = np.isin(labels, second_ids)

    level = np.where(second, SECOND, MATRIX) + rng.uniform(-grain_contrast, grain_contrast, n_grains + 1)[labels]
    fwhm_sigma = boundary_width_px / 2.355
    image = level - GROOVE_DEPTH * np.exp(-0.5 * (edge / fwhm_sigma) ** 2)

    pores = np.zeros((size, size), dtype=bool)
    while pores.mean() < porosity:
        r = rng.uniform(*pore_radius_px)
        cy, cx = rng.uniform(r, size - r, 2)
        pores |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r

    cracks = np.zeros((size, size), dtype=bool)
    lengths: list[float] = []
    for _ in range(n_cracks):
        length = rng.uniform(0.3, 0.5) * size
        start = rng.uniform(0.1 * size, 0.9 * size, 2)
        angle = rng.uniform(0, np.pi)
        pts = [start]
        for _seg in range(3):
            angle += rng.uniform(-0.3, 0.3)
            step = length / 3 * np.array([np.sin(angle), np.cos(angle)])
            pts.append(np.clip(pts[-1] + step, 8, size - 8))
        crack_dist = np.min([_segment_distance(yy, xx, a, b) for a, b in itertools.pairwise(pts)], 0)
        cracks |= crack_dist <= 1.25
        lengths.append(float(sum(np.hypot(*(b - a)) for a, b in itertools.pairwise(pts))))

    void = pores | cracks
    image = np.where(void, VOID, image)
    if blur_px > 0:
        image = ndi.gaussian_filter(image, blur_px)
    if shading:
        image = image * (1 + shading * (xx / size - 0.5))
    image = image + rng.normal(0.0, noise, image.shape) if noise > 0 else image
    labels = np.where(void, 0, labels).astype(np.int32)
    return Micrograph(
        image=np.clip(image, 0, 1).astype(np.float32),
        labels=labels,
        pores=pores,
        second=second & ~void,
        cracks=cracks & ~pores,
        crack_lengths_px=tuple(lengths),
        pixel_size_um=pixel_size_um,
    )
