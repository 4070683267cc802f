"""The CUDA paths: bf16 mixed-precision training, compiled and bf16 tiled inference, and the U-Net pipeline on the
GPU agree with the CPU. Skipped where torch sees no CUDA device (CI); run on a GPU machine with ``-m gpu``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import torch

from imaging.base import ImageInput
from imaging.infer import predict_tiled
from imaging.models import UNetConfig
from imaging.registry import make_analyzer
from imaging.train import TrainConfig, TrainResult, train
from imaging.train.checkpoint import load_model
from tests.imaging.segdata import make_dataset_folder
from tests.imaging.synth import make_micrograph

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def _config(data: Path, run: Path, device: str, amp: bool) -> TrainConfig:
    return TrainConfig(
        dataset_dir=data,
        run_dir=run,
        model=UNetConfig(n_classes=5, base_channels=16, depth=3, dropout=0.1),
        epochs=25,
        batch_size=8,
        crop_size=64,
        samples_per_epoch=64,
        lr=3e-3,
        val_fraction=0.2,
        test_fraction=0.0,
        device=device,  # type: ignore[arg-type]
        amp=amp,
        seed=0,
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset_folder(tmp_path_factory.mktemp("gpu") / "data", n=12, size=128)


@pytest.fixture(scope="module")
def amp_run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(_config(data, tmp_path_factory.mktemp("run") / "amp", "cuda", True), log=lambda s: None)


def test_bf16_training_on_cuda_learns_like_fp32(amp_run: TrainResult, data: Path, tmp_path: Path) -> None:
    fp32 = train(_config(data, tmp_path / "fp32", "cuda", False), log=lambda s: None)
    first, last = amp_run.history[0]["train_loss"], amp_run.history[-1]["train_loss"]
    assert last < 0.6 * first, (first, last)
    amp_iou, fp32_iou = amp_run.history[-1]["val"]["miou"], fp32.history[-1]["val"]["miou"]
    assert amp_iou > 0.9 * fp32_iou, (amp_iou, fp32_iou)


def test_cuda_checkpoint_predicts_the_same_on_cpu(amp_run: TrainResult) -> None:
    model, _ = load_model(amp_run.best_path)
    image = make_micrograph(size=200, n_grains=14, porosity=0.05, second_fraction=0.2, seed=3).image
    cpu = predict_tiled(model, image, tile=64, overlap=16, device="cpu")
    fp32 = predict_tiled(model, image, tile=64, overlap=16, device="cuda", amp=False)
    bf16 = predict_tiled(model, image, tile=64, overlap=16, device="cuda", amp=True)
    np.testing.assert_allclose(fp32.probs, cpu.probs, atol=1e-3)
    assert (bf16.labels == cpu.labels).mean() > 0.98


def test_compiled_inference_matches_eager(amp_run: TrainResult) -> None:
    model, _ = load_model(amp_run.best_path)
    image = np.random.default_rng(0).random((160, 224), dtype=np.float32)
    eager = predict_tiled(model, image, tile=64, overlap=16, device="cuda", amp=False)
    compiled = predict_tiled(model, image, tile=64, overlap=16, device="cuda", amp=False, compile=True)
    np.testing.assert_allclose(compiled.probs, eager.probs, atol=1e-3)


def test_pipeline_features_agree_between_cpu_and_cuda(amp_run: TrainResult, tmp_path: Path) -> None:
    m = make_micrograph(size=256, n_grains=20, porosity=0.04, second_fraction=0.25, pixel_size_um=0.1, seed=11)
    path = tmp_path / "f0.tif"
    tifffile.imwrite(path, (m.image * 65535).round().astype(np.uint16), metadata={"pixel_size_um": 0.1})
    frame = ImageInput(path)
    out = {}
    for device in ("cpu", "cuda"):
        pipe = make_analyzer("unet", {"checkpoint": amp_run.best_path, "device": device, "tile": 128, "overlap": 32})
        out[device] = pipe.analyze([frame])
    gpu = {f.name: f for f in out["cuda"]}
    for f in out["cpu"]:
        g = gpu[f.name]
        assert abs(g.value - f.value) <= max(0.05 * abs(f.value), f.sigma, 2e-3), (f.name, f.value, g.value)


def test_bf16_image_level_training_on_cuda(tmp_path: Path) -> None:
    from imaging.cli import dataset_exporter
    from imaging.models.classifier import ClassifierConfig
    from imaging.models.regressor import RegressorConfig
    from imaging.properties import MicrostructureClassifier, PropertyPredictor
    from imaging.train.tasks import (
        ClassifierTrainConfig,
        RegressorTrainConfig,
        TargetSpec,
        train_classifier,
        train_regressor,
    )

    data = tmp_path / "ceramic"
    dataset_exporter("sim")("porous_ceramic", data, n=24, seed=0, size_px=64)
    common: dict[str, Any] = {"dataset_dir": data, "epochs": 4, "batch_size": 8, "device": "cuda", "amp": True}
    clf = train_classifier(
        ClassifierTrainConfig(
            **common,
            run_dir=tmp_path / "clf",
            model=ClassifierConfig(n_classes=2, base_channels=8, depth=3),
            label="truth.porosity",
            bins=[0.05],
        ),
        log=lambda s: None,
    )
    reg = train_regressor(
        RegressorTrainConfig(
            **common,
            run_dir=tmp_path / "reg",
            model=RegressorConfig(n_targets=1, base_channels=8, depth=3, dropout=0.1),
            targets=[TargetSpec(key="truth.porosity", unit="1")],
        ),
        log=lambda s: None,
    )
    assert all(np.isfinite(h["train_loss"]) for h in clf.history + reg.history)
    pixels = tifffile.imread(next((data / "images").glob("*.tif"))).astype(np.float32)
    _, probs = MicrostructureClassifier(clf.best_path, device="cpu").predict(pixels)
    assert abs(sum(probs.values()) - 1) < 1e-5
    assert PropertyPredictor(reg.best_path, device="cpu").predict(pixels)
