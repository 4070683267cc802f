"""Grain size by the planimetric (Jeffries) method of ASTM E112: grains counted per unit area of a label map.

N_A = (grains wholly inside the field + ½ grains cut by its edge + ¼ grains at its corners) / area (E112's count
for a rectangle, N_inside + ½·N_intercepted + 1, the four corner grains counting ¼ each), the area being the pixels
that lie in grains (pores and cracks are no grain area). The mean grain diameter is reported as d̄ = 1/√N_A (E112's
convention: the side of a square of the mean grain area), and G = 3.321928·log10(N_A) − 2.954 with N_A in mm⁻²
at 1× (E112, Table 4: G = 0 ↔ N_A = 7.75 mm⁻², G = 8 ↔ 1984 mm⁻², d̄ = 22.5 µm).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from imaging.estimate import Estimate, Tile, field_se

G_SLOPE = 3.321928  # 1/log10(2): G goes up by one when N_A doubles
G_OFFSET = 2.954


def jeffries_count(labels: NDArray[np.integer]) -> tuple[int, int, int, int]:
    """(grains wholly inside, grains cut by an edge but at no corner, grains at a corner, grain pixels) of a label
    map (0 is no grain)."""
    lab = np.asarray(labels)
    present = np.unique(lab[lab > 0])
    if present.size == 0:
        return 0, 0, 0, 0
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    corner = np.unique(lab[[0, 0, -1, -1], [0, -1, 0, -1]])
    corners = int((corner > 0).sum())
    cut = int(np.isin(present, edge[edge > 0]).sum()) - corners
    return int(present.size) - cut - corners, cut, corners, int((lab > 0).sum())


def grains_per_area(labels: NDArray[np.integer]) -> tuple[float, float]:
    """(N_A in grains per px², effective grain count n_inside + ½ n_cut + ¼ n_corner); N_A is NaN without grain
    area."""
    inside, cut, corners, area = jeffries_count(labels)
    n = inside + 0.5 * cut + 0.25 * corners
    return (n / area if area else math.nan), n


def mean_diameter(grains_per_px2: float) -> float:
    """Planimetric mean grain diameter d̄ = 1/√N_A, in the length unit of N_A's area (NaN for no grains)."""
    return 1.0 / math.sqrt(grains_per_px2) if grains_per_px2 > 0 else math.nan


def astm_number_from_density(n_per_mm2: float) -> float:
    """ASTM E112 grain size number from grains per mm² at 1×: G = 3.321928·log10(N_A) − 2.954."""
    return G_SLOPE * math.log10(n_per_mm2) - G_OFFSET


def astm_number_from_diameter(diameter_um: float) -> float:
    """G from the planimetric mean diameter d̄ = 1/√N_A in µm (N_A = 1/d̄² in mm⁻²)."""
    return astm_number_from_density(1.0 / (diameter_um * 1e-3) ** 2)


def astm_sigma_from_diameter(diameter_um: float, sigma_um: float) -> float:
    """σ of G from σ of d̄: G = −2·3.321928·log10(d̄) + const, so σ_G = 2·3.321928/ln 10 · σ/d̄."""
    return 2.0 * G_SLOPE / math.log(10.0) * sigma_um / diameter_um


def planimetric_size(
    labels: NDArray[np.integer], grain_counts: tuple[int, int, int], tiles: list[Tile], pixel_size_um: float
) -> Estimate:
    """Planimetric mean grain diameter d̄ = 1/√N_A in µm. σ: the larger of the subfield spread (each tile counted
    by Jeffries on its own) and counting (Poisson on the effective count n: σ_d/d̄ = ½/√n), with half the change
    of d̄ when the ridge thresholds move (``grain_counts``: as used, lowered, raised), in quadrature."""
    n_a, n = grains_per_area(labels)
    if not n > 0:
        size = float(min(labels.shape)) * pixel_size_um
        return Estimate(size, size)
    d = mean_diameter(n_a)
    counting = 0.5 * d / math.sqrt(n)
    sampling = max(field_se(tiles, lambda t: mean_diameter(grains_per_area(labels[t])[0])), counting)
    c, c_lo, c_hi = (max(x, 1) for x in grain_counts)
    seg = 0.5 * d * abs(math.sqrt(c / c_lo) - math.sqrt(c / c_hi))
    return Estimate(d * pixel_size_um, math.hypot(sampling, seg) * pixel_size_um)


def planimetric_features(
    labels: NDArray[np.integer], grain_counts: tuple[int, int, int], tiles: list[Tile], pixel_size_um: float
) -> dict[str, Estimate]:
    """``grain_size_planimetric_um`` and ``astm_grain_number_planimetric`` of one grain label map."""
    d = planimetric_size(labels, grain_counts, tiles, pixel_size_um)
    return {"grain_size_planimetric_um": d, "astm_grain_number_planimetric": planimetric_astm(d)}


def planimetric_astm(d: Estimate) -> Estimate:
    """G and its σ from the planimetric mean diameter in µm."""
    return Estimate(astm_number_from_diameter(d.value), astm_sigma_from_diameter(d.value, d.sigma))
