"""Draws a microstructure on the pixel grid as ground-truth masks: grains, boundaries, phases, pores, cracks.

The grains are a Laguerre tessellation whose seed density gives the requested mean linear intercept (for a
2-D Poisson–Voronoi tessellation of intensity λ, the mean intercept is π/(4√λ)) and whose weights widen the
grain-size distribution to the requested lognormal spread (calibrated: σ_ln(ECD) ≈ 0.28 without weights).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from instruments.sim.shapes import boolean_discs, crack_paths, fill_to_fraction
from instruments.sim.tessellation import laguerre_labels

MATRIX, SECOND_PHASE, PORE, CRACK = 0, 1, 2, 3
PHASE_NAMES = {MATRIX: "matrix", SECOND_PHASE: "second_phase", PORE: "pore", CRACK: "crack"}
_VORONOI_SIGMA_LN = 0.28


@dataclass(frozen=True)
class Microstructure:
    """What the renderer needs to know about a sample (lengths in µm, fractions by area = by volume)."""

    grain_size_um: float
    grain_size_sigma_ln: float = 0.35
    second_phase_fraction: float = 0.0
    particle_radius_um: float = 0.5
    boundary_phase_fraction: float = 0.0
    porosity: float = 0.0
    pore_radius_um: float = 1.0
    crack_density_per_mm2: float = 0.0
    crack_length_um: float = 20.0
    deformed_fraction: float = 0.0

    @classmethod
    def from_truth(cls, truth: Mapping[str, Any]) -> Microstructure:
        """Reads a sample's ground truth (keys named as the fields; ``boundary_precipitate_fraction`` too)."""

        def get(key: str, default: float) -> float:
            value = truth.get(key, default)
            return float(default if value is None else value)

        if "grain_size_um" not in truth:
            raise ValueError("the sample's truth has no grain_size_um: nothing to draw")
        return cls(
            grain_size_um=get("grain_size_um", 10.0),
            grain_size_sigma_ln=get("grain_size_sigma_ln", 0.35),
            second_phase_fraction=get("second_phase_fraction", 0.0),
            particle_radius_um=get("particle_radius_um", 0.5),
            boundary_phase_fraction=get("boundary_precipitate_fraction", get("boundary_phase_fraction", 0.0)),
            porosity=get("porosity", 0.0),
            pore_radius_um=get("pore_radius_um", 1.0),
            crack_density_per_mm2=get("crack_density_per_mm2", 0.0),
            crack_length_um=get("crack_length_um", 20.0),
            deformed_fraction=get("deformed_fraction", 0.0),
        )


@dataclass(frozen=True)
class Masks:
    """Ground truth of one field. ``phase``: MATRIX/SECOND_PHASE/PORE/CRACK per pixel (later ones win)."""

    grains: NDArray[np.int32]  # grain label per pixel (matrix grains, also under particles and pores)
    boundary: NDArray[np.bool_]  # one-pixel grain boundaries
    phase: NDArray[np.uint8]
    crack_paths: list[NDArray[np.intp]]  # centre lines as pixel paths, for crack length
    deformed_grains: NDArray[np.bool_]  # per grain label: not yet recrystallized

    @property
    def pore(self) -> NDArray[np.bool_]:
        return self.phase == PORE

    @property
    def second_phase(self) -> NDArray[np.bool_]:
        return self.phase == SECOND_PHASE

    @property
    def crack(self) -> NDArray[np.bool_]:
        return self.phase == CRACK


def grain_boundaries(labels: NDArray[np.int32]) -> NDArray[np.bool_]:
    """Pixels whose right or lower neighbour belongs to another grain."""
    b = np.zeros(labels.shape, dtype=bool)
    b[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    b[:-1, :] |= labels[1:, :] != labels[:-1, :]
    return b


def render_masks(ms: Microstructure, shape: tuple[int, int], pixel_size_um: float, rng: np.random.Generator) -> Masks:
    """Draws ``ms`` on a ``shape`` field of ``pixel_size_um`` pixels; ``rng`` fixes every random choice."""
    h, w = shape
    px = float(pixel_size_um)
    labels = _grains(ms, shape, px, rng)
    boundary = grain_boundaries(labels)
    phase = np.zeros(shape, dtype=np.uint8)

    second = boolean_discs(shape, ms.second_phase_fraction, max(ms.particle_radius_um / px, 0.3), rng)
    if ms.boundary_phase_fraction > 0:
        sites = np.flatnonzero(boundary.ravel())
        fill_to_fraction(
            second, float(second.mean()) + ms.boundary_phase_fraction, max(0.3 / px, 0.6), rng, sites=sites
        )
    phase[second] = SECOND_PHASE

    if ms.porosity > 0:
        pores = np.zeros(shape, dtype=bool)
        # pores sit mostly on grain boundaries and triple junctions, the rest inside grains
        sites = np.flatnonzero(boundary.ravel())
        fill_to_fraction(pores, 0.7 * ms.porosity, max(ms.pore_radius_um / px, 0.5), rng, sites=sites, spread=0.4)
        fill_to_fraction(pores, ms.porosity, max(ms.pore_radius_um / px, 0.5), rng, spread=0.4)
        phase[pores] = PORE

    n_cracks = rng.poisson(ms.crack_density_per_mm2 * h * w * (px * 1e-3) ** 2)
    paths = crack_paths(shape, int(n_cracks), ms.crack_length_um / px, max(ms.grain_size_um / px * 0.6, 3.0), rng)
    if paths:
        centre = np.zeros(shape, dtype=bool)
        for p in paths:
            centre[p[:, 0], p[:, 1]] = True
        wide = centre.copy()  # cracks open about two pixels wide
        wide[:, 1:] |= centre[:, :-1]
        phase[wide] = CRACK

    n_grains = int(labels.max()) + 1
    deformed = rng.random(n_grains) < ms.deformed_fraction
    return Masks(labels, boundary, phase, paths, deformed)


def _grains(ms: Microstructure, shape: tuple[int, int], px: float, rng: np.random.Generator) -> NDArray[np.int32]:
    h, w = shape
    intercept = max(ms.grain_size_um / px, 1.5)
    extra = max(ms.grain_size_sigma_ln**2 - _VORONOI_SIGMA_LN**2, 0.0)
    sigma_w = min(np.sqrt(extra) / 1.25, 0.6)
    lam = (np.pi / (4.0 * intercept)) ** 2 * (1.0 + 0.55 * sigma_w**2) ** 2
    margin = 3.0 * intercept
    area = (h + 2 * margin) * (w + 2 * margin)
    n = max(int(rng.poisson(lam * area)), 2)
    seeds = rng.uniform([-margin, -margin], [h + margin, w + margin], size=(n, 2))
    weights = (0.5 * intercept * np.exp(sigma_w * rng.standard_normal(n))) ** 2 if sigma_w > 0 else None
    labels = laguerre_labels(shape, seeds, weights)
    # renumber to 0..n_visible-1 so the labels are compact
    present = np.bincount(labels.ravel(), minlength=n) > 0
    remap = (np.cumsum(present) - 1).astype(np.int32)
    return remap[labels]
