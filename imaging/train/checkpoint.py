"""Checkpoints: model weights with the metadata needed to use them (classes, pixel size, normalization, model config,
git revision, metrics, epoch, torch version), plus optimizer state for resuming.

File layout (``torch.save`` of a dict, read back with ``weights_only=True``)::

    {"format": "matloop.segmentation", "format_version": 1, "model": state_dict,
     "metadata": {...}, "train_state": {...} | None}

``metadata["epoch"]`` is the 0-based index of the last completed epoch; ``train_state`` (optimizer, history,
early-stopping counters, torch RNG state) is only in ``last.pt``.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from imaging.base import ImagingError
from imaging.models.config import UNetConfig
from imaging.models.unet import UNet
from imaging.normalize import PercentileStretch

FORMAT = "matloop.segmentation"
FORMAT_VERSION = 1
REQUIRED_METADATA = ("classes", "pixel_size_um", "normalization", "model_config", "epoch")


class CheckpointError(ImagingError):
    """A checkpoint is missing, corrupt, or does not fit the model it is loaded into; the message names the file."""


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: ``model_state`` (a state dict), ``metadata`` and the optional ``train_state``."""

    path: Path
    model_state: dict[str, torch.Tensor]
    metadata: dict[str, Any]
    train_state: dict[str, Any] | None

    @property
    def model_config(self) -> UNetConfig:
        try:
            return UNetConfig.model_validate(self.metadata["model_config"])
        except ValidationError as exc:
            raise CheckpointError(f"{self.path}: metadata.model_config is not a valid UNetConfig: {exc}") from exc

    @property
    def normalization(self) -> PercentileStretch:
        return stored_normalization(self.path, self.metadata)


def git_revision() -> str:
    """``git rev-parse HEAD`` of the source tree this module lives in, or ``"unknown"``."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def save_checkpoint(
    path: str | Path, model: UNet, metadata: dict[str, Any], train_state: dict[str, Any] | None = None
) -> Path:
    """Writes atomically (temporary file, then rename) so that an interrupted save never leaves a corrupt file."""
    path = Path(path)
    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    if missing:
        raise ValueError(f"checkpoint metadata lacks {missing}")
    meta = {"torch_version": str(torch.__version__), "git_revision": git_revision(), **metadata}
    blob = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": meta,
        "train_state": train_state,
    }
    return write_atomically(path, blob)


def write_atomically(path: Path, blob: dict[str, Any]) -> Path:
    """``torch.save`` to a temporary file, then rename, so that an interrupted save never leaves a corrupt file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Reads a checkpoint written by ``save_checkpoint``; ``CheckpointError`` for a missing, corrupt or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"{path}: corrupt or not a torch checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a matloop segmentation checkpoint (no format={FORMAT!r} field)")
    if blob.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format_version {blob.get('format_version')!r}; this matloop reads {FORMAT_VERSION}"
        )
    meta, state = blob.get("metadata"), blob.get("model")
    if not isinstance(meta, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{path}: checkpoint lacks its 'metadata' or 'model' entry")
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: checkpoint metadata lacks {missing}")
    return Checkpoint(path, state, meta, blob.get("train_state"))


def load_state(model: UNet, ckpt: Checkpoint, *, encoder_only: bool = False) -> None:
    """Loads the checkpoint's weights into ``model`` (all of them, or only ``encoder.*``); ``CheckpointError`` with
    the mismatched keys/shapes when they do not fit."""
    target = model.state_dict()
    state = ckpt.model_state
    if encoder_only:
        state = {k: v for k, v in state.items() if k.startswith("encoder.")}
    wanted = [k for k in target if k.startswith("encoder.")] if encoder_only else list(target)
    missing = [k for k in wanted if k not in state]
    unexpected = [k for k in state if k not in target]
    shapes = [
        f"{k}: {tuple(v.shape)} vs {tuple(target[k].shape)}"
        for k, v in state.items()
        if k in target and tuple(v.shape) != tuple(target[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = [
            f"missing {missing[:4]}" if missing else "",
            f"unexpected {unexpected[:4]}" if unexpected else "",
            f"shape mismatch {shapes[:4]}" if shapes else "",
        ]
        raise CheckpointError(
            f"{ckpt.path}: weights do not fit the model ({'; '.join(p for p in parts if p)}); "
            f"checkpoint model_config = {ckpt.metadata.get('model_config')}"
        )
    model.load_state_dict(state, strict=not encoder_only)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[UNet, Checkpoint]:
    """The model stored in a checkpoint, in eval mode on ``device``, with its checkpoint (metadata, normalization)."""
    ckpt = load_checkpoint(path)
    model = ckpt.model_config.build()
    load_state(model, ckpt)
    return model.to(device).eval(), ckpt


def stored_normalization(path: Path, metadata: dict[str, Any]) -> PercentileStretch:
    """The intensity normalization a checkpoint was trained with; an invalid one is an error naming the file."""
    try:
        return PercentileStretch.model_validate(metadata["normalization"])
    except ValidationError as exc:
        raise CheckpointError(f"{path}: metadata.normalization is not valid: {exc}") from exc
