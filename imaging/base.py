"""The imaging seam: an analyzer turns one sample's micrographs into features in physical units, each with σ."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


class ImagingError(Exception):
    """Root of imaging errors."""


class ImageReadError(ImagingError):
    """A file could not be read as a micrograph; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Feature:
    """A quantified microstructure feature: ``value ± sigma`` in ``unit``, and the method that measured it."""

    name: str
    value: float
    sigma: float
    unit: str
    method: str


@dataclass(frozen=True)
class ImageInput:
    """A micrograph file to analyze. ``pixel_size_um`` from the instrument or config overrides file metadata."""

    path: Path
    pixel_size_um: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ImageAnalyzer(Protocol):
    """Segments and quantifies micrographs. ``name``/``version`` are recorded with every measurement."""

    name: str
    version: str

    def outputs(self) -> dict[str, str]:
        """Feature names this analyzer reports and their units."""
        ...

    def analyze(self, images: Sequence[ImageInput]) -> list[Feature]:
        """Features of one sample, pooled over its images. Raises ``ImageReadError`` for unreadable files."""
        ...


@runtime_checkable
class OverlayRenderer(Protocol):
    """An analyzer that can draw what it segmented: one PNG per analyzed frame, features printed on it."""

    def render_overlays(self, features: Sequence[Feature], out_dir: Path) -> list[Path]:
        """Overlays of the frames of the last ``analyze`` call, written into ``out_dir``."""
        ...


@runtime_checkable
class ObjectReporter(Protocol):
    """An analyzer that lists what it found as objects in µm (cracks, pores, inclusions, grains): one CSV row each."""

    def write_objects(self, out_dir: Path) -> list[Path]:
        """The objects of the frames of the last ``analyze`` call, written as CSV into ``out_dir``."""
        ...
