"""The simulated-lab training data exporter: files, manifest, masks that agree with the truth, determinism."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy.ndimage import binary_dilation
from typer.testing import CliRunner

from instruments.sim.cli import app
from instruments.sim.dataset import (
    ARTIFACT_PRESETS,
    CLASSES,
    TRAIN_RANGES,
    class_mask,
    export_dataset,
    resolve_artifacts,
)
from instruments.sim.render import Microstructure, render_masks
from instruments.sim.seeding import rng_for
from instruments.sim.tiff import read_pixel_size_um


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("ds") / "porous"
    manifest = export_dataset("porous_ceramic", out, n=3, seed=0, size_px=96)
    return out, manifest


def test_files_and_manifest(exported: tuple[Path, dict]) -> None:
    out, manifest = exported
    on_disk = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk == manifest
    assert manifest["classes"] == ["matrix", "second_phase", "pore", "boundary", "crack"] == list(CLASSES)
    assert manifest["generator"] == "matloop sim porous_ceramic seed=0 artifacts=default"
    assert isinstance(manifest["pixel_size_um"], float)
    assert len(manifest["items"]) == 3
    for item in manifest["items"]:
        image = tifffile.imread(out / item["image"])
        mask = np.asarray(Image.open(out / item["mask"]))
        assert image.shape == mask.shape == (96, 96)
        assert image.dtype == np.uint16 and mask.dtype == np.uint8
        assert mask.max() < len(CLASSES)
        assert read_pixel_size_um(out / item["image"]) == pytest.approx(item["pixel_size_um"])
        assert {"porosity", "second_phase_fraction", "crack_area_fraction"} <= set(item["truth"])


def test_mask_fractions_agree_with_truth(exported: tuple[Path, dict]) -> None:
    out, manifest = exported
    for item in manifest["items"]:
        mask = np.asarray(Image.open(out / item["mask"]))
        # crack and pore win over everything, so their fractions are the field's, up to the pixels that scan jitter
        # moved across the frame's left and right edges (labels move with the image; the truth stays physical)
        edge = 2 * 4 * item["artifacts"]["jitter_px"] / mask.shape[1] + 1e-12
        assert (mask == CLASSES.index("pore")).mean() == pytest.approx(item["truth"]["porosity"], abs=edge)
        assert (mask == CLASSES.index("crack")).mean() == pytest.approx(item["truth"]["crack_area_fraction"], abs=edge)
        # and the field's porosity is the sample's within sampling error (a 96-px field holds few pores)
        target = item["sample_truth"]["porosity"]
        assert abs((mask == CLASSES.index("pore")).mean() - target) < 0.03 + 0.3 * target


def test_precedence() -> None:
    ms = Microstructure(grain_size_um=2.0, porosity=0.1, second_phase_fraction=0.1, crack_density_per_mm2=2e4)
    masks = render_masks(ms, (64, 64), 0.1, rng_for(1, "precedence"))
    cls = class_mask(masks)
    assert (cls[masks.crack] == CLASSES.index("crack")).all()
    assert (cls[masks.pore] == CLASSES.index("pore")).all()
    assert (cls[masks.second_phase & ~masks.pore & ~masks.crack] == CLASSES.index("second_phase")).all()
    plain_boundary = masks.boundary & (masks.phase == 0)
    assert (cls[plain_boundary] == CLASSES.index("boundary")).all()
    # the groove is three pixels wide: every boundary-class pixel lies within one pixel (8-connected) of a boundary
    near = binary_dilation(masks.boundary, np.ones((3, 3), bool))
    assert (cls == CLASSES.index("boundary")).sum() > 2 * plain_boundary.sum()
    assert not ((cls == CLASSES.index("boundary")) & ~near).any()
    assert (cls[~near & (masks.phase == 0)] == 0).all()
    # one-pixel labels on request; even widths have no centre
    thin = class_mask(masks, boundary_width_px=1)
    assert ((thin == CLASSES.index("boundary")) == plain_boundary).all()
    with pytest.raises(ValueError, match="odd"):
        class_mask(masks, boundary_width_px=2)


def test_random_artifacts_per_image_within_ranges(tmp_path: Path) -> None:
    manifest = export_dataset("two_phase_alloy", tmp_path / "r", n=3, seed=0, size_px=48, artifacts="random")
    settings = [item["artifacts"] for item in manifest["items"]]
    assert len({json.dumps(s, sort_keys=True) for s in settings}) == 3
    for s in settings:
        for key, (lo, hi) in TRAIN_RANGES.items():
            assert lo <= s[key] <= hi
    # the held-out presets lie beyond the training ranges: default in jitter and charging, strong in everything
    default = ARTIFACT_PRESETS["default"]
    assert default.jitter_px > TRAIN_RANGES["jitter_px"][1] and default.charging > TRAIN_RANGES["charging"][1]
    strong = ARTIFACT_PRESETS["strong"]
    assert strong.blur_px > TRAIN_RANGES["blur_px"][1] and strong.dose < TRAIN_RANGES["dose"][0]
    assert strong.drift > TRAIN_RANGES["drift"][1] and strong.jitter_px > TRAIN_RANGES["jitter_px"][1]
    assert strong.charging > TRAIN_RANGES["charging"][1]


def test_deterministic_by_seed(tmp_path: Path, exported: tuple[Path, dict]) -> None:
    out, _ = exported
    again = tmp_path / "again"
    export_dataset("porous_ceramic", again, n=3, seed=0, size_px=96)
    assert _digest(again) == _digest(out)
    other = tmp_path / "other"
    export_dataset("porous_ceramic", other, n=3, seed=1, size_px=96)
    assert _digest(other)["masks/porous_ceramic_s1_0000.png"] != _digest(out)["masks/porous_ceramic_s0_0000.png"]


def test_artifact_presets_pair_on_one_seed(tmp_path: Path) -> None:
    a = export_dataset("two_phase_alloy", tmp_path / "a", n=1, seed=0, size_px=64, artifacts="none")
    b = export_dataset("two_phase_alloy", tmp_path / "b", n=1, seed=0, size_px=64, artifacts="strong")
    assert a["artifacts"] != b["artifacts"]
    assert a["generator"].endswith("artifacts=none")
    img_a = tifffile.imread(tmp_path / "a" / a["items"][0]["image"]).astype(float)
    img_b = tifffile.imread(tmp_path / "b" / b["items"][0]["image"]).astype(float)
    assert not np.array_equal(img_a, img_b)
    # same seed, same structures: the truths agree and the masks differ only by the strong preset's scan jitter
    assert a["items"][0]["truth"] == b["items"][0]["truth"]
    mask_a = np.asarray(Image.open(tmp_path / "a" / a["items"][0]["mask"]))
    mask_b = np.asarray(Image.open(tmp_path / "b" / b["items"][0]["mask"]))
    assert 0.7 < (mask_a == mask_b).mean() < 1.0
    # without artifacts the image is the clean signal: class means are ordered pore < matrix < second phase
    pore, matrix, second = (img_a[mask_a == CLASSES.index(c)] for c in ("pore", "matrix", "second_phase"))
    if pore.size and second.size:
        assert pore.mean() < matrix.mean() < second.mean()
    with pytest.raises(ValueError, match="unknown artifact preset"):
        resolve_artifacts("wild")
    assert set(ARTIFACT_PRESETS) == {"default", "strong", "none"}


def test_cli(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["dataset", "two_phase_alloy", "--out", str(tmp_path / "d"), "--n", "1", "--size-px", "64"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "manifest.json").exists()
    bad = CliRunner().invoke(app, ["dataset", "two_phase_alloy", "--out", str(tmp_path / "e"), "--artifacts", "x"])
    assert bad.exit_code != 0


def test_crack_fields_add_cracks_and_keep_truth_consistent(tmp_path: Path) -> None:
    plain = export_dataset("two_phase_alloy", tmp_path / "p", n=3, seed=0, size_px=128, artifacts="none")
    cracked = export_dataset(
        "two_phase_alloy", tmp_path / "c", n=3, seed=0, size_px=128, artifacts="none", crack_fields=1.0
    )
    assert cracked["crack_fields"] == 1.0 and plain["crack_fields"] == 0.0
    assert sum(it["truth"]["crack_count"] for it in cracked["items"]) > sum(
        it["truth"]["crack_count"] for it in plain["items"]
    )
    for item in cracked["items"]:
        mask = np.asarray(Image.open(tmp_path / "c" / item["mask"]))
        assert (mask == CLASSES.index("crack")).mean() == pytest.approx(item["truth"]["crack_area_fraction"], abs=1e-12)
    with pytest.raises(ValueError, match="crack_fields"):
        export_dataset("two_phase_alloy", tmp_path / "x", n=1, seed=0, size_px=32, crack_fields=1.5)


def test_scan_jitter_moves_the_labels_with_the_image() -> None:
    """A vertical edge scanned with jitter: each row's edge lands where the returned shift says, and the label
    mask moved by the same shifts matches the thresholded frame pixel for pixel."""
    from instruments.sim.sem import Artifacts, apply_artifacts_with_shift, shift_rows

    signal = np.zeros((64, 96), np.float32)
    signal[:, 48:] = 0.9
    art = Artifacts(blur_px=0.0, dose=1e7, drift=0.0, jitter_px=1.5, charging=0.0)
    image, shift = apply_artifacts_with_shift(signal, art, np.random.default_rng(3), out_of_focus=False)
    assert shift.shape == (64,) and np.abs(shift).max() >= 1
    bright = image > image.max() / 2
    np.testing.assert_array_equal(bright.argmax(axis=1), 48 + shift)
    np.testing.assert_array_equal(shift_rows(signal > 0.5, shift), bright)
