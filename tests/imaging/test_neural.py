from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from typer.testing import CliRunner

from imaging.base import ImageAnalyzer, ImageInput
from imaging.cli import app
from imaging.models import UNetConfig
from imaging.neural import NeuralPipeline, bundled_checkpoint, default_checkpoint, pretrained_checkpoint
from imaging.quantify import FEATURE_UNITS
from imaging.registry import analyzer_outputs, available, make_analyzer
from imaging.train import CheckpointError, TrainConfig, train
from tests.imaging.segdata import make_dataset_folder
from tests.imaging.synth import make_micrograph


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)  # the test machine is shared


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("neural")
    data = make_dataset_folder(root / "data", n=6, size=64)
    cfg = TrainConfig(
        dataset_dir=data,
        run_dir=root / "run",
        model=UNetConfig(n_classes=5, base_channels=8, depth=2, dropout=0.2),
        epochs=3,
        batch_size=4,
        crop_size=32,
        samples_per_epoch=8,
        lr=1e-2,
        val_fraction=0.2,
        test_fraction=0.0,
        device="cpu",
    )
    return train(cfg, log=lambda s: None).best_path


def micrograph(path: Path, pixel_size_um: float = 0.1, size: int = 64, seed: int = 7) -> ImageInput:
    m = make_micrograph(
        size=size, n_grains=10, porosity=0.06, second_fraction=0.25, n_cracks=1, pixel_size_um=pixel_size_um, seed=seed
    )
    tifffile.imwrite(path, (m.image * 65535).round().astype(np.uint16), metadata={"pixel_size_um": pixel_size_um})
    return ImageInput(path)


def test_features_units_and_sigma(checkpoint: Path, tmp_path: Path) -> None:
    analyzer = make_analyzer("unet", {"checkpoint": checkpoint, "device": "cpu", "tile": 64, "overlap": 16})
    assert isinstance(analyzer, ImageAnalyzer) and isinstance(analyzer, NeuralPipeline)
    assert analyzer.name == "unet" and analyzer.version.startswith("unet:") and len(analyzer.version) == 17
    feats = analyzer.analyze([micrograph(tmp_path / "a.tif"), micrograph(tmp_path / "b.tif", seed=8)])
    assert {f.name: f.unit for f in feats} == FEATURE_UNITS
    for f in feats:
        assert math.isfinite(f.value) and math.isfinite(f.sigma) and f.sigma >= 0, f
        assert f.method.startswith("unet")
    by = {f.name: f for f in feats}
    assert 0 <= by["porosity"].value <= 1 and by["grain_size_um"].value > 0


def test_tta_and_mc_widen_sigma(checkpoint: Path, tmp_path: Path) -> None:
    image = [micrograph(tmp_path / "a.tif")]
    opts = {"checkpoint": checkpoint, "device": "cpu", "tile": 64, "overlap": 16}
    plain = {f.name: f for f in make_analyzer("unet", opts).analyze(image)}
    wide = {f.name: f for f in make_analyzer("unet", {**opts, "tta": True, "mc_samples": 2}).analyze(image)}
    assert all(math.isfinite(f.sigma) for f in wide.values())
    assert sum(wide[n].sigma >= plain[n].sigma - 1e-12 for n in FEATURE_UNITS) >= len(FEATURE_UNITS) - 1
    assert sum(wide[n].sigma for n in FEATURE_UNITS) >= sum(plain[n].sigma for n in FEATURE_UNITS)


def test_pixel_size_mismatch_rescales_and_keeps_physical_units(
    checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # trained at 0.1 µm/px; this image has 0.05 µm/px → halved to the training pixel size before prediction
    analyzer = make_analyzer("unet", {"checkpoint": checkpoint, "device": "cpu", "tile": 64, "overlap": 16})
    fine = [micrograph(tmp_path / "fine.tif", pixel_size_um=0.05, size=96)]
    with caplog.at_level(logging.WARNING, logger="imaging.neural"):
        feats = {f.name: f for f in analyzer.analyze(fine)}
        analyzer.analyze(fine)
    assert all(math.isfinite(f.value) and f.sigma >= 0 for f in feats.values())
    assert 0 < feats["grain_size_um"].value < 96 * 0.05 * 2  # µm, not rescaled pixels
    # a factor of 2 from the training magnification is said, once per pixel size, with the way out
    warned = [r.getMessage() for r in caplog.records if "resampled" in r.getMessage()]
    assert len(warned) == 1 and "0.05 µm/px" in warned[0] and "--pixel-size-um 0.05" in warned[0], warned


def test_missing_and_corrupt_checkpoint_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match=r"nope\.pt"):
        make_analyzer("unet", {"checkpoint": missing})
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"bad\.pt"):
        make_analyzer("unet", {"checkpoint": bad})


def test_outputs_without_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATLOOP_CACHE", str(tmp_path))
    assert analyzer_outputs("unet", {}) == FEATURE_UNITS
    assert "unet" in available()
    assert default_checkpoint("x") == tmp_path / "models" / "unet-x.pt"
    with pytest.raises(CheckpointError, match="pretrain"):
        make_analyzer("unet", {"pretrained": "no_such_system"})


def test_bundled_model_unless_the_user_pretrained_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATLOOP_CACHE", str(tmp_path))
    bundled = bundled_checkpoint("two_phase_alloy")
    assert bundled.is_file() and bundled.stat().st_size < 2_000_000
    assert pretrained_checkpoint("two_phase_alloy") == bundled
    own = default_checkpoint("two_phase_alloy")
    own.parent.mkdir(parents=True)
    own.write_bytes(bundled.read_bytes())
    assert pretrained_checkpoint("two_phase_alloy") == own


def test_pretrain_quick_writes_default_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATLOOP_CACHE", str(tmp_path))
    result = CliRunner().invoke(app, ["pretrain", "--quick"])
    assert result.exit_code == 0, result.output
    path = default_checkpoint("two_phase_alloy")
    assert path.is_file() and str(path) in result.output and "test mIoU" in result.output
    assert path.stat().st_size < 2_000_000
    assert make_analyzer("unet", {"device": "cpu"}).version.startswith("unet:")


def test_grain_map_intercept_counts_label_changes_inside_grains() -> None:
    from imaging.neural import grain_map_intercept_px

    grains = np.repeat(np.repeat(np.arange(1, 26).reshape(5, 5), 10, 0), 10, 1)  # 5×5 squares of 10 px
    # 50 rows and 50 columns of 49 neighbour pairs each, 4 grain changes on each line
    assert grain_map_intercept_px(grains) == pytest.approx(2 * 50 * 49 / (2 * 50 * 4))
    holed = grains.copy()
    holed[:, 25] = 0  # a pore column: its pairs are no test line and the changes beside it are no crossings
    assert grain_map_intercept_px(holed) == pytest.approx((50 * 47 + 49 * 49) / (50 * 4 + 49 * 4))
    assert grain_map_intercept_px(np.ones((8, 8), int)) == pytest.approx(2 * 8 * 7)  # one grain: the line length
