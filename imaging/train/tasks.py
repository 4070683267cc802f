"""Training of image-level models on a labelled folder (see ``imaging.train.image_labels``):
``train_classifier(ClassifierTrainConfig)`` and ``train_regressor(RegressorTrainConfig)``.

Both: seeded split (``split.json``, reused when present), intensity normalization (``normalization.json``),
augmented random crops, AdamW, early stopping on the validation loss (cross-entropy; Gaussian NLL), ``best.pt`` and
``last.pt`` image-model checkpoints, and ``metrics.json`` (history, best epoch, test metrics of ``best.pt``).
Regression targets are standardized with the training mean and standard deviation, stored as ``target_scaler``.

Resume: ``last.pt`` is written atomically every epoch with the weights (every ensemble member: they are one module),
the optimizer, the early-stopping state (best loss, epochs since, best weights), the history and the RNG states.
When it exists at the start, training goes on from it, and gives the same weights and metrics as an uninterrupted
run; only ``RESUME_FREE`` fields may differ from the stored config (more epochs, other patience, device,
workers), anything else that shapes the model or the data is refused. A run that already finished returns its
stored result.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn
from torch.utils.data import DataLoader

from imaging.models.classifier import ClassifierConfig, CNNClassifier
from imaging.models.regressor import RegressorConfig, RegressorEnsemble, gaussian_nll, predict_gaussian
from imaging.normalize import PercentileStretch
from imaging.train.checkpoint import CheckpointError
from imaging.train.dataset import Augment, DatasetError, load_or_make_split
from imaging.train.image_checkpoint import (
    ImageCheckpoint,
    Task,
    config_differences,
    load_image_checkpoint,
    load_image_model,
    rng_states,
    save_image_checkpoint,
    set_rng_states,
)
from imaging.train.image_labels import (
    LabelledCrops,
    LabelledFolder,
    LabelledImage,
    Missing,
    Source,
    encode_classes,
    load_labelled_folder,
    numeric_targets,
)
from imaging.train.image_metrics import classification_metrics, regression_metrics
from imaging.train.trainer import class_weights, resolve_device, seed_everything


class ImageTrainConfig(BaseModel):
    """Fields shared by the image-level training configs; frozen and strict (unknown keys are errors)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: Literal[1] = 1
    dataset_dir: Path
    run_dir: Path
    source: Source = Field(default="auto", description="auto: labels_file when it exists, else manifest.json")
    labels_file: str = Field(default="labels.csv", description="CSV of labels, relative to dataset_dir")
    missing: Missing = Field(default="error", description="an image without a label value: error, or drop it")
    pixel_size_um: float | None = Field(default=None, gt=0, description="overrides the files' pixel size")
    epochs: int = Field(default=40, ge=1)
    batch_size: int = Field(default=8, ge=1)
    crop_size: int | None = Field(default=None, ge=4, description="None: the smallest training image side")
    samples_per_epoch: int | None = Field(default=None, ge=1, description="None: the number of training images")
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    normalization: Literal["per_image", "dataset"] = "dataset"
    augment_flips: bool = True
    augment_rot90: bool = True
    augment_brightness: float = Field(default=0.05, ge=0, le=0.5)
    augment_contrast: float = Field(default=0.1, ge=0, lt=1)
    augment_noise: float = Field(default=0.02, ge=0, le=0.5)
    augment_blur_px: float = Field(default=0.0, ge=0, le=4)
    patience: int | None = Field(default=10, ge=1, description="epochs without a lower val loss before stopping")
    seed: int = Field(default=0, ge=0)
    val_fraction: float = Field(default=0.15, ge=0, lt=1)
    test_fraction: float = Field(default=0.15, ge=0, lt=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = Field(default=False, description="bf16 autocast for the forward pass; used on CUDA only")
    num_workers: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _check_common(self) -> ImageTrainConfig:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must be below 1")
        return self

    def augment(self) -> Augment:
        return Augment(
            flips=self.augment_flips,
            rot90=self.augment_rot90,
            brightness=self.augment_brightness,
            contrast=self.augment_contrast,
            noise=self.augment_noise,
            blur_px=self.augment_blur_px,
        )


class ClassifierTrainConfig(ImageTrainConfig):
    """A microstructure classifier: ``label`` is a CSV column or a dotted manifest key (``sample_truth.system``),
    categorical, or numeric and cut into classes at ``bins``."""

    type: Literal["classifier_train"] = "classifier_train"
    model: ClassifierConfig = ClassifierConfig()
    label: str = Field(min_length=1)
    bins: list[float] | None = Field(default=None, min_length=1, description="bin edges of a numeric label")
    class_names: list[str] | None = Field(default=None, min_length=2, description="class order (and bin names)")
    class_balanced: bool = Field(default=True, description="inverse-frequency weighted cross-entropy")
    max_class_weight: float = Field(default=20.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> ClassifierTrainConfig:
        if self.bins is not None:
            if any(not math.isfinite(b) for b in self.bins) or any(b >= c for b, c in itertools.pairwise(self.bins)):
                raise ValueError(f"bins must be finite and strictly increasing, got {self.bins}")
            if self.model.n_classes != len(self.bins) + 1:
                raise ValueError(
                    f"model.n_classes = {self.model.n_classes}, but {len(self.bins)} bins make "
                    f"{len(self.bins) + 1} classes"
                )
        if self.class_names is not None:
            if len(set(self.class_names)) != len(self.class_names):
                raise ValueError(f"class_names has duplicates: {self.class_names}")
            if len(self.class_names) != self.model.n_classes:
                raise ValueError(
                    f"class_names lists {len(self.class_names)} classes, model.n_classes = {self.model.n_classes}"
                )
        if self.crop_size is not None and self.crop_size < self.model.min_size:
            raise ValueError(f"crop_size {self.crop_size} is below 2**(model.depth-1) = {self.model.min_size}")
        return self


class TargetSpec(BaseModel):
    """One regression target: its CSV column or dotted manifest key, its name (default: the key's last part) and
    its physical unit."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    key: str = Field(min_length=1)
    name: str | None = None
    unit: str = ""

    @property
    def label(self) -> str:
        return self.name or self.key.rsplit(".", 1)[-1]


class RegressorTrainConfig(ImageTrainConfig):
    """A property regressor with uncertainty (heteroscedastic head; ensemble and/or MC dropout)."""

    type: Literal["regressor_train"] = "regressor_train"
    model: RegressorConfig = RegressorConfig()
    targets: list[TargetSpec] = Field(min_length=1)
    mc_samples: int = Field(default=0, ge=0, le=256, description="MC dropout passes in evaluation and prediction")

    @model_validator(mode="after")
    def _check(self) -> RegressorTrainConfig:
        if self.model.n_targets != len(self.targets):
            raise ValueError(f"model.n_targets = {self.model.n_targets}, but targets lists {len(self.targets)}")
        names = [t.label for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError(f"targets have duplicate names: {names}")
        if self.mc_samples and self.model.dropout <= 0:
            raise ValueError("mc_samples > 0 needs model.dropout > 0")
        if self.crop_size is not None and self.crop_size < self.model.min_size:
            raise ValueError(f"crop_size {self.crop_size} is below 2**(model.depth-1) = {self.model.min_size}")
        return self


@dataclass(frozen=True)
class ImageTrainResult:
    """What a run produced; ``test``: metrics of ``best.pt`` on the test split (``None`` when it is empty)."""

    run_dir: Path
    best_path: Path
    last_path: Path
    epochs_run: int
    best_epoch: int
    best_val_loss: float | None
    stopped_early: bool
    history: list[dict[str, Any]]
    test: dict[str, Any] | None


@dataclass
class _Prepared:
    folder: LabelledFolder
    train: list[LabelledImage]
    val: list[LabelledImage]
    test: list[LabelledImage]
    norm: PercentileStretch
    device: torch.device
    crop: int


def _prepare(config: ImageTrainConfig, keys: Sequence[str], min_size: int) -> _Prepared:
    config.run_dir.mkdir(parents=True, exist_ok=True)
    folder = load_labelled_folder(
        config.dataset_dir,
        keys,
        source=config.source,
        labels_file=config.labels_file,
        missing=config.missing,
        pixel_size_um=config.pixel_size_um,
    )
    split = load_or_make_split(
        config.run_dir, [im.name for im in folder.images], config.seed, config.val_fraction, config.test_fraction
    )
    train_s, val_s, test_s = (folder.by_name(split[k]) for k in ("train", "val", "test"))
    if not train_s:
        raise DatasetError(f"{config.dataset_dir}: the split left no training images")
    small = min(min(im.pixels.shape) for im in folder.images)
    if small < min_size:
        raise DatasetError(f"{config.dataset_dir}: an image is {small} px across; the model needs ≥ {min_size}")
    crop = config.crop_size or min(min(im.pixels.shape) for im in train_s)
    norm = PercentileStretch()
    if config.normalization == "dataset":
        norm = norm.fit([im.pixels for im in train_s])
    (config.run_dir / "normalization.json").write_text(json.dumps(norm.model_dump(), indent=2))
    return _Prepared(folder, train_s, val_s, test_s, norm, resolve_device(config.device), crop)


def _batches(images: Sequence[NDArray[np.float32]], max_batch: int = 32) -> list[tuple[list[int], torch.Tensor]]:
    """Whole images grouped by shape into (indices, (B, 1, H, W) tensor) batches."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(tuple(im.shape), []).append(i)
    out = []
    for idx in groups.values():
        for s in range(0, len(idx), max_batch):
            part = idx[s : s + max_batch]
            out.append((part, torch.from_numpy(np.stack([images[i] for i in part]).astype(np.float32))[:, None]))
    return out


#: config fields that may change when a run is resumed: they change neither the model nor the data it sees
RESUME_FREE = ("epochs", "patience", "device", "num_workers", "run_dir")
#: checkpoint metadata that must match on resume: it describes the data (labels, classes, scaling, split)
RESUME_DATA_KEYS = ("task", "classes", "label", "bins", "targets", "target_scaler", "normalization", "split")


@dataclass
class _FitOutcome:
    """What ``_fit`` returns; ``finished_result`` is the stored result of a run that had already finished."""

    history: list[dict[str, Any]]
    best_epoch: int
    best_val: float | None
    stopped: bool
    done: int
    last_metadata: dict[str, Any]
    last_state: dict[str, Any] | None
    finished_result: dict[str, Any] | None = None


def _value_at(d: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        d = d.get(part, "<absent>") if isinstance(d, dict) else "<absent>"
    return d


def _check_resumable(config: ImageTrainConfig, ckpt: ImageCheckpoint, metadata: dict[str, Any]) -> None:
    """``CheckpointError`` naming the field when the stored run's config or data differ from this one's."""
    path = ckpt.path
    if ckpt.train_state is None:
        raise CheckpointError(
            f"{path}: holds no training state (written by an older matloop or not by training); "
            f"delete it or use a new run_dir"
        )
    stored = ckpt.metadata.get("train_config")
    if not isinstance(stored, dict):
        raise CheckpointError(f"{path}: metadata.train_config is missing; delete it or use a new run_dir")
    new = config.model_dump(mode="json")
    stored, new = dict(stored), dict(new)
    for d in (stored, new):
        if "dataset_dir" in d:
            d["dataset_dir"] = str(Path(str(d["dataset_dir"])).resolve())
    diff = config_differences(stored, new, RESUME_FREE)
    if diff:
        shown = "; ".join(f"{k}: stored {_value_at(stored, k)!r}, now {_value_at(new, k)!r}" for k in diff[:4])
        raise CheckpointError(
            f"{path}: cannot resume, the config differs from the stored run's in {diff} ({shown}); these change the "
            f"model or the data. Only {list(RESUME_FREE)} may change on resume: use a new run_dir, or delete "
            f"{path} to start over"
        )
    data_diff = [k for k in RESUME_DATA_KEYS if ckpt.metadata.get(k) != metadata.get(k)]
    if data_diff:
        k = data_diff[0]
        raise CheckpointError(
            f"{path}: cannot resume, the dataset gives other {data_diff} than the stored run "
            f"({k}: stored {ckpt.metadata.get(k)!r}, now {metadata.get(k)!r}); use a new run_dir"
        )


def _fit(
    config: ImageTrainConfig,
    model: nn.Module,
    data: LabelledCrops,
    prep: _Prepared,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    validate: Callable[[], dict[str, Any] | None],
    metadata: Callable[[int, dict[str, Any]], dict[str, Any]],
    log: Callable[[str], None],
    task: Task,
) -> _FitOutcome:
    """The shared epoch loop, resumed from ``run_dir/last.pt`` when it exists (see the module docstring)."""
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched: torch.optim.lr_scheduler.LRScheduler | None = None  # the learning rate is constant here
    run_dir = config.run_dir
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    history: list[dict[str, Any]] = []
    best, best_epoch, since_best, stopped, done = math.inf, -1, 0, False, 0
    best_weights: dict[str, torch.Tensor] | None = None
    best_meta: dict[str, Any] | None = None
    last_meta, last_state = metadata(-1, {}), None
    if last_path.exists():
        ckpt = load_image_checkpoint(last_path, task)
        _check_resumable(config, ckpt, last_meta)
        st = ckpt.train_state
        assert st is not None
        try:
            model.load_state_dict(ckpt.model_state)
            opt.load_state_dict(st["optimizer"])
            if sched is not None and st.get("scheduler") is not None:
                sched.load_state_dict(st["scheduler"])
            history = list(st["history"])
            best, best_epoch, since_best = float(st["best_loss"]), int(st["best_epoch"]), int(st["since_best"])
            best_weights, best_meta = st["best_model"], st["best_metadata"]
            set_rng_states(st["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"{last_path}: training state is incomplete or does not fit the model "
                f"({type(exc).__name__}: {exc}); delete it or use a new run_dir"
            ) from exc
        done = int(ckpt.metadata["epoch"]) + 1
        last_meta, last_state = ckpt.metadata, st
        if best_weights is not None and best_meta is not None and not best_path.exists():
            keep = {k: v.detach().clone() for k, v in model.state_dict().items()}
            model.load_state_dict(best_weights)
            save_image_checkpoint(best_path, model, best_meta)
            model.load_state_dict(keep)
        patience_hit = config.patience is not None and since_best >= config.patience
        if done >= config.epochs or patience_hit:
            stopped = patience_hit and done < config.epochs
            result = st.get("result")
            if isinstance(result, dict) and result.get("done") == done:
                log(f"{run_dir}: training already finished after {done} epochs (best epoch {best_epoch + 1})")
                best_val = best if history and history[best_epoch]["val"] is not None else None
                return _FitOutcome(history, best_epoch, best_val, stopped, done, last_meta, last_state, result)
            log(f"{run_dir}: all {done} epochs were trained; evaluating")
        else:
            log(f"resuming from {last_path} after epoch {done}/{config.epochs}")
    model.to(prep.device)
    for epoch in range(done, config.epochs):
        if config.patience is not None and since_best >= config.patience:
            stopped = True
            break
        data.set_epoch(epoch)
        loader = DataLoader(
            data,
            batch_size=config.batch_size,
            shuffle=True,
            num_workers=config.num_workers,
            generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch),
        )
        model.train()
        losses = []
        for x, y in loader:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=config.amp and prep.device.type == "cuda"):
                loss = loss_fn(x.to(prep.device), y.to(prep.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            losses.append(float(loss.detach()))
        train_loss = float(np.mean(losses))
        val = validate()
        entry = {"epoch": epoch, "train_loss": train_loss, "val": val}
        history.append(entry)
        score = val["loss"] if val is not None else train_loss
        meta = metadata(epoch, {"val": val, "train_loss": train_loss})
        if score < best:
            best, best_epoch, since_best = score, epoch, 0
            best_weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            best_meta = meta
            save_image_checkpoint(best_path, model, meta)
        else:
            since_best += 1
        last_state = {
            "optimizer": opt.state_dict(),
            "scheduler": None if sched is None else sched.state_dict(),
            "history": history,
            "best_loss": best,
            "best_epoch": best_epoch,
            "since_best": since_best,
            "best_model": best_weights,
            "best_metadata": best_meta,
            "rng": rng_states(),
        }
        last_meta = meta
        save_image_checkpoint(last_path, model, meta, last_state)
        _write_metrics(run_dir, history, best_epoch, None)
        log(
            f"epoch {epoch + 1}/{config.epochs}  train loss {train_loss:.4f}  val loss "
            + ("-" if val is None else f"{val['loss']:.4f}")
        )
        done = epoch + 1
    best_val = best if history and history[best_epoch]["val"] is not None else None
    return _FitOutcome(history, best_epoch, best_val, stopped, done, last_meta, last_state)


def _finish(
    config: ImageTrainConfig, model: nn.Module, fit: _FitOutcome, test: dict[str, Any] | None
) -> ImageTrainResult:
    """Writes ``metrics.json`` and marks ``last.pt`` finished (with the test metrics), and returns the result."""
    if fit.finished_result is None:
        _write_metrics(config.run_dir, fit.history, fit.best_epoch, test)
        if fit.last_state is not None:
            state = {**fit.last_state, "result": {"done": fit.done, "test": test}}
            save_image_checkpoint(config.run_dir / "last.pt", model, fit.last_metadata, state)
    return ImageTrainResult(
        config.run_dir,
        config.run_dir / "best.pt",
        config.run_dir / "last.pt",
        fit.done,
        fit.best_epoch,
        fit.best_val,
        fit.stopped,
        fit.history,
        test,
    )


def _write_metrics(run_dir: Path, history: list[dict[str, Any]], best_epoch: int, test: dict[str, Any] | None) -> None:
    tmp = run_dir / "metrics.json.tmp"
    tmp.write_text(json.dumps({"best_epoch": best_epoch, "history": history, "test": test}, indent=2))
    tmp.replace(run_dir / "metrics.json")


def _common_metadata(config: ImageTrainConfig, prep: _Prepared, epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "pixel_size_um": prep.folder.pixel_size_um,
        "normalization": prep.norm.model_dump(),
        "model_config": config.model.model_dump(),  # type: ignore[attr-defined]
        "train_config": config.model_dump(mode="json"),
        "label_source": prep.folder.source,
        "generator": prep.folder.generator,
        "split": {
            "val_fraction": config.val_fraction,
            "test_fraction": config.test_fraction,
            "seed": config.seed,
            "n_train": len(prep.train),
            "n_val": len(prep.val),
            "n_test": len(prep.test),
        },
        "epoch": epoch,
        "metrics": metrics,
    }


# --- classification --------------------------------------------------------------------------------------------------


@torch.inference_mode()
def classifier_probs(model: CNNClassifier, images: Sequence[NDArray[np.float32]], device: torch.device) -> NDArray:
    """Class probabilities (N, K) of normalized whole images."""
    model.eval()
    out = np.zeros((len(images), 0))
    for idx, x in _batches(images):
        p = model(x.to(device)).float().softmax(1).cpu().numpy()
        if out.shape[1] == 0:
            out = np.zeros((len(images), p.shape[1]))
        out[idx] = p
    return out


def train_classifier(config: ClassifierTrainConfig, log: Callable[[str], None] = print) -> ImageTrainResult:
    """Trains a ``CNNClassifier`` as ``config`` says; see the module docstring."""
    prep = _prepare(config, [config.label], config.model.min_size)
    everything = prep.train + prep.val + prep.test
    classes, codes = encode_classes(
        [im.labels[config.label] for im in everything], config.label, config.bins, config.class_names
    )
    if len(classes) != config.model.n_classes:
        raise DatasetError(
            f"model.n_classes = {config.model.n_classes}, but label {config.label!r} has "
            f"{len(classes)} classes {classes}"
        )
    code = {im.name: int(c) for im, c in zip(everything, codes, strict=True)}
    y_train = torch.tensor([code[im.name] for im in prep.train], dtype=torch.int64)
    freq = np.bincount(y_train.numpy(), minlength=len(classes)) / len(y_train)
    weight = class_weights(freq, config.max_class_weight).to(prep.device) if config.class_balanced else None
    seed_everything(config.seed)
    model = config.model.build().to(prep.device)
    data = LabelledCrops(
        [prep.norm.transform(im.pixels) for im in prep.train],
        y_train,
        prep.crop,
        config.samples_per_epoch or len(prep.train),
        config.seed,
        config.augment(),
    )

    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x).float(), y, weight=weight)

    def evaluate(m: CNNClassifier, images: list[LabelledImage]) -> dict[str, Any]:
        probs = classifier_probs(m, [prep.norm.transform(im.pixels) for im in images], prep.device)
        out = classification_metrics(np.array([code[im.name] for im in images]), probs, classes)
        return {"loss": out["cross_entropy"], **out}

    def metadata(epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            "task": "classification",
            "classes": classes,
            "label": config.label,
            "bins": config.bins,
            **_common_metadata(config, prep, epoch, metrics),
        }

    fit = _fit(
        config,
        model,
        data,
        prep,
        loss_fn,
        lambda: evaluate(model, prep.val) if prep.val else None,
        metadata,
        log,
        "classification",
    )
    if fit.finished_result is not None:
        return _finish(config, model, fit, fit.finished_result.get("test"))
    test = None
    if prep.test:
        best_model, _ = load_image_model(config.run_dir / "best.pt", "classification", prep.device)
        assert isinstance(best_model, CNNClassifier)
        test = evaluate(best_model, prep.test)
        log(f"test: accuracy {test['accuracy']:.3f}, macro-F1 {test['macro_f1']:.3f} (n = {test['n']})")
    return _finish(config, model, fit, test)


# --- regression ------------------------------------------------------------------------------------------------------


@torch.inference_mode()
def regressor_predict(
    model: RegressorEnsemble, images: Sequence[NDArray[np.float32]], device: torch.device, mc_samples: int = 0
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(mean, aleatoric variance, epistemic variance), each (N, T) in standardized units, of normalized images."""
    parts: list[tuple[list[int], Any]] = []
    for idx, x in _batches(images):
        parts.append((idx, predict_gaussian(model, x.to(device), mc_samples)))
    t = parts[0][1].mean.shape[1]
    mean, alea, epi = (np.zeros((len(images), t)) for _ in range(3))
    for idx, p in parts:
        mean[idx], alea[idx], epi[idx] = (a.float().cpu().numpy() for a in (p.mean, p.aleatoric, p.epistemic))
    return mean, alea, epi


def calibrate_sigma(
    path: Path,
    prep: Any,
    y_all: dict[str, NDArray[np.float64]],
    mu: NDArray[np.float64],
    sd: NDArray[np.float64],
    mc_samples: int,
) -> NDArray[np.float64]:
    """Per-target factor s on σ that makes the validation residuals unit-variance (s² = mean of z², the Gaussian
    NLL optimum for fixed means; clipped to [0.05, 20]); stored in the checkpoint as ``sigma_scale``. Ensembles and
    MC dropout are often over- or under-confident by a roughly constant factor; with few validation images the
    factor is itself uncertain, so it is reported in the log and metadata."""
    model, ckpt = load_image_model(path, "regression", prep.device)
    assert isinstance(model, RegressorEnsemble)
    z_mean, alea, epi = regressor_predict(
        model, [prep.norm.transform(im.pixels) for im in prep.val], prep.device, mc_samples
    )
    y = (np.stack([y_all[im.name] for im in prep.val]) - mu) / sd
    r2 = (y - z_mean) ** 2 / np.maximum(alea + epi, 1e-12)
    scale = np.clip(np.sqrt(r2.mean(axis=0)), 0.05, 20.0)
    save_image_checkpoint(path, model, {**ckpt.metadata, "sigma_scale": [float(x) for x in scale]})
    return np.asarray(scale, dtype=np.float64)


def train_regressor(config: RegressorTrainConfig, log: Callable[[str], None] = print) -> ImageTrainResult:
    """Trains a ``RegressorEnsemble`` (every member on the same batches, loss = sum of member NLLs)."""
    keys = [t.key for t in config.targets]
    prep = _prepare(config, keys, config.model.min_size)
    y_all = {
        im.name: row
        for im, row in zip(
            prep.train + prep.val + prep.test, numeric_targets(prep.train + prep.val + prep.test, keys), strict=True
        )
    }
    y_train = np.stack([y_all[im.name] for im in prep.train])
    mu, sd = y_train.mean(0), y_train.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    scaler = {"mean": mu.tolist(), "std": sd.tolist()}
    seed_everything(config.seed)
    model = config.model.build().to(prep.device)
    z_train = torch.as_tensor((y_train - mu) / sd, dtype=torch.float32)
    data = LabelledCrops(
        [prep.norm.transform(im.pixels) for im in prep.train],
        z_train,
        prep.crop,
        config.samples_per_epoch or len(prep.train),
        config.seed,
        config.augment(),
    )
    targets = [{"name": t.label, "key": t.key, "unit": t.unit} for t in config.targets]

    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        means, logvars = model(x)
        nll = (gaussian_nll(m.float(), lv.float(), y) for m, lv in zip(means, logvars, strict=True))
        return sum(nll, torch.zeros((), device=y.device))

    def evaluate(
        m: RegressorEnsemble, images: list[LabelledImage], scale: NDArray[np.float64] | None = None
    ) -> dict[str, Any]:
        z_mean, alea, epi = regressor_predict(
            m, [prep.norm.transform(im.pixels) for im in images], prep.device, config.mc_samples
        )
        y = np.stack([y_all[im.name] for im in images])
        var = np.maximum(alea + epi, 1e-12) * (1.0 if scale is None else scale**2)
        z = (y - mu) / sd
        loss = float((0.5 * np.log(2 * np.pi * var) + 0.5 * (z - z_mean) ** 2 / var).mean())
        per_target = {}
        for j, t in enumerate(targets):
            metrics = regression_metrics(y[:, j], z_mean[:, j] * sd[j] + mu[j], np.sqrt(var[:, j]) * sd[j], mu[j])
            metrics["mean_aleatoric_sigma"] = float(np.sqrt(alea[:, j]).mean() * sd[j])
            metrics["mean_epistemic_sigma"] = float(np.sqrt(epi[:, j]).mean() * sd[j])
            per_target[t["name"]] = {"unit": t["unit"], **metrics}
        return {"loss": loss, "n": len(images), "targets": per_target}

    def metadata(epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            "task": "regression",
            "targets": targets,
            "target_scaler": scaler,
            "mc_samples": config.mc_samples,
            **_common_metadata(config, prep, epoch, metrics),
        }

    fit = _fit(
        config,
        model,
        data,
        prep,
        loss_fn,
        lambda: evaluate(model, prep.val) if prep.val else None,
        metadata,
        log,
        "regression",
    )
    if fit.finished_result is not None:
        return _finish(config, model, fit, fit.finished_result.get("test"))
    scale = None
    if prep.val and (config.run_dir / "best.pt").exists():
        scale = calibrate_sigma(config.run_dir / "best.pt", prep, y_all, mu, sd, config.mc_samples)
        log("σ calibrated on the validation split: × " + ", ".join(f"{x:.3g}" for x in scale))
    test = None
    if prep.test:
        best_model, _ = load_image_model(config.run_dir / "best.pt", "regression", prep.device)
        assert isinstance(best_model, RegressorEnsemble)
        test = evaluate(best_model, prep.test, scale)
        for name, m in test["targets"].items():
            log(
                f"test {name}: RMSE {m['rmse']:.4g} (mean predictor {m['baseline_rmse']:.4g}), R² {m['r2']}, "
                f"1σ/2σ coverage {m['coverage_1sigma']:.2f}/{m['coverage_2sigma']:.2f} (n = {m['n']})"
            )
    return _finish(config, model, fit, test)
