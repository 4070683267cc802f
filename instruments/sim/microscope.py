"""``SimSEM``: a simulated scanning electron microscope that images a sample's true microstructure.

Each field is drawn from the sample's ground truth (``render``), imaged with SEM contrast and artifacts
(``sem``), and written as a TIFF with its pixel size (``tiff``) beside compressed ground-truth masks. The
``Micrograph.truth`` holds feature values measured on those masks. Deterministic by (seed, sample, field);
a repeated acquisition returns the same files.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from instruments.base import Micrograph, PermanentFault, Sample, TransientFault
from instruments.registry import InstrumentContext
from instruments.sim.features import field_truth
from instruments.sim.render import PHASE_NAMES, Masks, Microstructure, render_masks
from instruments.sim.seeding import rng_for, short_hash
from instruments.sim.sem import Artifacts, apply_artifacts, structure_image
from instruments.sim.systems import SYSTEMS, get_system
from instruments.sim.tiff import write_micrograph

# magnifications a microscopist would pick from, as pixel sizes (µm) at 512 pixels
_LADDER_UM = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_DISPLAY_WIDTH_UM = 127_000.0  # magnification is quoted for a 127 mm wide print (Polaroid convention)


class SEMOptions(BaseModel):
    """Options of ``sim-sem`` as written in a campaign."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    system: str | None = Field(default=None, description="material system; default: the one the sample says")
    pixel_size_um: float | None = Field(default=None, gt=0, description="default: the system's, grains span pixels")
    auto_magnification: bool = Field(default=False, description="pick the pixel size per sample, ~15 px per grain")
    size_px: int = Field(default=512, ge=64, le=4096, description="frame width and height in pixels")
    images_per_sample: int = Field(default=1, ge=1, le=4, description="fields imaged per sample")
    artifacts: Artifacts = Artifacts()
    focus_failure_probability: float = Field(default=0.02, ge=0, le=1, description="chance a frame is out of focus")
    transient_fault_probability: float = Field(default=0.0, ge=0, le=1, description="beam or stage hiccup (retry)")
    bits: Literal[8, 16] = 16
    setup_time_s: float = Field(default=600.0, ge=0, description="load, pump down, find the area")
    field_time_s: float = Field(default=90.0, ge=0, description="focus, stigmate and scan one field")

    @field_validator("system")
    @classmethod
    def _known(cls, name: str | None) -> str | None:
        if name is not None:
            get_system(name)
        return name


class SimSEM:
    """Imager protocol: renders micrographs of simulated samples."""

    simulated: ClassVar[bool] = True

    def __init__(self, *, context: InstrumentContext, **options: Any) -> None:
        self.options = SEMOptions(**options)
        self.context = context
        self.folder = context.workdir / "micrographs"
        self._attempts: dict[str, int] = {}

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> None:
        SEMOptions.model_validate(dict(options))

    @classmethod
    def outputs(cls, options: Mapping[str, Any]) -> dict[str, str]:
        """An imager measures nothing directly: its images go to the imaging pipeline."""
        cls.validate_options(options)
        return {}

    def pixel_size_for(self, sample: Sample) -> float:
        """The pixel size (µm) this microscope uses for ``sample``."""
        opts = self.options
        if opts.auto_magnification and sample.truth and sample.truth.get("grain_size_um"):
            want = float(sample.truth["grain_size_um"]) / 15.0
            return float(min(_LADDER_UM, key=lambda p: abs(np.log(p / want))))
        if opts.pixel_size_um is not None:
            return float(opts.pixel_size_um)
        name = opts.system or (sample.attributes or {}).get("system") or (sample.truth or {}).get("system")
        return get_system(str(name)).default_pixel_size_um if name in SYSTEMS else 0.5

    async def acquire(self, sample: Sample) -> list[Micrograph]:
        if sample.truth is None:
            raise PermanentFault("the sample carries no ground truth: a simulated SEM cannot image it", code="no_truth")
        opts = self.options
        attempt = self._attempts[sample.sample_id] = self._attempts.get(sample.sample_id, 0) + 1
        if rng_for(self.context.seed, sample.sample_id, "sem-attempt", attempt).random() < (
            opts.transient_fault_probability
        ):
            raise TransientFault("beam current unstable: acquisition aborted", code="beam_unstable")
        try:
            ms = Microstructure.from_truth(sample.truth)
        except ValueError as exc:
            raise PermanentFault(str(exc), code="no_truth") from exc
        px = self.pixel_size_for(sample)
        started = asyncio.get_running_loop().time()
        await asyncio.sleep(opts.setup_time_s + opts.images_per_sample * opts.field_time_s)
        self.folder.mkdir(parents=True, exist_ok=True)
        tag = short_hash(opts.model_dump(mode="json"), px, length=8)
        return [
            self._field(sample, ms, px, i, tag, started + opts.setup_time_s + (i + 1) * opts.field_time_s)
            for i in range(opts.images_per_sample)
        ]

    def _field(self, sample: Sample, ms: Microstructure, px: float, index: int, tag: str, when: float) -> Micrograph:
        stem = self.folder / f"{sample.sample_id}_{tag}_f{index}"
        tif, npz, meta_path = (stem.with_suffix(s) for s in (".tif", ".masks.npz", ".json"))
        if tif.exists() and npz.exists() and meta_path.exists():
            saved = json.loads(meta_path.read_text(encoding="utf-8"))
            return Micrograph(tif, px, saved["metadata"], saved["truth"])
        opts = self.options
        seed = self.context.seed
        out_of_focus = bool(rng_for(seed, sample.sample_id, index, "focus").random() < opts.focus_failure_probability)
        rng = rng_for(seed, sample.key, sample.sample_id, index, "sem-field")
        shape = (opts.size_px, opts.size_px)
        masks = render_masks(ms, shape, px, rng)
        image = apply_artifacts(
            structure_image(masks, rng), opts.artifacts, rng, out_of_focus=out_of_focus, bits=opts.bits
        )
        fov_um = opts.size_px * px
        metadata: dict[str, Any] = {
            "instrument": "sim-sem",
            "detector": "SE2",
            "accelerating_voltage_kv": 15.0,
            "working_distance_mm": 8.5,
            "magnification": round(_DISPLAY_WIDTH_UM / fov_um, 1),
            "pixel_size_um": px,
            "width_px": opts.size_px,
            "height_px": opts.size_px,
            "bits": opts.bits,
            "dwell_time_us": 1.0,
            "field_index": index,
            "sample_id": sample.sample_id,
            "acquired_lab_time_s": when,
        }
        write_micrograph(tif, image, px, metadata)
        _save_masks(npz, masks)
        truth = field_truth(masks, px) | {"out_of_focus": out_of_focus, "masks_path": str(npz)}
        tmp = meta_path.with_suffix(".json.part")
        tmp.write_text(json.dumps({"metadata": metadata, "truth": truth}, sort_keys=True), encoding="utf-8")
        tmp.replace(meta_path)
        return Micrograph(tif, px, metadata, truth)


def _save_masks(path: Path, masks: Masks) -> None:
    """Ground-truth label masks, compressed: grains, boundary, phase (with its legend), pore, second phase, crack."""
    points = np.concatenate(masks.crack_paths) if masks.crack_paths else np.zeros((0, 2), dtype=np.intp)
    offsets = np.cumsum([0] + [len(p) for p in masks.crack_paths])
    tmp = path.with_name(path.name + ".part.npz")
    np.savez_compressed(
        tmp,
        grains=masks.grains,
        boundary=masks.boundary,
        phase=masks.phase,
        phase_names=np.array([PHASE_NAMES[k] for k in sorted(PHASE_NAMES)]),
        pore=masks.pore,
        second_phase=masks.second_phase,
        crack=masks.crack,
        crack_points=points.astype(np.int32),
        crack_offsets=offsets.astype(np.int64),
    )
    tmp.replace(path)
