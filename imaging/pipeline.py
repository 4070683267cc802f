"""``ClassicalPipeline``: the scikit-image baseline behind the ``ImageAnalyzer`` seam (read → segment → quantify →
pool over a sample's images)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from imaging.base import Feature, ImageInput, ImagingError
from imaging.classical import Segmentation, SegmentParams, segment
from imaging.intercept import astm_grain_number, astm_sigma
from imaging.io import LoadedImage, load_pages, read_input
from imaging.objects import Frame, write_objects_csv
from imaging.overlay import CLASSES, label_map_from_segmentation, render_overlay
from imaging.planimetric import planimetric_astm
from imaging.quantify import FEATURE_UNITS, Estimate, measure, pool

log = logging.getLogger(__name__)

METHODS: dict[str, str] = {
    "porosity": "classical: dark multi-Otsu class opened (area fraction)",
    "second_phase_fraction": "classical: minor multi-Otsu solid class, of the total area",
    "grain_size_um": "classical: mean lineal intercept (ASTM E112) on {method} ridges, rows and columns",
    "grain_size_ecd_um": "classical: mean equivalent-circle diameter of watershed grains",
    "astm_grain_number": "classical: ASTM E112 G from the mean lineal intercept",
    "grain_size_planimetric_um": "classical: ASTM E112 planimetric (Jeffries) count of watershed grains, N_A = "
    "(inside + ½ cut by the edge + ¼ at a corner) / grain area; mean diameter d = 1/√N_A",
    "astm_grain_number_planimetric": "classical: ASTM E112 G = 3.321928·log10(N_A per mm²) − 2.954 (planimetric)",
    "grain_size_d10_um": "classical: 10th percentile of the ECD of watershed grains off the border (by number)",
    "grain_size_d50_um": "classical: median ECD of watershed grains off the border (by number)",
    "grain_size_d90_um": "classical: 90th percentile of the ECD of watershed grains off the border (by number)",
    "pore_count": "classical: 8-connected pores per field",
    "pore_size_um": "classical: mean ECD of pores not cut by the edge",
    "pore_size_d90_um": "classical: 90th percentile of the ECD of pores not cut by the edge (by number)",
    "crack_count": "classical: long slender loop-free dark objects",
    "crack_length_um": "classical: summed crack length",
    "crack_density_per_mm": "classical: crack length per area (mm/mm²)",
    "focus_quality": "classical: noise-corrected LoG energy (σ=1 px)",
}


class ClassicalOptions(BaseModel):
    """Options of the classical pipeline; lengths carry their unit in the name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subfields: int = Field(default=3, ge=1, le=8, description="σ from k×k subfields")
    min_pore_area_um2: float = Field(default=0.0, ge=0.0, description="pores smaller than this are dropped")
    max_line_width_px: float = Field(
        default=5.0,
        ge=1.0,
        le=50.0,
        description="dark features narrower than this are lines (boundaries, cracks), not pores",
    )
    boundary_method: Literal["hessian", "sato", "tophat"] = "hessian"
    ridge_sigmas_px: tuple[Annotated[float, Field(gt=0.0, le=20.0)], ...] = Field(
        default=(1.0, 2.0, 3.0), min_length=1, description="scales of the ridge filter"
    )
    denoise: Literal["gaussian", "median", "nl_means"] = "gaussian"
    smoothing_px: float = Field(default=1.0, ge=0.0, le=5.0)
    flatten_background: bool = Field(
        default=False, description="remove slow shading (optical vignetting, SEM charging)"
    )
    min_crack_length_um: float | None = Field(default=None, gt=0.0, description="None: 1.5 mean lineal intercepts")
    min_crack_aspect: float = Field(default=5.0, ge=1.0)
    crop_bottom_px: int | None = Field(default=None, ge=0, description="rows of SEM data bar to cut off the bottom")
    auto_crop: bool = Field(default=False, description="detect the SEM data bar (see imaging.databar)")
    pixel_size_um: float | None = Field(default=None, gt=0.0, description="overrides the instrument and file metadata")
    all_pages: bool = Field(default=False, description="analyze every page of multi-page files, not only the first")
    skip_unusable: bool = Field(default=True, description="drop blank frames when the sample has usable ones")

    def segment_params(self, pixel_size_um: float) -> SegmentParams:
        """The pixel-unit parameters for ``segment`` at this pixel size."""
        return SegmentParams(
            min_pore_area_px=self.min_pore_area_um2 / pixel_size_um**2,
            max_line_width_px=self.max_line_width_px,
            boundary_method=self.boundary_method,
            ridge_sigmas_px=self.ridge_sigmas_px,
            denoise=self.denoise,
            smoothing_px=self.smoothing_px,
            flatten_background=self.flatten_background,
            min_crack_length_px=None if self.min_crack_length_um is None else self.min_crack_length_um / pixel_size_um,
            min_crack_aspect=self.min_crack_aspect,
        )


class ClassicalPipeline:
    """Classical segmentation and quantification (``imaging.classical``, ``imaging.quantify``) of one sample's
    micrographs. ``version`` changes with the algorithm, and carries a digest of non-default options."""

    name: str = "classical"
    algorithm_version: ClassVar[str] = "0.1.0"

    def __init__(self, **options: Any) -> None:
        self.options = ClassicalOptions(**options)
        changed = self.options.model_dump(exclude_defaults=True)
        digest = hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:8]
        self.version = self.algorithm_version + (f"+{digest}" if changed else "")
        self._last: list[tuple[LoadedImage, Segmentation]] = []  # frames of the last analyze, for overlays

    @classmethod
    def outputs_for(cls, options: dict[str, Any]) -> dict[str, str]:
        """Feature names and units, after validating ``options`` (raises pydantic ``ValidationError``)."""
        ClassicalOptions(**options)
        return dict(FEATURE_UNITS)

    def outputs(self) -> dict[str, str]:
        return dict(FEATURE_UNITS)

    def load(self, image: ImageInput) -> list[LoadedImage]:
        """The page(s) of one input; the option ``pixel_size_um`` beats the instrument's, which beats the file's."""
        size = self.options.pixel_size_um or image.pixel_size_um
        crop, auto = self.options.crop_bottom_px, self.options.auto_crop
        if self.options.all_pages:
            return load_pages(image.path, pixel_size_um=size, crop_bottom_px=crop, auto_crop=auto)
        return [read_input(ImageInput(image.path, size, image.metadata), crop_bottom_px=crop, auto_crop=auto)]

    def segment(self, loaded: LoadedImage) -> Segmentation:
        return segment(
            loaded.pixels,
            self.options.segment_params(loaded.pixel_size_um),
            name=str(loaded.metadata.get("file", "image")),
        )

    def measure(self, loaded: LoadedImage) -> dict[str, Estimate]:
        """All features of one loaded page."""
        params = self.options.segment_params(loaded.pixel_size_um)
        seg = self.segment(loaded)
        self._last.append((loaded, seg))
        margin = math.ceil(2 * max(params.ridge_sigmas_px) + 1)
        return measure(
            seg,
            loaded.pixel_size_um,
            k=self.options.subfields,
            margin_px=margin,
            min_grain_area_px=self._min_grain_area_px(),
            min_crack_length_um=seg.min_crack_length_px * loaded.pixel_size_um,
        )

    def analyze(self, images: Sequence[ImageInput]) -> list[Feature]:
        """Features of one sample pooled over its images (and pages). Raises ``ImageReadError`` for an
        unreadable file and ``ImagingError`` when no frame is usable."""
        if not images:
            raise ImagingError("no images to analyze: the sample has no micrographs")
        per_image: list[dict[str, Estimate]] = []
        problems: list[str] = []
        self._last = []
        for image in images:
            for page in self.load(image):
                try:
                    per_image.append(self.measure(page))
                except ImagingError as exc:
                    if not self.options.skip_unusable:
                        raise
                    log.warning("skipping an unusable frame: %s", exc)
                    problems.append(str(exc))
        if not per_image:
            raise ImagingError("no usable frame among the sample's images: " + "; ".join(problems))
        pooled = {name: pool([m[name] for m in per_image]) for name in FEATURE_UNITS}
        grain = pooled["grain_size_um"]
        pooled["astm_grain_number"] = _astm(grain)
        pooled["astm_grain_number_planimetric"] = planimetric_astm(pooled["grain_size_planimetric_um"])
        return [
            Feature(
                name,
                pooled[name].value,
                pooled[name].sigma,
                unit,
                METHODS[name].format(method=self.options.boundary_method),
            )
            for name, unit in FEATURE_UNITS.items()
        ]

    def _min_grain_area_px(self) -> float:
        """Grains smaller than a disk just wider than a line (the smallest pore) are not counted."""
        return math.pi * (self.options.max_line_width_px / 2 + 0.5) ** 2

    def write_objects(self, out_dir: Path) -> list[Path]:
        """Cracks, pores, inclusions and grains of the frames of the last ``analyze`` call, as one CSV."""
        frames = [
            Frame(
                Path(str(loaded.metadata.get("file", f"frame{i}"))).name,
                seg,
                loaded.pixel_size_um,
                self._min_grain_area_px(),
            )
            for i, (loaded, seg) in enumerate(self._last)
        ]
        return [write_objects_csv(frames, out_dir / f"{self.name}.objects.csv")]

    def render_overlays(self, features: Sequence[Feature], out_dir: Path) -> list[Path]:
        """One overlay PNG per frame segmented by the last ``analyze`` call (no segmentation is repeated)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, (loaded, seg) in enumerate(self._last):
            name = Path(str(loaded.metadata.get("file", f"frame{i}"))).stem
            paths.append(
                render_overlay(
                    loaded.pixels,
                    label_map_from_segmentation(seg),
                    CLASSES,
                    features,
                    out_dir / f"{i:02d}_{name}.overlay.png",
                    title=f"{name[:12]} — {self.name} {self.version}",
                    pixel_size_um=loaded.pixel_size_um,
                )
            )
        return paths


def _astm(grain: Estimate) -> Estimate:
    return Estimate(astm_grain_number(grain.value), astm_sigma(grain.value, grain.sigma))
