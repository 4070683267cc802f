"""Size distributions and pores: exact discs, grids of grains, bootstrap determinism and scale equivariance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from imaging.distributions import bootstrap_percentiles, ecd, percentiles
from imaging.estimate import subfields
from imaging.neural import labels_to_segmentation
from imaging.pores import blobs, pore_features
from imaging.quantify import FEATURE_UNITS, grain_percentiles, measure

CLASSES = ("matrix", "second_phase", "pore", "boundary", "crack")
RADII = (3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0, 14.0)


def discs(shape: tuple[int, int], centres: list[tuple[int, int]], radii: tuple[float, ...]) -> NDArray[np.bool_]:
    rr, cc = np.indices(shape)
    out = np.zeros(shape, dtype=bool)
    for (r, c), rad in zip(centres, radii, strict=True):
        out |= (rr - r) ** 2 + (cc - c) ** 2 <= rad * rad
    return out


def disc_field() -> NDArray[np.bool_]:
    centres = [(40 + 80 * (i // 5), 40 + 70 * (i % 5)) for i in range(len(RADII))]
    return discs((160, 360), centres, RADII)


def test_disc_pores_count_and_size_exact_within_a_pixel() -> None:
    mask = disc_field()
    b = blobs(mask)
    assert b.area_px.size == len(RADII) and not b.cut.any()
    assert np.abs(np.sort(b.inner_ecd_px) - 2 * np.array(RADII)).max() < 1.0
    px = 0.25
    f = pore_features(mask, (mask, mask), subfields(mask.shape, 2), px)
    assert f["pore_count"].value == len(RADII) and f["pore_count"].sigma >= math.sqrt(len(RADII))
    assert abs(f["pore_size_um"].value - 2 * np.mean(RADII) * px) < px
    assert abs(f["pore_size_d90_um"].value - np.percentile(2 * np.array(RADII), 90) * px) < px
    assert all(e.sigma > 0 for e in f.values())


def test_pores_cut_by_the_edge_count_but_do_not_size() -> None:
    mask = disc_field()
    mask[:3, :] = True  # a slit pore along the top edge
    f = pore_features(mask, (mask, mask), subfields(mask.shape, 2), 1.0)
    assert f["pore_count"].value == len(RADII) + 1
    assert abs(f["pore_size_um"].value - 2 * np.mean(RADII)) < 1.0


def test_no_pores() -> None:
    mask = np.zeros((64, 64), dtype=bool)
    f = pore_features(mask, (mask, mask), subfields(mask.shape, 3), 0.5)
    assert f["pore_count"].value == 0 and f["pore_count"].sigma == 1.0
    assert f["pore_size_um"].value == 0 and f["pore_size_um"].sigma == pytest.approx(float(ecd([4])[0]) * 0.5)


def test_pore_threshold_sensitivity_widens_sigma() -> None:
    mask = disc_field()
    smaller = blobs(mask).labels > 0
    smaller[:, ::7] = False  # cut pores apart: more, smaller pores at one threshold
    same = pore_features(mask, (mask, mask), subfields(mask.shape, 2), 1.0)
    moved = pore_features(mask, (smaller, mask), subfields(mask.shape, 2), 1.0)
    for name in same:
        assert moved[name].value == same[name].value and moved[name].sigma > same[name].sigma


def grid_labels(size: int = 240, side: int = 24) -> NDArray[np.uint8]:
    """Class labels: matrix with 1-px boundary lines every ``side`` px (offset ½ side)."""
    lab = np.zeros((size, size), dtype=np.uint8)
    lines = np.arange(side // 2, size, side)
    lab[lines, :] = CLASSES.index("boundary")
    lab[:, lines] = CLASSES.index("boundary")
    return lab


def test_grid_of_grains_percentiles_and_planimetric() -> None:
    side, px = 24, 0.5
    seg = labels_to_segmentation(grid_labels(side=side), np.zeros((240, 240), np.float32), CLASSES)
    f = grain_percentiles(seg, px, 9.0)
    for name in ("grain_size_d10_um", "grain_size_d50_um", "grain_size_d90_um"):
        # the boundary pixels are shared out among the grains: each holds side² ± one boundary row
        assert f[name].value == pytest.approx(2 * side / math.sqrt(math.pi) * px, rel=0.05)
    assert f["grain_size_d10_um"].value <= f["grain_size_d50_um"].value <= f["grain_size_d90_um"].value
    all_features = measure(seg, px, k=3, min_grain_area_px=9.0)
    assert set(all_features) == set(FEATURE_UNITS)
    assert all_features["grain_size_planimetric_um"].value == pytest.approx(side * px, rel=0.01)
    assert all_features["pore_count"].value == 0


def test_bootstrap_is_deterministic_and_shrinks_with_n() -> None:
    rng = np.random.default_rng(1)
    small, large = rng.lognormal(2, 0.4, 30), rng.lognormal(2, 0.4, 3000)
    assert bootstrap_percentiles(small, (10, 50, 90)) == bootstrap_percentiles(small, (10, 50, 90))
    s_small = [e.sigma for e in bootstrap_percentiles(small, (50,))]
    s_large = [e.sigma for e in bootstrap_percentiles(large, (50,))]
    assert s_large[0] < s_small[0] / 4


def test_one_and_no_values() -> None:
    [one] = bootstrap_percentiles([5.0], (90,))
    assert one.value == 5.0 and one.sigma == 5.0
    [none] = bootstrap_percentiles([], (90,))
    assert math.isnan(none.value)


sizes = st.lists(st.floats(min_value=0.1, max_value=1e3, allow_nan=False), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(values=sizes)
def test_percentiles_are_ordered(values: list[float]) -> None:
    d10, d50, d90 = bootstrap_percentiles(values, (10, 50, 90))
    assert d10.value <= d50.value <= d90.value
    assert min(values) <= d10.value and d90.value <= max(values)
    assert all(e.sigma >= 0 for e in (d10, d50, d90))


@settings(max_examples=60, deadline=None)
@given(values=sizes, scale=st.floats(min_value=0.01, max_value=100.0))
def test_percentiles_scale_with_the_unit(values: list[float], scale: float) -> None:
    base = bootstrap_percentiles(values, (10, 50, 90))
    scaled = bootstrap_percentiles([v * scale for v in values], (10, 50, 90))
    for a, b in zip(base, scaled, strict=True):
        assert b.value == pytest.approx(a.value * scale, rel=1e-9)
        # equal values leave a bootstrap σ of rounding noise (~1e-14 of the value), which scales only roughly
        assert b.sigma == pytest.approx(a.sigma * scale, rel=1e-9, abs=1e-12 * max(values) * max(scale, 1.0))


@settings(max_examples=15, deadline=None)
@given(px=st.floats(min_value=0.01, max_value=10.0))
def test_pore_features_scale_with_pixel_size(px: float) -> None:
    mask = disc_field()
    one = pore_features(mask, (mask, mask), subfields(mask.shape, 2), 1.0)
    other = pore_features(mask, (mask, mask), subfields(mask.shape, 2), px)
    assert other["pore_count"] == one["pore_count"]
    for name in ("pore_size_um", "pore_size_d90_um"):
        assert other[name].value == pytest.approx(one[name].value * px, rel=1e-9)
        assert other[name].sigma == pytest.approx(one[name].sigma * px, rel=1e-9)


def test_ecd_and_plain_percentiles() -> None:
    assert ecd([math.pi])[0] == pytest.approx(2.0)
    assert percentiles([1, 2, 3, 4, 5], (0, 50, 100)) == [1.0, 3.0, 5.0]
