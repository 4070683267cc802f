from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree
from skimage.segmentation import find_boundaries

from imaging.intercept import astm_grain_number, astm_sigma, intercept_counts, mean_intercept


def voronoi_boundaries(seed: int, n: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    _, labels = cKDTree(rng.uniform(0, size, (n, 2))).query(np.stack([yy.ravel(), xx.ravel()], 1))
    return find_boundaries(labels.reshape(size, size), mode="inner")


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 40), pore=st.integers(0, 12))
def test_half_pixel_size_on_a_2x_upsampled_image_gives_the_same_intercept(seed: int, n: int, pore: int) -> None:
    size = 64
    boundaries = voronoi_boundaries(seed, n, size)
    solid = np.ones((size, size), dtype=bool)
    solid[20 : 20 + pore, 30 : 30 + pore] = False  # a square pore
    coarse = mean_intercept(boundaries, solid, pixel_size=1.0)
    up = np.ones((2, 2), dtype=bool)
    fine = mean_intercept(np.kron(boundaries, up).astype(bool), np.kron(solid, up).astype(bool), pixel_size=0.5)
    assert fine == pytest.approx(coarse, rel=1e-9)


@settings(max_examples=30, deadline=None)
@given(spacing=st.integers(3, 30), width=st.integers(1, 2))
def test_parallel_lines_are_counted_once_per_crossing(spacing: int, width: int) -> None:
    size = 240
    boundaries = np.zeros((size, size), dtype=bool)
    for c in range(0, size, spacing):
        boundaries[:, c : c + width] = True
    length, n = intercept_counts(boundaries, np.ones_like(boundaries))
    lines = len(range(0, size, spacing))
    # every row crosses every line once (however wide); a column lying in a line is one run
    assert n == size * lines + int(boundaries[0].sum())
    assert length == 2 * size * size


def test_margin_drops_the_edge_lines_and_pores_shorten_the_test_line() -> None:
    boundaries = np.zeros((20, 20), dtype=bool)
    boundaries[:, 10] = True
    solid = np.ones((20, 20), dtype=bool)
    assert intercept_counts(boundaries, solid) == (800.0, 21)
    assert intercept_counts(boundaries, solid, margin=2) == (2 * 16 * 16.0, 17)
    solid[:, 12:15] = False
    assert intercept_counts(boundaries, solid)[0] == 2 * 20 * 17


def test_no_boundary_means_grains_at_least_the_field() -> None:
    assert mean_intercept(np.zeros((10, 10), bool), np.ones((10, 10), bool), 2.0) == 400.0


def test_astm_number_matches_e112_table() -> None:
    # ASTM E112 Table 4: G = 0 ↔ ℓ̄ = 0.32 mm; G = 8 ↔ 0.0200 mm; each +1 in G divides ℓ̄ by √2
    assert astm_grain_number(320.0) == pytest.approx(0.0, abs=0.01)
    assert astm_grain_number(20.0) == pytest.approx(8.0, abs=0.01)
    assert astm_grain_number(20.0 / np.sqrt(2)) - astm_grain_number(20.0) == pytest.approx(1.0, abs=1e-3)
    assert astm_sigma(20.0, 2.0) == pytest.approx(6.6457 / np.log(10) * 0.1)
