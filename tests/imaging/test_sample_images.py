"""Smoke tests on images that ship with scikit-image (offline), made by a generator other than ours."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import data

from imaging.io import LoadedImage
from imaging.pipeline import ClassicalPipeline


@pytest.mark.parametrize("volume_fraction", [0.05, 0.3])
def test_binary_blobs_as_pores(volume_fraction: float) -> None:
    """Irregular dark blobs on a grey matrix: porosity is their area fraction; nothing else is there."""
    blobs = data.binary_blobs(384, blob_size_fraction=0.06, volume_fraction=volume_fraction, rng=1)
    img = ndi.gaussian_filter(np.where(blobs, 0.15, 0.6), 1.0) + np.random.default_rng(0).normal(0, 0.04, blobs.shape)
    f = ClassicalPipeline(max_line_width_px=2).measure(LoadedImage(np.clip(img, 0, 1).astype(np.float32), 0.1, "x"))
    assert f["porosity"].value == pytest.approx(blobs.mean(), abs=0.01)
    assert f["second_phase_fraction"].value < 0.005
    assert f["crack_count"].value == 0


@pytest.mark.parametrize("name", ["coins", "brick", "gravel"])
def test_natural_images_give_finite_features(name: str) -> None:
    img = getattr(data, name)().astype(np.float32) / 255.0
    f = ClassicalPipeline().measure(LoadedImage(img, 0.5, "x"))
    assert all(math.isfinite(e.value) and math.isfinite(e.sigma) and e.sigma >= 0 for e in f.values())
    assert 0 <= f["porosity"].value <= 1 and 0 <= f["second_phase_fraction"].value <= 1
