"""Exports simulated micrographs with pixel-exact class masks, as training and test data for segmentation models.

Layout of the output folder::

    DIR/images/NAME.tif    the SEM's TIFF as it writes it (16-bit, pixel size in the resolution tags)
    DIR/masks/NAME.png     uint8 class index per pixel (see ``CLASSES``)
    DIR/manifest.json      {"classes", "pixel_size_um", "generator", "artifacts", "items": [...]}

Class index map, derived from the renderer's ground truth (``render.Masks``), by precedence
**crack > pore > second phase > boundary > matrix**, the order in which the SEM renderer paints them: a pixel
is ``crack`` if it lies on a crack, else ``pore`` if in a pore, else ``second_phase`` if in a particle or a
boundary precipitate, else ``boundary`` if within the grain-boundary groove, else ``matrix``. The groove is
``boundary_width_px`` wide (default 3: the renderer's groove is the one-pixel boundary blurred with σ = 0.7 px,
darker than half depth over about three pixels), so the label marks what the image shows. Boundaries only ever
cover matrix, so the pore, crack and second-phase fractions of a mask equal the field's true fractions exactly.

Artifact settings are named presets (``ARTIFACT_PRESETS``), any ``Artifacts``, or ``"random"``: each image
drawn from ``TRAIN_RANGES`` (domain randomization for training), recorded per item in the manifest. The
``default`` preset lies beyond those ranges in scan jitter and charging, ``strong`` in every artifact.
Deterministic by seed; the microstructures (and masks) depend on the seed only, so two presets with one seed
image the same structures.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from scipy.ndimage import binary_dilation

from instruments.sim.features import field_truth
from instruments.sim.render import Masks, Microstructure, render_masks
from instruments.sim.seeding import rng_for
from instruments.sim.sem import Artifacts, apply_artifacts_with_shift, shift_rows, structure_image
from instruments.sim.survey import surviving_samples
from instruments.sim.systems import get_system
from instruments.sim.tiff import write_micrograph

CLASSES = ("matrix", "second_phase", "pore", "boundary", "crack")
MATRIX_CLS, SECOND_PHASE_CLS, PORE_CLS, BOUNDARY_CLS, CRACK_CLS = range(len(CLASSES))

#: Ranges of the ``"random"`` artifact setting (uniform; dose log-uniform). They leave out the scan jitter and
#: charging of the ``default`` microscope and every artifact of ``strong``, so that test sets rendered with those
#: presets measure how a model trained on ``random`` carries over to settings it has never seen.
TRAIN_RANGES: dict[str, tuple[float, float]] = {
    "blur_px": (0.3, 1.2),
    "dose": (60.0, 600.0),
    "drift": (0.0, 0.1),
    "jitter_px": (0.0, 0.4),
    "charging": (0.0, 0.2),
}

ARTIFACT_PRESETS: dict[str, Artifacts] = {
    "default": Artifacts(),
    "strong": Artifacts(blur_px=1.6, dose=25.0, drift=0.2, jitter_px=1.2, charging=1.0),
    # no blur, drift, jitter or charging; a dose so high that shot noise is below one grey level in 8 bits
    "none": Artifacts(blur_px=0.0, dose=1e7, drift=0.0, jitter_px=0.0, charging=0.0),
}


def class_mask(masks: Masks, boundary_width_px: int = 3) -> NDArray[np.uint8]:
    """(H, W) uint8 class indices into ``CLASSES`` (precedence crack > pore > second phase > boundary > matrix);
    boundaries are ``boundary_width_px`` wide (odd, ≥ 1) about the renderer's one-pixel boundary."""
    if boundary_width_px < 1 or boundary_width_px % 2 == 0:
        raise ValueError(f"boundary_width_px must be an odd number ≥ 1, got {boundary_width_px}")
    out = np.full(masks.phase.shape, MATRIX_CLS, dtype=np.uint8)
    band = masks.boundary
    if boundary_width_px > 1:
        band = binary_dilation(band, np.ones((3, 3), bool), iterations=boundary_width_px // 2)
    out[band] = BOUNDARY_CLS
    out[masks.second_phase] = SECOND_PHASE_CLS
    out[masks.pore] = PORE_CLS
    out[masks.crack] = CRACK_CLS
    return out


def resolve_artifacts(artifacts: str | Artifacts) -> tuple[str, Artifacts]:
    """(name, settings) of a preset name or of explicit settings (named ``custom``); ``"random"`` gives the
    default settings here (each image then draws its own with ``random_artifacts``)."""
    if isinstance(artifacts, Artifacts):
        return "custom", artifacts
    if artifacts == "random":
        return "random", Artifacts()
    if artifacts not in ARTIFACT_PRESETS:
        valid = ", ".join([*ARTIFACT_PRESETS, "random"])
        raise ValueError(f"unknown artifact preset {artifacts!r}; valid: {valid}")
    return artifacts, ARTIFACT_PRESETS[artifacts]


def random_artifacts(rng: np.random.Generator) -> Artifacts:
    """Artifact settings drawn from ``TRAIN_RANGES`` (dose log-uniform, the rest uniform)."""
    values: dict[str, float] = {}
    for key, (lo, hi) in TRAIN_RANGES.items():
        values[key] = (
            float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if key == "dose" else float(rng.uniform(lo, hi))
        )
    return Artifacts(**values)


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
    boundary_width_px: int = 3,
    crack_fields: float = 0.0,
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
    if not 0.0 <= crack_fields <= 1.0:
        raise ValueError(f"crack_fields is a fraction of the fields, in [0, 1]; got {crack_fields}")
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
        structure = Microstructure.from_truth(outcome.truth)
        crack_rng = rng_for(seed, system, i, "dataset-cracks")
        if crack_fields > 0 and crack_rng.random() < crack_fields:
            structure = replace(
                structure, crack_density_per_mm2=float(np.exp(crack_rng.uniform(np.log(300), np.log(3000))))
            )
        masks = render_masks(structure, (size_px, size_px), px, rng)
        signal = structure_image(masks, rng)
        if name == "random":
            art_rng = rng_for(seed, system, i, "dataset-artifacts", "random")
            item_art = random_artifacts(art_rng)
        else:
            art_rng = rng_for(seed, system, i, "dataset-artifacts", art.model_dump(mode="json"))
            item_art = art
        image, row_shift = apply_artifacts_with_shift(signal, item_art, art_rng, out_of_focus=False, bits=bits)
        stem = f"{system}_s{seed}_{len(items):04d}"
        image_rel, mask_rel = f"images/{stem}.tif", f"masks/{stem}.png"
        metadata = {"instrument": "sim-sem", "system": system, "conditions": _plain(cond), "bits": bits}
        write_micrograph(out / image_rel, image, px, metadata)
        # the label mask moves with the scan jitter (it labels what the frame shows); the truth stays physical
        labels = shift_rows(class_mask(masks, boundary_width_px), row_shift)
        Image.fromarray(labels, mode="L").save(out / mask_rel)
        items.append(
            {
                "image": image_rel,
                "mask": mask_rel,
                "pixel_size_um": px,
                "conditions": _plain(cond),
                "artifacts": item_art.model_dump(mode="json"),
                "truth": _plain(field_truth(masks, px)),
                "sample_truth": _plain({k: v for k, v in outcome.truth.items() if isinstance(v, int | float | str)}),
            }
        )
    if len(items) < n:
        raise RuntimeError(f"only {len(items)} of {n} samples of {system} succeeded (failures: {failures})")
    manifest: dict[str, Any] = {
        "classes": list(CLASSES),
        "class_precedence": ["crack", "pore", "second_phase", "boundary", "matrix"],
        "boundary_width_px": boundary_width_px,
        "crack_fields": crack_fields,
        "pixel_size_um": px,
        "generator": f"matloop sim {system} seed={seed} artifacts={name}",
        "artifacts": "random" if name == "random" else art.model_dump(mode="json"),
        "artifact_ranges": TRAIN_RANGES if name == "random" else None,
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
