"""Inference with image-level models: ``PropertyPredictor`` (scalar properties with σ, in physical units) and
``MicrostructureClassifier`` (a label and class probabilities) from checkpoints of ``imaging.train.tasks``.

Pixels are prepared as in ``imaging.neural``: rescaled to the training pixel size when a pixel size is given and
differs by more than ``RESCALE_TOLERANCE``, then normalized with the checkpoint's stored normalization.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from numpy.typing import NDArray

from imaging.base import ImagingError
from imaging.models.classifier import CNNClassifier
from imaging.models.regressor import RegressorEnsemble
from imaging.train.image_checkpoint import ImageCheckpoint, load_image_model
from imaging.train.tasks import classifier_probs, regressor_predict
from imaging.train.trainer import resolve_device

RESCALE_TOLERANCE = 0.10  # as imaging.neural: relative pixel-size difference beyond which images are rescaled
Device = Literal["auto", "cpu", "cuda"]


class PropertyPrediction(NamedTuple):
    """One predicted property: value ± sigma (1σ predictive: aleatoric and epistemic), in ``unit``."""

    name: str
    value: float
    sigma: float
    unit: str


def _prepare(
    pixels: NDArray[np.floating], ckpt: ImageCheckpoint, pixel_size_um: float | None, min_size: int
) -> NDArray[np.float32]:
    """(H, W) pixels rescaled to the training pixel size (when both are known) and normalized as in training."""
    image = np.asarray(pixels, dtype=np.float32)
    if image.ndim != 2:
        raise ImagingError(f"expected a 2-D grayscale image, got shape {image.shape}")
    train_px = ckpt.metadata.get("pixel_size_um")
    if pixel_size_um and train_px:
        scale = pixel_size_um / float(train_px)
        if abs(scale - 1.0) > RESCALE_TOLERANCE:
            from skimage.transform import rescale

            image = rescale(image, scale, order=1, anti_aliasing=scale < 1, preserve_range=True).astype(np.float32)
    if min(image.shape) < min_size:
        raise ImagingError(f"image is {image.shape} px; the model needs at least {min_size} px per side")
    return ckpt.normalization.transform(image)


class PropertyPredictor:
    """A trained property regressor: ``predict(pixels)`` → ``[(name, value, sigma, unit), ...]``.

    ``mc_samples``: MC-dropout passes (default: as in training, stored in the checkpoint).
    """

    def __init__(self, checkpoint: str | Path, device: Device = "auto", mc_samples: int | None = None) -> None:
        self.device = resolve_device(device)
        model, self.checkpoint = load_image_model(checkpoint, "regression", self.device)
        assert isinstance(model, RegressorEnsemble)
        self.model = model
        meta = self.checkpoint.metadata
        self.mc_samples = int(meta.get("mc_samples", 0) if mc_samples is None else mc_samples)
        if self.mc_samples and float(meta["model_config"].get("dropout", 0.0)) <= 0:
            raise ImagingError(f"{checkpoint}: mc_samples > 0 needs a model trained with dropout")
        self.targets: list[tuple[str, str]] = [(t["name"], t["unit"]) for t in meta["targets"]]
        self._mean = np.asarray(meta["target_scaler"]["mean"], dtype=np.float64)
        self._std = np.asarray(meta["target_scaler"]["std"], dtype=np.float64)
        self._sigma_scale = np.asarray(meta.get("sigma_scale", [1.0] * len(self.targets)), dtype=np.float64)
        self.min_size = int(2 ** (int(meta["model_config"]["depth"]) - 1))

    @property
    def pixel_size_um(self) -> float | None:
        """The pixel size of the training images (``None`` if unknown)."""
        px = self.checkpoint.metadata.get("pixel_size_um")
        return float(px) if px else None

    def predict(self, pixels: NDArray[np.floating], pixel_size_um: float | None = None) -> list[PropertyPrediction]:
        """Each target's predictive mean and σ (√(aleatoric + epistemic variance)) for one (H, W) image."""
        return self.predict_many([pixels], pixel_size_um)[0]

    def predict_many(
        self, images: list[NDArray[np.floating]], pixel_size_um: float | None = None
    ) -> list[list[PropertyPrediction]]:
        """``predict`` of several images at once (images of one shape share a batch)."""
        prepared = [_prepare(p, self.checkpoint, pixel_size_um, self.min_size) for p in images]
        with torch.inference_mode():
            mean, alea, epi = regressor_predict(self.model, prepared, self.device, self.mc_samples)
        value = mean * self._std + self._mean
        sigma = np.sqrt(np.maximum(alea + epi, 0.0)) * self._std * self._sigma_scale
        return [
            [
                PropertyPrediction(name, float(value[i, j]), float(sigma[i, j]), unit)
                for j, (name, unit) in enumerate(self.targets)
            ]
            for i in range(len(images))
        ]


class MicrostructureClassifier:
    """A trained microstructure classifier: ``predict(pixels)`` → (label, {class: probability})."""

    def __init__(self, checkpoint: str | Path, device: Device = "auto") -> None:
        self.device = resolve_device(device)
        model, self.checkpoint = load_image_model(checkpoint, "classification", self.device)
        assert isinstance(model, CNNClassifier)
        self.model = model
        self.classes: list[str] = list(self.checkpoint.metadata["classes"])
        self.min_size = int(2 ** (int(self.checkpoint.metadata["model_config"]["depth"]) - 1))

    def predict(self, pixels: NDArray[np.floating], pixel_size_um: float | None = None) -> tuple[str, dict[str, float]]:
        """The most probable class of one (H, W) image and every class's probability."""
        image = _prepare(pixels, self.checkpoint, pixel_size_um, self.min_size)
        with torch.inference_mode():
            probs = classifier_probs(self.model, [image], self.device)[0]
        if not all(math.isfinite(p) for p in probs):
            raise ImagingError("the classifier returned non-finite probabilities")
        return self.classes[int(np.argmax(probs))], {c: float(p) for c, p in zip(self.classes, probs, strict=True)}
