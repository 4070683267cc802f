from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from imaging.io import LoadedImage
from imaging.pipeline import ClassicalPipeline
from imaging.quantify import Estimate
from tests.imaging.synth import Micrograph, make_micrograph

# Micrographs shared by several tests (each takes ~0.2 s to draw and ~0.3 s to analyze).
SHARP: dict[str, Any] = {"noise": 0.03, "blur_px": 0.8}
NOISY: dict[str, Any] = {"noise": 0.12, "blur_px": 2.0}


@pytest.fixture(scope="session")
def sharp() -> Micrograph:
    return make_micrograph(seed=0, **SHARP)


@pytest.fixture(scope="session")
def noisy() -> Micrograph:
    """The same structure as ``sharp`` (same seed), imaged with heavy noise and blur."""
    return make_micrograph(seed=0, **NOISY)


@pytest.fixture(scope="session")
def pipeline() -> ClassicalPipeline:
    return ClassicalPipeline()


def measure(pipeline: ClassicalPipeline, m: Micrograph) -> dict[str, Estimate]:
    return pipeline.measure(LoadedImage(m.image, m.pixel_size_um, "caller", {}))


@pytest.fixture(scope="session")
def sharp_features(pipeline: ClassicalPipeline, sharp: Micrograph) -> dict[str, Estimate]:
    return measure(pipeline, sharp)


@pytest.fixture(scope="session")
def noisy_features(pipeline: ClassicalPipeline, noisy: Micrograph) -> dict[str, Estimate]:
    return measure(pipeline, noisy)


def write_tiff(path: Path, m: Micrograph) -> Path:
    """``m`` as a 16-bit TIFF carrying its pixel size in the ImageDescription."""
    tifffile.imwrite(path, (m.image * 65535).round().astype(np.uint16), metadata={"pixel_size_um": m.pixel_size_um})
    return path
