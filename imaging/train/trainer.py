"""``train(TrainConfig) -> TrainResult``: seeded U-Net training on a dataset folder, with checkpoints, resume,
early stopping, transfer learning (load encoder or full weights; freeze the encoder for the first epochs) and
per-class validation metrics each epoch.

Run folder: ``split.json``, ``normalization.json``, ``last.pt`` (every epoch; resumed from when present),
``best.pt`` (best validation mIoU), ``metrics.json`` (history per epoch, best epoch, test metrics).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader

from imaging.models.config import UNetConfig
from imaging.models.unet import UNet
from imaging.normalize import PercentileStretch
from imaging.train.checkpoint import CheckpointError, load_checkpoint, load_model, load_state, save_checkpoint
from imaging.train.dataset import (
    Augment,
    CropDataset,
    DatasetError,
    Sample,
    SegmentationFolder,
    class_frequencies,
    load_or_make_split,
)
from imaging.train.metrics import SegmentationMetrics, format_metrics


class TrainConfig(BaseModel):
    """Everything a training run needs; frozen and strict (unknown keys are errors)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["unet_train"] = "unet_train"
    version: Literal[1] = 1
    dataset_dir: Path
    run_dir: Path
    model: UNetConfig = UNetConfig()
    epochs: int = Field(default=50, ge=1)
    batch_size: int = Field(default=8, ge=1)
    crop_size: int = Field(default=128, ge=8)
    samples_per_epoch: int = Field(default=256, ge=1, description="random crops drawn per epoch")
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    class_balanced: bool = Field(default=True, description="inverse-frequency weighted cross-entropy")
    dice_weight: float = Field(default=0.0, ge=0, description="weight of a soft Dice term added to the loss")
    max_class_weight: float = Field(default=50.0, gt=0, description="cap on class_balanced weights")
    class_weight_power: float = Field(
        default=1.0, gt=0, le=1, description="class_balanced weights ∝ frequency^−power (0.5: square-root balancing)"
    )
    normalization: Literal["per_image", "dataset"] = Field(
        default="dataset",
        description="per_image: each image stretched by its own 0.5/99.5 percentiles (robust to another microscope's "
        "brightness and contrast); dataset: the training set's percentiles, fixed",
    )
    augment_noise: float = Field(default=0.03, ge=0, le=0.5, description="max σ of added Gaussian noise (normalized)")
    augment_blur_px: float = Field(default=0.0, ge=0, le=4, description="max σ of a random Gaussian blur, pixels")
    lr_schedule: Literal["constant", "cosine"] = Field(
        default="constant", description="cosine: decay to 1 % of lr over all epochs, after a one-epoch warm-up"
    )
    patience: int | None = Field(default=10, ge=1, description="epochs without val mIoU gain before stopping")
    seed: int = Field(default=0, ge=0)
    val_fraction: float = Field(default=0.15, ge=0, lt=1)
    test_fraction: float = Field(default=0.15, ge=0, lt=1)
    boundary_tolerance_px: float = Field(default=2.0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = Field(default=False, description="bf16 autocast; used on CUDA only")
    num_workers: int = Field(default=0, ge=0)
    init_weights: Path | None = Field(default=None, description="a local .pt checkpoint to start from")
    load: Literal["encoder", "full"] = "encoder"
    freeze_encoder_epochs: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.crop_size % self.model.multiple:
            raise ValueError(f"crop_size {self.crop_size} must be divisible by 2**model.depth = {self.model.multiple}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must be below 1")
        if self.freeze_encoder_epochs and self.init_weights is None:
            raise ValueError("freeze_encoder_epochs needs init_weights (a frozen random encoder learns nothing)")
        return self


@dataclass(frozen=True)
class TrainResult:
    """What a run produced. ``history``: one dict per epoch (train_loss, val metrics); ``test``: test-set metrics
    of the best checkpoint (``None`` with an empty test split)."""

    run_dir: Path
    best_path: Path
    last_path: Path
    epochs_run: int
    best_epoch: int
    best_val_miou: float | None
    stopped_early: bool
    history: list[dict[str, Any]]
    test: dict[str, Any] | None


def resolve_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise DatasetError("device 'cuda' asked for, but torch sees no CUDA device")
    return torch.device(choice)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def class_weights(freq: NDArray[np.float64], cap: float, power: float = 1.0) -> torch.Tensor:
    """Weights ∝ frequency^−power normalized to mean 1 over the classes present; absent classes get 0. Full
    inverse frequency (power 1) makes rare classes over-predicted; 0.5 trades recall for precision."""
    present = freq > 0
    w = np.zeros_like(freq)
    w[present] = freq[present] ** -power
    w[present] /= w[present].mean()
    return torch.as_tensor(np.minimum(w, cap), dtype=torch.float32)


def lr_scheduler(opt: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int) -> LambdaLR:
    """Per-step learning-rate factor: constant, or linear warm-up over the first epoch then cosine to 1 %."""
    total, warm = max(config.epochs * steps_per_epoch, 1), max(steps_per_epoch, 1)

    def factor(step: int) -> float:
        if config.lr_schedule == "constant":
            return 1.0
        if step < warm:
            return (step + 1) / warm
        t = min((step - warm) / max(total - warm, 1), 1.0)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))

    return LambdaLR(opt, factor)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − mean soft Dice over classes present in the batch. logits: (B, K, H, W); target: (B, H, W) int64."""
    probs = logits.float().softmax(1)
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).float()
    inter = (probs * onehot).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    present = onehot.sum((0, 2, 3)) > 0
    dice = (2 * inter + 1e-6) / (denom + 1e-6)
    return 1 - dice[present].mean() if bool(present.any()) else logits.sum() * 0


@torch.no_grad()
def predict_logits(model: UNet, image: NDArray[np.float32], device: torch.device, amp: bool = False) -> torch.Tensor:
    """Logits (n_classes, H, W) of one normalized (H, W) image; reflect-padded to a multiple of ``2**depth``."""
    h, w = image.shape
    k = 2**model.depth
    ph, pw = (-h) % k, (-w) % k
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(device)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
        out = model(x)
    return out[0, :, :h, :w].float().cpu()


def evaluate(
    model: UNet,
    samples: Sequence[Sample],
    norm: PercentileStretch,
    classes: list[str],
    device: torch.device,
    tolerance_px: float,
    amp: bool = False,
) -> dict[str, Any]:
    """Dataset-level metrics of ``model`` (eval mode) on whole images."""
    model.eval()
    acc = SegmentationMetrics(classes, tolerance_px)
    for s in samples:
        pred = predict_logits(model, norm.transform(s.pixels), device, amp).argmax(0).numpy()
        acc.update(pred, s.mask)
    return acc.compute()


def train(config: TrainConfig, log: Callable[[str], None] = print) -> TrainResult:
    """Trains (or resumes, if ``run_dir/last.pt`` exists) and returns the result; see the module docstring."""
    run_dir = config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    folder = SegmentationFolder.load(config.dataset_dir)
    classes = folder.classes
    if config.model.n_classes != len(classes):
        raise DatasetError(
            f"model.n_classes = {config.model.n_classes}, but {config.dataset_dir}/manifest.json lists "
            f"{len(classes)} classes {classes}"
        )
    split = load_or_make_split(
        run_dir, [s.name for s in folder.samples], config.seed, config.val_fraction, config.test_fraction
    )
    train_s, val_s, test_s = (folder.by_name(split[k]) for k in ("train", "val", "test"))
    norm = PercentileStretch()
    if config.normalization == "dataset":
        norm = norm.fit([s.pixels for s in train_s])
    (run_dir / "normalization.json").write_text(json.dumps(norm.model_dump(), indent=2))
    device = resolve_device(config.device)
    amp = config.amp and device.type == "cuda"

    seed_everything(config.seed)
    model = config.model.build()
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    resume = load_checkpoint(last_path) if last_path.exists() else None
    if resume is not None:
        if resume.metadata.get("model_config") != config.model.model_dump():
            raise CheckpointError(f"{last_path}: was trained with another model config; use a new run_dir")
        load_state(model, resume)
    elif config.init_weights is not None:
        init = load_checkpoint(config.init_weights)
        load_state(model, init, encoder_only=config.load == "encoder")
        log(f"initialized {config.load} weights from {config.init_weights}")
    model.to(device)

    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    freq = class_frequencies(train_s, len(classes))
    ce_weight = class_weights(freq, config.max_class_weight, config.class_weight_power).to(device)
    augment = Augment(noise=config.augment_noise, blur_px=config.augment_blur_px)
    data = CropDataset(train_s, norm, config.crop_size, config.samples_per_epoch, config.seed, augment)
    sched = lr_scheduler(opt, config, math.ceil(config.samples_per_epoch / config.batch_size))
    history: list[dict[str, Any]] = []
    best_miou, best_epoch, since_best, start = -math.inf, -1, 0, 0
    if resume is not None and resume.train_state is not None:
        st = resume.train_state
        opt.load_state_dict(st["optimizer"])
        if st.get("scheduler") is not None:
            sched.load_state_dict(st["scheduler"])
        history, best_epoch, since_best = list(st["history"]), int(st["best_epoch"]), int(st["since_best"])
        best_miou = float(st["best_miou"])
        start = int(resume.metadata["epoch"]) + 1
        torch.set_rng_state(st["torch_rng"])
        log(f"resuming from {last_path} after epoch {start}/{config.epochs}")

    def metadata(epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            "classes": classes,
            "pixel_size_um": folder.pixel_size_um,
            "normalization": norm.model_dump(),
            "model_config": config.model.model_dump(),
            "train_config": config.model_dump(mode="json"),
            "generator": folder.generator,
            "epoch": epoch,
            "metrics": metrics,
        }

    stopped_early = False
    done = start  # epochs completed
    for epoch in range(start, config.epochs):
        if config.patience is not None and since_best >= config.patience:
            stopped_early = True
            break
        frozen = config.init_weights is not None and epoch < config.freeze_encoder_epochs
        model.set_encoder_trainable(not frozen)
        data.set_epoch(epoch)
        loader = DataLoader(
            data,
            batch_size=config.batch_size,
            shuffle=True,
            num_workers=config.num_workers,
            generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch),
            drop_last=False,
        )
        model.train()
        losses: list[float] = []
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y, weight=ce_weight if config.class_balanced else None)
            if config.dice_weight:
                loss = loss + config.dice_weight * soft_dice_loss(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        val = evaluate(model, val_s, norm, classes, device, config.boundary_tolerance_px, amp) if val_s else None
        train_loss = float(np.mean(losses))
        entry = {"epoch": epoch, "train_loss": train_loss, "encoder_frozen": frozen, "val": val}
        history.append(entry)
        score = val["miou"] if val and val["miou"] is not None else -train_loss
        if score > best_miou:
            best_miou, best_epoch, since_best = score, epoch, 0
            save_checkpoint(best_path, model, metadata(epoch, {"val": val, "train_loss": train_loss}))
        else:
            since_best += 1
        state = {
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "history": history,
            "best_epoch": best_epoch,
            "best_miou": best_miou,
            "since_best": since_best,
            "torch_rng": torch.get_rng_state(),
        }
        save_checkpoint(last_path, model, metadata(epoch, {"val": val, "train_loss": train_loss}), state)
        _write_metrics(run_dir, history, best_epoch, None)
        miou = "-" if val is None or val["miou"] is None else f"{val['miou']:.3f}"
        log(
            f"epoch {epoch + 1}/{config.epochs}  train loss {train_loss:.4f}  val mIoU {miou}"
            + ("  (encoder frozen)" if frozen else "")
        )
        if val is not None:
            log(format_metrics(val))
        done = epoch + 1

    test = None
    if test_s and best_path.exists():
        best_model, _ = load_model(best_path, device)
        test = evaluate(best_model, test_s, norm, classes, device, config.boundary_tolerance_px, amp)
        log("test metrics (best checkpoint):\n" + format_metrics(test))
    _write_metrics(run_dir, history, best_epoch, test)
    best_val = next((h["val"]["miou"] for h in history if h["epoch"] == best_epoch and h["val"]), None)
    return TrainResult(run_dir, best_path, last_path, done, best_epoch, best_val, stopped_early, history, test)


def _write_metrics(run_dir: Path, history: list[dict[str, Any]], best_epoch: int, test: dict[str, Any] | None) -> None:
    payload = {"best_epoch": best_epoch, "history": history, "test": test}
    tmp = run_dir / "metrics.json.tmp"
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(run_dir / "metrics.json")
