from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pydantic import ValidationError

from imaging.normalize import PercentileStretch

finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)
images = hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=24), elements=finite)
stretches = st.builds(
    lambda lo, width: PercentileStretch(low_pct=lo, high_pct=min(lo + width, 100.0)),
    st.floats(0.0, 60.0),
    st.floats(0.5, 60.0),
)


@settings(max_examples=80, deadline=None)
@given(image=images, stretch=stretches)
def test_output_is_in_unit_range_and_monotone(image: np.ndarray, stretch: PercentileStretch) -> None:
    out = stretch.transform(image)
    assert out.dtype == np.float32 and out.shape == image.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    order = np.argsort(image, axis=None, kind="stable")
    assert np.all(np.diff(out.ravel()[order]) >= 0)  # larger input never maps lower


@settings(max_examples=40, deadline=None)
@given(reference=images, other=images, stretch=stretches)
def test_fitted_stretch_is_monotone_on_new_images_and_round_trips(
    reference: np.ndarray, other: np.ndarray, stretch: PercentileStretch
) -> None:
    fitted = stretch.fit(reference)
    assert fitted.fitted
    restored = PercentileStretch.model_validate(fitted.model_dump())
    assert restored == fitted
    out = restored.transform(other)
    assert out.min() >= 0.0 and out.max() <= 1.0
    order = np.argsort(other, axis=None, kind="stable")
    assert np.all(np.diff(out.ravel()[order]) >= 0)


def test_percentiles_map_to_zero_and_one() -> None:
    image = np.arange(1001, dtype=np.float64)
    out = PercentileStretch(low_pct=10, high_pct=90).transform(image)
    assert out[100] == 0.0 and out[900] == 1.0 and out[500] == pytest.approx(0.5)


def test_nan_and_flat_images_stay_in_range() -> None:
    assert PercentileStretch().transform(np.full((4, 4), 7.0)).max() == 0.0
    out = PercentileStretch().transform(np.array([[np.nan, 1.0], [2.0, 3.0]]))
    assert out[0, 0] == 0.0 and np.isfinite(out).all()


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValidationError):
        PercentileStretch(low_pct=60, high_pct=40)
    with pytest.raises(ValidationError):
        PercentileStretch(low=0.1)
    with pytest.raises(ValidationError):
        PercentileStretch.model_validate({"type": "percentile_stretch", "gamma": 2})
