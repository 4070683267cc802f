"""Rasterizes the features of a microstructure: discs (particles, pores) and cracks (polylines), vectorized."""

from __future__ import annotations

import itertools

import numpy as np
from numpy.typing import NDArray
from skimage.draw import line

BoolImage = NDArray[np.bool_]


def draw_discs(mask: BoolImage, centres: NDArray[np.floating], radii: NDArray[np.floating]) -> None:
    """Sets every pixel whose centre lies within a disc (in place). centres ``N x 2`` (row, col), radii ``N`` (px).

    Discs are grouped by size so each group is one vectorized stamp; a disc smaller than a pixel still covers,
    on average over its random position, its true area (the pixel-centre test is unbiased).
    """
    if len(centres) == 0:
        return
    h, w = mask.shape
    radii = np.asarray(radii, dtype=np.float64)
    reach = np.ceil(radii).astype(int)
    for r_int in np.unique(reach):
        sel = reach == r_int
        c, r = centres[sel], radii[sel]
        oy, ox = np.mgrid[-r_int : r_int + 1, -r_int : r_int + 1]
        oy, ox = oy.ravel(), ox.ravel()
        base = np.round(c).astype(int)
        frac = c - base  # sub-pixel position of each centre
        py = base[:, 0, None] + oy[None, :]
        px = base[:, 1, None] + ox[None, :]
        inside = (oy[None, :] - frac[:, 0, None]) ** 2 + (ox[None, :] - frac[:, 1, None]) ** 2 <= r[:, None] ** 2
        inside &= (py >= 0) & (py < h) & (px >= 0) & (px < w)
        mask[py[inside], px[inside]] = True


def fill_to_fraction(
    mask: BoolImage,
    target: float,
    mean_radius_px: float,
    rng: np.random.Generator,
    *,
    sites: NDArray[np.intp] | None = None,
    spread: float = 0.3,
    max_rounds: int = 8,
) -> None:
    """Adds discs (lognormal radii) until ``mask`` covers about ``target`` of the image (in place).

    Each round adds the number of discs a Boolean model needs for the remaining fraction, so overlaps are
    accounted for; ``sites`` (flat pixel indices) restricts the disc centres, e.g. to grain boundaries.
    """
    h, w = mask.shape
    area = float(h * w)
    mean_r2 = mean_radius_px**2 * np.exp(2 * spread**2)
    for _ in range(max_rounds):
        current = float(mask.mean())
        missing = target - current
        if missing <= 0.5 / area or current >= 0.999:
            return
        need = -np.log1p(-min(missing / (1.0 - current), 0.999)) * area / (np.pi * mean_r2)
        n = int(np.ceil(need))
        n = min(n, 2_000_000)
        if sites is not None and len(sites) > 0:
            flat = rng.choice(sites, size=n)
            centres = np.column_stack([flat // w, flat % w]).astype(np.float64) + rng.uniform(-0.5, 0.5, (n, 2))
        else:
            centres = rng.uniform([-0.5, -0.5], [h - 0.5, w - 0.5], size=(n, 2))
        radii = mean_radius_px * np.exp(spread * rng.standard_normal(n))
        draw_discs(mask, centres, radii)


def boolean_discs(
    shape: tuple[int, int], fraction: float, mean_radius_px: float, rng: np.random.Generator, spread: float = 0.3
) -> BoolImage:
    """A Boolean model of discs whose expected area fraction is ``fraction`` (field-to-field scatter included)."""
    mask = np.zeros(shape, dtype=bool)
    if fraction <= 0:
        return mask
    h, w = shape
    margin = 3.0 * mean_radius_px
    area = (h + 2 * margin) * (w + 2 * margin)
    mean_r2 = mean_radius_px**2 * np.exp(2 * spread**2)
    n = rng.poisson(-np.log1p(-min(fraction, 0.95)) * area / (np.pi * mean_r2))
    centres = rng.uniform([-margin, -margin], [h + margin, w + margin], size=(n, 2))
    draw_discs(mask, centres, mean_radius_px * np.exp(spread * rng.standard_normal(n)))
    return mask


def crack_paths(
    shape: tuple[int, int], count: int, length_px: float, step_px: float, rng: np.random.Generator
) -> list[NDArray[np.intp]]:
    """``count`` cracks as 8-connected pixel paths (``K x 2`` row, col) inside the image: persistent random walks.

    Each crack zigzags with a step of about a grain facet (``step_px``) and a slowly turning direction.
    """
    h, w = shape
    paths: list[NDArray[np.intp]] = []
    for _ in range(count):
        n_steps = max(2, int(np.ceil(length_px / max(step_px, 2.0))))
        angle = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0.0, 0.3, n_steps))
        angle += rng.choice([-0.6, 0.6], n_steps)  # zigzag along grain facets
        step = np.column_stack([np.sin(angle), np.cos(angle)]) * step_px
        start = rng.uniform([0, 0], [h, w])
        pts = np.vstack([start, start + np.cumsum(step, axis=0)])
        pts -= pts.mean(axis=0) - start  # centre the crack on its start point
        rows: list[NDArray[np.intp]] = []
        cols: list[NDArray[np.intp]] = []
        for (y0, x0), (y1, x1) in itertools.pairwise(pts):
            rr, cc = line(round(y0), round(x0), round(y1), round(x1))
            rows.append(rr[:-1])
            cols.append(cc[:-1])
        path = np.column_stack([np.concatenate(rows), np.concatenate(cols)])
        inside = (path[:, 0] >= 0) & (path[:, 0] < h) & (path[:, 1] >= 0) & (path[:, 1] < w)
        if inside.any():
            paths.append(path[inside])
    return paths


def path_length_px(path: NDArray[np.intp]) -> float:
    """Length of an 8-connected pixel path: 1 per axial step, √2 per diagonal step (jumps at the edge skipped)."""
    if len(path) < 2:
        return float(len(path))
    d = np.abs(np.diff(path, axis=0))
    step = d.max(axis=1)
    ok = step == 1
    return float(np.where(d[ok].min(axis=1) == 1, np.sqrt(2.0), 1.0).sum())
