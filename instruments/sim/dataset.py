"""Exports simulated micrographs with pixel-exact class masks, as training and test data for segmentation models.

Layout of the output folder::

    DIR/images/NAME.tif    the SEM's TIFF as it writes it (16-bit, pixel size in the resolution tags)
    DIR/masks/NAME.png     uint8 class index per pixel (see ``CLASSES``)
    DIR/manifest.json      {"classes", "pixel_size_um", "generator", "artifacts", "items": [...]}

Class index map, derived from the renderer's ground truth (``render.Masks``), by precedence
**crack > pore > boundary > second phase > matrix**: a pixel is ``crack`` if it lies on a crack, else ``pore``
if in a pore, else ``boundary`` if on a one-pixel grain boundary (``Masks.boundary``), else ``second_phase``
if in a particle or a boundary precipitate, else ``matrix``. Boundaries therefore never hide pores or cracks,
so the pore and crack fractions of a mask equal the field's true porosity and crack area fraction exactly.

Artifact settings are named presets (``ARTIFACT_PRESETS``) or any ``Artifacts``, recorded in the manifest, so
that a held-out test set can be rendered with settings never seen in training. Deterministic by seed; the
microstructures (and masks) depend on the seed only, so two presets with one seed image the same structures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from instruments.sim.features import field_truth
from instruments.sim.render import Masks, Microstructure, render_masks
from instruments.sim.seeding import rng_for
from instruments.sim.sem import Artifacts, apply_artifacts, structure_image
from instruments.sim.survey import surviving_samples
from instruments.sim.systems import get_system
from instruments.sim.tiff import write_micrograph

CLASSES = ("matrix", "second_phase", "pore", "boundary", "crack")
MATRIX_CLS, SECOND_PHASE_CLS, PORE_CLS, BOUNDARY_CLS, CRACK_CLS = range(len(CLASSES))

ARTIFACT_PRESETS: dict[str, Artifacts] = {
    "default": Artifacts(),
    "strong": Artifacts(blur_px=1.6, dose=25.0, drift=0.2, jitter_px=1.2, charging=1.0),
    # no blur, drift, jitter or charging; a dose so high that shot noise is below one grey level in 8 bits
    "none": Artifacts(blur_px=0.0, dose=1e7, drift=0.0, jitter_px=0.0, charging=0.0),
}


def class_mask(masks: Masks) -> NDArray[np.uint8]:
    """(H, W) uint8 class indices into ``CLASSES`` (precedence crack > pore > boundary > second phase > matrix)."""
    out = np.full(masks.phase.shape, MATRIX_CLS, dtype=np.uint8)
    out[masks.second_phase] = SECOND_PHASE_CLS
    out[masks.boundary] = BOUNDARY_CLS
    out[masks.pore] = PORE_CLS
    out[masks.crack] = CRACK_CLS
    return out


def resolve_artifacts(artifacts: str | Artifacts) -> tuple[str, Artifacts]:
    """(name, settings) of a preset name or of explicit settings (named ``custom``)."""
    if isinstance(artifacts, Artifacts):
        return "custom", artifacts
    if artifacts not in ARTIFACT_PRESETS:
        raise ValueError(f"unknown artifact preset {artifacts!r}; valid: {', '.join(ARTIFACT_PRESETS)}")
    return artifacts, ARTIFACT_PRESETS[artifacts]


def export_dataset(
    system: str,
    out: Path | str,
    *,
    n: int = 40,
    seed: int = 0,
    size_px: int = 256,
    artifacts: str | Artifacts = "default",
    pixel_size_um: float | None = None,
    bits: int = 16,
) -> dict[str, Any]:
    """Renders ``n`` micrographs of ``system`` across its input space (failed samples skipped) into ``out``.

    Returns the manifest (also written to ``out/manifest.json``). Raises ``RuntimeError`` when fewer than
    ``n`` of the candidate conditions give a sample.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    if size_px < 8:
        raise ValueError("size_px must be at least 8")
    if bits not in (8, 16):
        raise ValueError("bits must be 8 or 16")
    out = Path(out)
    sys_ = get_system(system)
    name, art = resolve_artifacts(artifacts)
    px = float(pixel_size_um or sys_.default_pixel_size_um)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    items: list[dict[str, Any]] = []
    failures: dict[str, int] = {}
    for i, cond, outcome in surviving_samples(
        sys_, n, seed, candidates=max(8 * n, 32), tag="dataset", failures=failures
    ):
        # the structure depends on the seed alone, the artifacts on their settings too: one seed rendered with two
        # presets gives the same masks under different artifacts (paired robustness tests)
        rng = rng_for(seed, system, i, "dataset-field")
        masks = render_masks(Microstructure.from_truth(outcome.truth), (size_px, size_px), px, rng)
        signal = structure_image(masks, rng)
        art_rng = rng_for(seed, system, i, "dataset-artifacts", art.model_dump(mode="json"))
        image = apply_artifacts(signal, art, art_rng, out_of_focus=False, bits=bits)
        stem = f"{system}_s{seed}_{len(items):04d}"
        image_rel, mask_rel = f"images/{stem}.tif", f"masks/{stem}.png"
        metadata = {"instrument": "sim-sem", "system": system, "conditions": _plain(cond), "bits": bits}
        write_micrograph(out / image_rel, image, px, metadata)
        Image.fromarray(class_mask(masks), mode="L").save(out / mask_rel)
        items.append(
            {
                "image": image_rel,
                "mask": mask_rel,
                "pixel_size_um": px,
                "conditions": _plain(cond),
                "truth": _plain(field_truth(masks, px)),
                "sample_truth": _plain({k: v for k, v in outcome.truth.items() if isinstance(v, int | float | str)}),
            }
        )
    if len(items) < n:
        raise RuntimeError(f"only {len(items)} of {n} samples of {system} succeeded (failures: {failures})")
    manifest: dict[str, Any] = {
        "classes": list(CLASSES),
        "class_precedence": ["crack", "pore", "boundary", "second_phase", "matrix"],
        "pixel_size_um": px,
        "generator": f"matloop sim {system} seed={seed} artifacts={name}",
        "artifacts": art.model_dump(mode="json"),
        "size_px": size_px,
        "skipped_failures": failures,
        "items": items,
    }
    tmp = out / "manifest.json.part"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True, allow_nan=False), encoding="utf-8")
    tmp.replace(out / "manifest.json")
    return manifest


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready copy: numpy scalars as Python ones, NaN and infinities as ``None`` (strict JSON has neither)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            value = None
        out[key] = value
    return out
