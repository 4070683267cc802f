"""Resume of image-level training (classifier, regressor ensemble): a run stopped after k epochs and resumed to N
ends with the same weights and metrics as an uninterrupted N-epoch run; changed configs and corrupt files are
refused with the field or file named; a finished run returns its stored result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from imaging.cli import dataset_exporter
from imaging.models.classifier import ClassifierConfig
from imaging.models.regressor import RegressorConfig
from imaging.train import CheckpointError
from imaging.train.image_checkpoint import config_differences, load_image_checkpoint
from imaging.train.tasks import (
    ClassifierTrainConfig,
    ImageTrainResult,
    RegressorTrainConfig,
    train_classifier,
    train_regressor,
)

N_EPOCHS, K_EPOCHS = 4, 2


def quiet(_: str) -> None:
    """Discards training logs."""


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 small porous-ceramic micrographs with their truth in the manifest."""
    root = tmp_path_factory.mktemp("resume") / "ceramic"
    dataset_exporter("sim")("porous_ceramic", root, n=16, seed=3, size_px=48)
    return root


def classifier(data: Path, run_dir: Path, **kw: Any) -> ClassifierTrainConfig:
    base: dict[str, Any] = {
        "dataset_dir": data,
        "run_dir": run_dir,
        "model": ClassifierConfig(n_classes=2, base_channels=4, depth=2, dropout=0.2),
        "label": "truth.porosity",
        "bins": [0.1],
        "epochs": N_EPOCHS,
        "batch_size": 4,
        "samples_per_epoch": 8,
        "patience": None,
        "val_fraction": 0.25,
        "test_fraction": 0.25,
        "device": "cpu",
    }
    return ClassifierTrainConfig(**{**base, **kw})


def regressor(data: Path, run_dir: Path, **kw: Any) -> RegressorTrainConfig:
    base: dict[str, Any] = {
        "dataset_dir": data,
        "run_dir": run_dir,
        "model": RegressorConfig(base_channels=4, depth=2, dropout=0.2, ensemble=2),
        "targets": [{"key": "truth.porosity", "unit": "1"}],
        "mc_samples": 2,  # MC dropout in validation draws from the torch RNG between epochs
        "epochs": N_EPOCHS,
        "batch_size": 4,
        "samples_per_epoch": 8,
        "patience": None,
        "val_fraction": 0.25,
        "test_fraction": 0.25,
        "device": "cpu",
    }
    return RegressorTrainConfig(**{**base, **kw})


def assert_same_run(a: ImageTrainResult, b: ImageTrainResult) -> None:
    """Identical weights (last and best), history and test metrics."""
    for name in ("last.pt", "best.pt"):
        sa = load_image_checkpoint(a.run_dir / name).model_state
        sb = load_image_checkpoint(b.run_dir / name).model_state
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{name}: {k} differs"
    assert a.history == b.history
    assert a.test == b.test
    assert (a.epochs_run, a.best_epoch, a.best_val_loss, a.stopped_early) == (
        b.epochs_run,
        b.best_epoch,
        b.best_val_loss,
        b.stopped_early,
    )


def train(kind: str, data: Path, run_dir: Path, log: Any = quiet, **kw: Any) -> ImageTrainResult:
    """Trains (or resumes) a classifier or a regressor ensemble in ``run_dir``."""
    if kind == "classifier":
        return train_classifier(classifier(data, run_dir, **kw), log=log)
    return train_regressor(regressor(data, run_dir, **kw), log=log)


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_interrupted_and_resumed_equals_uninterrupted(kind: str, data: Path, tmp_path: Path) -> None:
    full = train(kind, data, tmp_path / "full")
    part = train(kind, data, tmp_path / "part", epochs=K_EPOCHS)
    assert part.epochs_run == K_EPOCHS and len(part.history) == K_EPOCHS
    logs: list[str] = []
    resumed = train(kind, data, tmp_path / "part", log=logs.append)
    assert any(f"after epoch {K_EPOCHS}/{N_EPOCHS}" in line for line in logs), logs
    assert_same_run(full, resumed)
    assert json.loads((tmp_path / "part" / "metrics.json").read_text())["test"] == full.test

    logs.clear()  # a finished run says so and returns its result without training again
    mtime = (tmp_path / "part" / "best.pt").stat().st_mtime_ns
    again = train(kind, data, tmp_path / "part", log=logs.append)
    assert any("already finished" in line for line in logs), logs
    assert not any(line.startswith("epoch ") for line in logs)
    assert (tmp_path / "part" / "best.pt").stat().st_mtime_ns == mtime
    assert_same_run(full, again)


def test_run_stopped_before_its_test_metrics_is_evaluated_on_restart(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = train_classifier(classifier(data, run, epochs=2), log=quiet)
    blob = torch.load(run / "last.pt", weights_only=True)
    del blob["train_state"]["result"]  # as if killed after the last epoch, before the test split was scored
    torch.save(blob, run / "last.pt")
    logs: list[str] = []
    again = train_classifier(classifier(data, run, epochs=2), log=logs.append)
    assert any("evaluating" in line for line in logs) and not any(line.startswith("epoch ") for line in logs)
    assert again.test == done.test and again.history == done.history
    assert load_image_checkpoint(run / "last.pt").train_state["result"]["done"] == 2  # type: ignore[index]


def test_changed_config_is_refused_with_the_field_named(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_classifier(classifier(data, run, epochs=1), log=quiet)
    changed = classifier(data, run, model=ClassifierConfig(n_classes=2, base_channels=8, depth=2, dropout=0.2))
    with pytest.raises(CheckpointError, match=r"last\.pt.*model\.base_channels"):
        train_classifier(changed, log=quiet)
    with pytest.raises(CheckpointError, match=r"last\.pt.*\blr\b"):
        train_classifier(classifier(data, run, lr=5e-3), log=quiet)
    with pytest.raises(CheckpointError, match=r"augment_noise"):
        train_classifier(classifier(data, run, augment_noise=0.0), log=quiet)
    with pytest.raises(CheckpointError, match="classification checkpoint"):  # another task in the same run_dir
        train_regressor(regressor(data, run), log=quiet)
    # fields that change neither the model nor the data may change
    result = train_classifier(classifier(data, run, epochs=2, patience=5, num_workers=0), log=quiet)
    assert result.epochs_run == 2


def test_regressor_ensemble_change_is_refused(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_regressor(regressor(data, run, epochs=1), log=quiet)
    bigger = regressor(data, run, model=RegressorConfig(base_channels=4, depth=2, dropout=0.2, ensemble=3))
    with pytest.raises(CheckpointError, match=r"model\.ensemble"):
        train_regressor(bigger, log=quiet)
    with pytest.raises(CheckpointError, match="mc_samples"):
        train_regressor(regressor(data, run, mc_samples=0), log=quiet)


def test_corrupt_last_checkpoint_names_the_file(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=rf"{run / 'last.pt'}.*corrupt"):
        train_classifier(classifier(data, run), log=quiet)


def test_last_checkpoint_without_train_state_is_refused(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_classifier(classifier(data, run, epochs=1), log=quiet)
    blob = torch.load(run / "last.pt", weights_only=True)
    blob["train_state"] = None
    torch.save(blob, run / "last.pt")
    with pytest.raises(CheckpointError, match=r"last\.pt.*no training state"):
        train_classifier(classifier(data, run), log=quiet)


def test_config_differences_names_nested_fields() -> None:
    a = {"lr": 1.0, "epochs": 3, "model": {"depth": 2, "ensemble": 3}}
    b = {"lr": 1.0, "epochs": 9, "model": {"depth": 3, "ensemble": 3}, "extra": 1}
    assert config_differences(a, b) == ["epochs", "extra", "model.depth"]
    assert config_differences(a, b, ignore=("epochs",)) == ["extra", "model.depth"]
    assert config_differences(a, a) == []
