from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from imaging.cli import app
from imaging.models import UNetConfig
from imaging.normalize import PercentileStretch
from imaging.train import CheckpointError, DatasetError, SegmentationFolder, TrainConfig, TrainResult, train
from imaging.train.checkpoint import load_checkpoint, load_model, save_checkpoint
from imaging.train.dataset import CropDataset, load_or_make_split, make_split
from imaging.train.metrics import SegmentationMetrics
from tests.imaging.segdata import CLASSES, make_dataset_folder

TINY = UNetConfig(n_classes=5, base_channels=8, depth=2)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)  # the test machine is shared; several threads on tiny tensors only contend


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset_folder(tmp_path_factory.mktemp("seg") / "data", n=8, size=64)


def config(data_dir: Path, run_dir: Path, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "dataset_dir": data_dir,
        "run_dir": run_dir,
        "model": TINY,
        "epochs": 8,
        "batch_size": 4,
        "crop_size": 32,
        "samples_per_epoch": 16,
        "lr": 1e-2,
        "val_fraction": 0.25,
        "test_fraction": 0.125,
        "device": "cpu",
        "seed": 0,
    }
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(config(data_dir, tmp_path_factory.mktemp("run") / "run", epochs=12), log=lambda s: None)


def test_training_lowers_loss_and_beats_chance(trained: TrainResult, data_dir: Path) -> None:
    losses = [h["train_loss"] for h in trained.history]
    assert len(losses) == 12
    assert losses[-1] < 0.8 * losses[0]
    # chance: every pixel called the majority class (matrix)
    folder = SegmentationFolder.load(data_dir)
    chance = SegmentationMetrics(CLASSES)
    for s in folder.samples:
        chance.update(np.zeros_like(s.mask), s.mask)
    chance_miou = chance.compute()["miou"]
    assert chance_miou < 0.15
    assert trained.best_val_miou is not None and trained.best_val_miou > max(0.35, 2.5 * chance_miou)
    assert trained.test is not None and trained.test["miou"] > 0.3
    saved = json.loads((trained.run_dir / "metrics.json").read_text())
    assert saved["best_epoch"] == trained.best_epoch and len(saved["history"]) == 12
    assert set(saved["test"]["per_class"]) == set(CLASSES)
    assert {"iou", "dice", "boundary_f1"} <= set(saved["history"][-1]["val"]["per_class"]["pore"])


def test_checkpoint_metadata_and_reload_gives_identical_outputs(trained: TrainResult, tmp_path: Path) -> None:
    model, ckpt = load_model(trained.best_path)
    meta = ckpt.metadata
    assert meta["classes"] == CLASSES and meta["pixel_size_um"] == pytest.approx(0.1)
    assert meta["epoch"] == trained.best_epoch and meta["model_config"] == TINY.model_dump()
    assert ckpt.normalization.fitted and meta["torch_version"] == str(torch.__version__)
    assert isinstance(meta["git_revision"], str) and meta["git_revision"]
    assert meta["metrics"]["val"]["miou"] == pytest.approx(trained.best_val_miou)
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        first = model(x)
        again, _ = load_model(save_checkpoint(tmp_path / "copy.pt", model, meta))
        assert torch.equal(first, again(x))


def test_corrupt_or_incompatible_checkpoint(trained: TrainResult, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(trained.best_path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=r"bad\.pt: corrupt"):
        load_checkpoint(bad)
    torch.save({"weights": 1}, bad)
    with pytest.raises(CheckpointError, match="not a matloop segmentation checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    ckpt = load_checkpoint(trained.best_path)
    other = UNetConfig(n_classes=5, base_channels=4, depth=2).build()
    from imaging.train.checkpoint import load_state

    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_state(other, ckpt)


def test_resume_continues_from_saved_epoch(data_dir: Path, tmp_path: Path) -> None:
    logs: list[str] = []
    first = train(config(data_dir, tmp_path / "a", epochs=2), log=logs.append)
    assert load_checkpoint(first.last_path).metadata["epoch"] == 1
    resumed = train(config(data_dir, tmp_path / "a", epochs=4), log=logs.append)
    assert any("resuming" in line and "after epoch 2/4" in line for line in logs)
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2, 3]
    assert (first.epochs_run, resumed.epochs_run) == (2, 4)
    assert resumed.history[:2] == first.history
    straight = train(config(data_dir, tmp_path / "b", epochs=4), log=lambda s: None)
    assert [h["train_loss"] for h in straight.history] == pytest.approx([h["train_loss"] for h in resumed.history])


def test_early_stopping(data_dir: Path, tmp_path: Path) -> None:
    # GroupNorm (no running statistics) and a vanishing lr: val mIoU never improves after the first epoch
    model = UNetConfig(n_classes=5, base_channels=4, depth=2, norm="group")
    result = train(config(data_dir, tmp_path / "es", model=model, lr=1e-30, patience=1), log=lambda s: None)
    assert result.stopped_early and result.epochs_run == 2 and result.best_epoch == 0


def test_transfer_with_frozen_encoder(trained: TrainResult, data_dir: Path, tmp_path: Path) -> None:
    source = load_checkpoint(trained.best_path).model_state
    run = tmp_path / "ft"
    cfg = config(data_dir, run, epochs=2, init_weights=trained.best_path, load="encoder", freeze_encoder_epochs=2)
    result = train(cfg, log=lambda s: None)
    assert all(h["encoder_frozen"] for h in result.history)
    after = load_checkpoint(result.last_path).model_state
    enc = [k for k in source if k.startswith("encoder.")]
    assert enc and all(torch.equal(source[k], after[k]) for k in enc)
    assert not all(torch.equal(source[k], after[k]) for k in source if k.startswith("decoder."))
    # the schedule then unfreezes: one more epoch moves the encoder
    more = train(cfg.model_copy(update={"epochs": 3}), log=lambda s: None)
    assert more.history[-1]["encoder_frozen"] is False
    moved = load_checkpoint(more.last_path).model_state
    assert not all(torch.equal(source[k], moved[k]) for k in enc if k.endswith("weight"))


def test_split_file_is_deterministic_by_seed(trained: TrainResult, data_dir: Path) -> None:
    split = json.loads((trained.run_dir / "split.json").read_text())
    names = [f"images/s{i:02d}.tif" for i in range(8)]
    assert split == make_split(names, 0, 0.25, 0.125)
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (5, 2, 1)
    assert sorted(split["train"] + split["val"] + split["test"]) == names
    assert make_split(names[::-1], 0, 0.25, 0.125) == split
    assert any(make_split(names, s, 0.25, 0.125)["val"] != split["val"] for s in range(1, 4))
    assert json.loads((trained.run_dir / "normalization.json").read_text())["low"] is not None
    with pytest.raises(DatasetError, match="split made with"):
        load_or_make_split(trained.run_dir, names, 1, 0.25, 0.125)


@settings(max_examples=25, deadline=None)
@given(
    epochs=st.integers(1, 100),
    crop=st.sampled_from([32, 64, 128]),
    lr=st.floats(1e-5, 1.0),
    balanced=st.booleans(),
    patience=st.one_of(st.none(), st.integers(1, 20)),
    device=st.sampled_from(["auto", "cpu", "cuda"]),
    load=st.sampled_from(["encoder", "full"]),
    freeze=st.integers(0, 5),
)
def test_train_config_round_trip(
    epochs: int, crop: int, lr: float, balanced: bool, patience: int | None, device: str, load: str, freeze: int
) -> None:
    cfg = TrainConfig.model_validate(
        {
            "dataset_dir": "d",
            "run_dir": "r",
            "model": {"depth": 3, "dropout": 0.1},
            "epochs": epochs,
            "crop_size": crop,
            "lr": lr,
            "class_balanced": balanced,
            "patience": patience,
            "device": device,
            "init_weights": "w.pt",
            "load": load,
            "freeze_encoder_epochs": freeze,
        }
    )
    assert TrainConfig.model_validate_json(cfg.model_dump_json()) == cfg
    assert TrainConfig.model_validate(cfg.model_dump()) == cfg


def test_crops_are_augmented_and_reproducible(data_dir: Path) -> None:
    folder = SegmentationFolder.load(data_dir)
    ds = CropDataset(folder.samples, PercentileStretch().fit([s.pixels for s in folder.samples]), 32, 4, seed=1)
    x, y = ds[0]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32 and y.shape == (32, 32) and y.dtype == torch.int64
    assert torch.equal(ds[0][0], x)
    ds.set_epoch(1)
    assert not torch.equal(ds[0][0], x)


def write_manifest(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_text(text)
    return root


def test_bad_manifest_gives_clear_errors(data_dir: Path, tmp_path: Path) -> None:
    good = json.loads((data_dir / "manifest.json").read_text())
    with pytest.raises(DatasetError, match=r"manifest\.json: not valid JSON"):
        SegmentationFolder.load(write_manifest(tmp_path / "a", "{not json"))
    with pytest.raises(DatasetError, match="field 'classes': Field required"):
        SegmentationFolder.load(
            write_manifest(tmp_path / "b", json.dumps({k: v for k, v in good.items() if k != "classes"}))
        )
    bad_size = {**good, "items": [{**good["items"][0], "pixel_size_um": -1}]}
    with pytest.raises(DatasetError, match=r"field 'items\.0\.pixel_size_um'"):
        SegmentationFolder.load(write_manifest(tmp_path / "c", json.dumps(bad_size)))
    with pytest.raises(DatasetError, match=r"no manifest\.json"):
        SegmentationFolder.load(tmp_path)
    # a mask that is missing, and one with a class index beyond the class list
    root = tmp_path / "d"
    (root / "masks").mkdir(parents=True)
    (root / "images").symlink_to(data_dir / "images")
    with pytest.raises(DatasetError, match=r"items\[0\]\.mask: .*does not exist"):
        SegmentationFolder.load(write_manifest(root, json.dumps(good)))
    from PIL import Image

    Image.fromarray(np.full((64, 64), 7, np.uint8), mode="L").save(root / "masks" / "s00.png")
    with pytest.raises(DatasetError, match="class index 7, but the manifest has 5 classes"):
        SegmentationFolder.load(write_manifest(root, json.dumps({**good, "items": good["items"][:1]})))


def test_model_class_count_must_match_manifest(data_dir: Path, tmp_path: Path) -> None:
    cfg = config(data_dir, tmp_path / "r", model=UNetConfig(n_classes=3, base_channels=4, depth=2))
    with pytest.raises(DatasetError, match=r"model\.n_classes = 3"):
        train(cfg, log=lambda s: None)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match=r"divisible by 2\*\*model\.depth"):
        TrainConfig(dataset_dir=Path("d"), run_dir=Path("r"), crop_size=36)
    with pytest.raises(ValueError, match="freeze_encoder_epochs needs init_weights"):
        TrainConfig(dataset_dir=Path("d"), run_dir=Path("r"), freeze_encoder_epochs=2)


def test_cli_train(data_dir: Path, tmp_path: Path) -> None:
    yaml_path = tmp_path / "train.yaml"
    yaml_path.write_text(
        f"dataset_dir: {data_dir}\nrun_dir: run\nepochs: 1\nbatch_size: 4\ncrop_size: 32\nsamples_per_epoch: 8\n"
        "device: cpu\nmodel: {base_channels: 4, depth: 2}\n"
    )
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(yaml_path)])
    assert result.exit_code == 0, result.output
    assert "epoch 1/1" in result.output and (tmp_path / "run" / "best.pt").exists()
    yaml_path.write_text(f"dataset_dir: {data_dir}\nrun_dir: run\nepoch: 1\n")
    bad = runner.invoke(app, ["train", str(yaml_path)])
    assert bad.exit_code == 2
    assert "epoch: Extra inputs are not permitted" in bad.output
