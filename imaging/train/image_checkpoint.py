"""Checkpoints of image-level models (classifier, property regressor): weights plus the metadata needed to use
them (task, classes or targets with units and the target scaler, normalization, pixel size, model config, git
revision, metrics). Written atomically with ``torch.save``; read with ``weights_only=True``::

    {"format": "matloop.image_model", "format_version": 1, "model": state_dict, "metadata": {...},
     "train_state": {...} | None}

``train_state`` (optimizer, scheduler, history, early-stopping state with the best weights, RNG states) is only in
``last.pt``, for resuming; ``config_differences`` and the RNG helpers below serve the resume in ``tasks``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from imaging.models.classifier import ClassifierConfig, CNNClassifier
from imaging.models.regressor import RegressorConfig, RegressorEnsemble
from imaging.normalize import PercentileStretch
from imaging.train.checkpoint import CheckpointError, git_revision, stored_normalization, write_atomically

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
    train_state: dict[str, Any] | None = None

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
        return stored_normalization(self.path, self.metadata)


def _missing(metadata: dict[str, Any]) -> list[str]:
    task = metadata.get("task")
    if task not in REQUIRED:
        return ["task (classification or regression)"]
    return [k for k in REQUIRED[task] if k not in metadata]


def save_image_checkpoint(
    path: str | Path, model: nn.Module, metadata: dict[str, Any], train_state: dict[str, Any] | None = None
) -> Path:
    """Writes ``model``'s weights, ``metadata`` (plus torch version and git revision) and the optional resume
    ``train_state`` atomically (temporary file, then rename), so an interrupted save leaves the old file intact."""
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
        "train_state": train_state,
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
    train_state = blob.get("train_state")
    if train_state is not None and not isinstance(train_state, dict):
        raise CheckpointError(f"{path}: 'train_state' must be a dict or None, got {type(train_state).__name__}")
    return ImageCheckpoint(path, state, meta, train_state)


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


# --- resume helpers --------------------------------------------------------------------------------------------------


def config_differences(stored: dict[str, Any], new: dict[str, Any], ignore: Iterable[str] = ()) -> list[str]:
    """Dotted names of the fields (nested ones too, e.g. ``model.depth``) whose values differ between two
    ``model_dump(mode="json")`` configs, skipping the top-level fields in ``ignore``."""
    skip = set(ignore)
    out: list[str] = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                if not prefix and key in skip:
                    continue
                name = f"{prefix}.{key}" if prefix else str(key)
                if key not in a or key not in b:
                    out.append(name)
                else:
                    walk(a[key], b[key], name)
        elif a != b:
            out.append(prefix or "(root)")

    walk(stored, new, "")
    return out


def rng_states() -> dict[str, Any]:
    """The global RNG states (torch CPU and CUDA, numpy, Python ``random``), in types ``weights_only`` loads."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)  # type: ignore[misc]
    mt_keys = torch.from_numpy(np.asarray(keys).astype(np.int64))
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": [str(kind), mt_keys, int(pos), int(has_gauss), float(gauss)],
        "python": random.getstate(),
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Restores what ``rng_states`` saved (CUDA states only when there are as many CUDA devices)."""
    torch.set_rng_state(states["torch"])
    cuda = states.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
