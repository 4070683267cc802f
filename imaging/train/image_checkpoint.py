"""Checkpoints of image-level models (classifier, property regressor): weights plus the metadata needed to use
them (task, classes or targets with units and the target scaler, normalization, pixel size, model config, git
revision, metrics). Written atomically with ``torch.save``; read with ``weights_only=True``::

    {"format": "matloop.image_model", "format_version": 1, "model": state_dict, "metadata": {...}}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import ValidationError
from torch import nn

from imaging.models.classifier import ClassifierConfig, CNNClassifier
from imaging.models.regressor import RegressorConfig, RegressorEnsemble
from imaging.normalize import PercentileStretch
from imaging.train.checkpoint import CheckpointError, git_revision, write_atomically

FORMAT = "matloop.image_model"
FORMAT_VERSION = 1
Task = Literal["classification", "regression"]
REQUIRED: dict[str, tuple[str, ...]] = {
    "classification": ("task", "model_config", "normalization", "epoch", "classes"),
    "regression": ("task", "model_config", "normalization", "epoch", "targets", "target_scaler"),
}


@dataclass(frozen=True)
class ImageCheckpoint:
    """A loaded image-model checkpoint."""

    path: Path
    model_state: dict[str, torch.Tensor]
    metadata: dict[str, Any]

    @property
    def task(self) -> Task:
        task: Task = self.metadata["task"]
        return task

    @property
    def model_config(self) -> ClassifierConfig | RegressorConfig:
        cls = ClassifierConfig if self.task == "classification" else RegressorConfig
        try:
            return cls.model_validate(self.metadata["model_config"])
        except ValidationError as exc:
            raise CheckpointError(f"{self.path}: metadata.model_config is not a valid {cls.__name__}: {exc}") from exc

    @property
    def normalization(self) -> PercentileStretch:
        try:
            return PercentileStretch.model_validate(self.metadata["normalization"])
        except ValidationError as exc:
            raise CheckpointError(f"{self.path}: metadata.normalization is not valid: {exc}") from exc


def _missing(metadata: dict[str, Any]) -> list[str]:
    task = metadata.get("task")
    if task not in REQUIRED:
        return ["task (classification or regression)"]
    return [k for k in REQUIRED[task] if k not in metadata]


def save_image_checkpoint(path: str | Path, model: nn.Module, metadata: dict[str, Any]) -> Path:
    """Writes ``model``'s weights and ``metadata`` (plus torch version and git revision) atomically."""
    path = Path(path)
    missing = _missing(metadata)
    if missing:
        raise ValueError(f"checkpoint metadata lacks {missing}")
    meta = {"torch_version": str(torch.__version__), "git_revision": git_revision(), **metadata}
    blob = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": meta,
    }
    return write_atomically(path, blob)


def load_image_checkpoint(path: str | Path, task: Task | None = None) -> ImageCheckpoint:
    """Reads a checkpoint of ``save_image_checkpoint`` (of ``task``, when given); ``CheckpointError`` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"{path}: corrupt or not a torch checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a matloop image-model checkpoint (no format={FORMAT!r} field)")
    if blob.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {blob.get('format_version')!r}; this matloop reads 1")
    meta, state = blob.get("metadata"), blob.get("model")
    if not isinstance(meta, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{path}: checkpoint lacks its 'metadata' or 'model' entry")
    missing = _missing(meta)
    if missing:
        raise CheckpointError(f"{path}: checkpoint metadata lacks {missing}")
    if task is not None and meta["task"] != task:
        raise CheckpointError(f"{path}: is a {meta['task']} checkpoint, but a {task} model was asked for")
    return ImageCheckpoint(path, state, meta)


def load_image_model(
    path: str | Path, task: Task | None = None, device: str | torch.device = "cpu"
) -> tuple[CNNClassifier | RegressorEnsemble, ImageCheckpoint]:
    """The model stored in a checkpoint, in eval mode on ``device``, with its checkpoint."""
    ckpt = load_image_checkpoint(path, task)
    model = ckpt.model_config.build()
    try:
        model.load_state_dict(ckpt.model_state)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: weights do not fit model_config {ckpt.metadata['model_config']}: {exc}"
        ) from exc
    return model.to(device).eval(), ckpt
