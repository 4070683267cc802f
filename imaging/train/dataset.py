"""The labelled dataset folder, its seeded split, and a torch ``Dataset`` of augmented random crops.

Folder contract::

    DIR/manifest.json = {"classes": ["matrix", "second_phase", "pore", "boundary", "crack"],
                         "pixel_size_um": 0.1, "generator": "...",
                         "items": [{"image": "images/x.tif", "mask": "masks/x.png", "pixel_size_um": 0.1}, ...]}

Images are 8/16-bit grayscale TIFF/PNG (read by ``imaging.io.load_image``); masks are uint8 PNGs of class indices
with the image's shape.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from scipy.ndimage import gaussian_filter
from torch.utils.data import Dataset

from imaging.base import ImageReadError, ImagingError
from imaging.io import LoadedImage, load_image
from imaging.normalize import PercentileStretch


class DatasetError(ImagingError):
    """The dataset folder, its manifest, an image/mask pair or a split file is wrong; the message names which."""


class ManifestItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")
    image: str = Field(min_length=1)
    mask: str = Field(min_length=1)
    pixel_size_um: float | None = Field(default=None, gt=0)


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")
    classes: list[str] = Field(min_length=2)
    pixel_size_um: float = Field(gt=0)
    generator: str = ""
    items: list[ManifestItem] = Field(min_length=1)


@dataclass(frozen=True)
class Sample:
    """One labelled image: ``pixels`` (H, W) float32 in [0, 1] as read, ``mask`` (H, W) uint8 class indices."""

    name: str  # the manifest's image path, used in the split file
    pixels: NDArray[np.float32]
    mask: NDArray[np.uint8]
    pixel_size_um: float


@dataclass(frozen=True)
class SegmentationFolder:
    """A validated dataset folder with all its samples loaded."""

    root: Path
    classes: list[str]
    pixel_size_um: float
    generator: str
    samples: list[Sample]

    @classmethod
    def load(cls, root: str | Path) -> SegmentationFolder:
        """Reads and validates ``root/manifest.json`` and every image and mask it lists (``DatasetError`` if not)."""
        root = Path(root)
        path = root / "manifest.json"
        if not root.is_dir():
            raise DatasetError(f"{root}: dataset folder does not exist")
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise DatasetError(f"{path}: no manifest.json in the dataset folder") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{path}: not valid JSON ({exc})") from exc
        try:
            manifest = Manifest.model_validate(raw)
        except ValidationError as exc:
            raise DatasetError(f"{path}: invalid manifest:\n{_describe(exc)}") from exc
        if len(set(manifest.classes)) != len(manifest.classes):
            raise DatasetError(f"{path}: field 'classes' has duplicate names: {manifest.classes}")
        if len(manifest.classes) > 255:
            raise DatasetError(f"{path}: field 'classes' has {len(manifest.classes)} names; uint8 masks hold ≤ 255")
        names = [it.image for it in manifest.items]
        if len(set(names)) != len(names):
            raise DatasetError(f"{path}: field 'items' lists an image more than once")
        samples = [_read_item(root, path, i, it, manifest) for i, it in enumerate(manifest.items)]
        return cls(root, list(manifest.classes), manifest.pixel_size_um, manifest.generator, samples)

    def by_name(self, names: Sequence[str]) -> list[Sample]:
        index = {s.name: s for s in self.samples}
        missing = [n for n in names if n not in index]
        if missing:
            raise DatasetError(f"{self.root}: split names images not in the manifest: {missing[:5]}")
        return [index[n] for n in names]


def _describe(exc: ValidationError) -> str:
    return "\n".join(f"  field '{'.'.join(str(p) for p in e['loc']) or '(root)'}': {e['msg']}" for e in exc.errors())


def _read_item(root: Path, manifest_path: Path, i: int, item: ManifestItem, manifest: Manifest) -> Sample:
    where = f"{manifest_path}: items[{i}]"
    size = item.pixel_size_um or manifest.pixel_size_um
    try:
        loaded = load_image(root / item.image, pixel_size_um=size)
    except ImageReadError as exc:
        raise DatasetError(f"{where}.image: {exc}") from exc
    assert isinstance(loaded, LoadedImage)
    mask = read_mask(root / item.mask, where=f"{where}.mask")
    if mask.shape != loaded.pixels.shape:
        raise DatasetError(f"{where}: mask {item.mask} is {mask.shape}, image {item.image} is {loaded.pixels.shape}")
    top = int(mask.max())
    if top >= len(manifest.classes):
        raise DatasetError(
            f"{where}.mask: {item.mask} holds class index {top}, but the manifest has {len(manifest.classes)} classes"
        )
    return Sample(item.image, loaded.pixels, mask, size)


def read_mask(path: Path, *, where: str = "") -> NDArray[np.uint8]:
    """A uint8 PNG of class indices as an (H, W) array; ``DatasetError`` naming ``where`` otherwise."""
    from PIL import Image, UnidentifiedImageError

    label = where or str(path)
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P"):
                raise DatasetError(f"{label}: {path} has PIL mode {im.mode!r}; masks are 8-bit single-channel PNGs")
            data = np.asarray(im)
    except FileNotFoundError:
        raise DatasetError(f"{label}: {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"{label}: {path} is not a readable PNG ({exc})") from exc
    return np.ascontiguousarray(data, dtype=np.uint8)


# --- split ---------------------------------------------------------------------------------------------------------


def make_split(names: Sequence[str], seed: int, val_fraction: float, test_fraction: float) -> dict[str, Any]:
    """A seeded train/val/test split of ``names``: the same seed and names always give the same split.

    Val and test each get at least one image when there are three or more; train always gets at least one.
    """
    ordered = sorted(names)
    n = len(ordered)
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(val_fraction * n)) if n >= 3 and val_fraction > 0 else 0
    n_test = max(1, round(test_fraction * n)) if n >= 3 and test_fraction > 0 else 0
    while n_val + n_test > n - 1 and (n_val or n_test):
        if n_test >= n_val and n_test:
            n_test -= 1
        else:
            n_val -= 1
    picked = [ordered[i] for i in perm]
    return {
        "seed": seed,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "val": sorted(picked[:n_val]),
        "test": sorted(picked[n_val : n_val + n_test]),
        "train": sorted(picked[n_val + n_test :]),
    }


def load_or_make_split(
    run_dir: Path, names: Sequence[str], seed: int, val_fraction: float, test_fraction: float
) -> dict[str, Any]:
    """``run_dir/split.json`` if present (so a resumed run keeps its split), else a new split written there."""
    path = run_dir / "split.json"
    if path.exists():
        try:
            split = json.loads(path.read_text())
            parts = {k: list(split[k]) for k in ("train", "val", "test")}
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DatasetError(f"{path}: not a valid split file ({exc}); delete it to make a new split") from exc
        made = (split.get("seed"), split.get("val_fraction"), split.get("test_fraction"))
        if made != (seed, val_fraction, test_fraction):
            raise DatasetError(
                f"{path}: split made with (seed, val_fraction, test_fraction) = {made}, but the config asks for "
                f"{(seed, val_fraction, test_fraction)}; use a new run_dir or delete the split file"
            )
        unknown = sorted(set().union(*map(set, parts.values())) - set(names))
        if unknown:
            raise DatasetError(f"{path}: names images the dataset does not have: {unknown[:5]}")
        return split
    split = make_split(names, seed, val_fraction, test_fraction)
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(split, indent=2))
    return split


# --- torch dataset ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Augment:
    """Augmentation strengths: intensities are jittered after normalization (values in [0, 1] before jitter)."""

    flips: bool = True
    rot90: bool = True
    brightness: float = 0.1  # additive shift, uniform in ±brightness
    contrast: float = 0.15  # multiplicative factor about the crop mean, uniform in 1 ± contrast
    noise: float = 0.03  # Gaussian noise std drawn uniformly in [0, noise]
    blur_px: float = 0.0  # Gaussian blur σ drawn uniformly in [0, blur_px] (a wider probe or slight defocus)


class CropDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Random augmented crops: item → (image (1, crop, crop) float32, mask (crop, crop) int64).

    ``samples_per_epoch`` crops per epoch; crop ``i`` of epoch ``e`` is drawn from a generator seeded with
    ``(seed, e, i)``, so that an epoch is reproducible (and a resumed run sees the same crops). Images smaller than
    the crop are reflect-padded (mask padding uses the same reflection).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        normalization: PercentileStretch,
        crop_size: int,
        samples_per_epoch: int,
        seed: int,
        augment: Augment | None = Augment(),
    ) -> None:
        if not samples:
            raise DatasetError("no training images (the split left the train set empty)")
        self.images = [normalization.transform(s.pixels) for s in samples]
        self.masks = [s.mask for s in samples]
        self.crop = crop_size
        self.n = samples_per_epoch
        self.seed = seed
        self.augment = augment
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        k = int(rng.integers(len(self.images)))
        img, mask = _pad_to(self.images[k], self.crop), _pad_to(self.masks[k], self.crop)
        y = int(rng.integers(img.shape[0] - self.crop + 1))
        x = int(rng.integers(img.shape[1] - self.crop + 1))
        img = img[y : y + self.crop, x : x + self.crop]
        mask = mask[y : y + self.crop, x : x + self.crop]
        if self.augment is not None:
            img, mask = flip_rotate([img, mask], rng, self.augment)
            img = jitter_intensity(img, rng, self.augment)
        image = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None]
        return image, torch.from_numpy(np.ascontiguousarray(mask, dtype=np.int64))


def flip_rotate(arrays: Sequence[NDArray[Any]], rng: np.random.Generator, a: Augment) -> list[NDArray[Any]]:
    """The same random flips and 90° rotation applied to every array (an image and its mask)."""
    out = list(arrays)
    if a.flips and rng.random() < 0.5:
        out = [x[:, ::-1] for x in out]
    if a.flips and rng.random() < 0.5:
        out = [x[::-1] for x in out]
    if a.rot90:
        r = int(rng.integers(4))
        out = [np.rot90(x, r) for x in out]
    return out


def jitter_intensity(img: NDArray[Any], rng: np.random.Generator, a: Augment) -> NDArray[np.float32]:
    """Random blur, contrast about the mean, brightness shift and Gaussian noise of a normalized image."""
    out: NDArray[Any] = img.astype(np.float32)
    if a.blur_px > 0:
        out = gaussian_filter(out, rng.uniform(0, a.blur_px))
    mean = float(out.mean())
    gain = 1 + rng.uniform(-a.contrast, a.contrast)
    out = (out - mean) * gain + mean + rng.uniform(-a.brightness, a.brightness)
    if a.noise > 0:
        out = out + rng.normal(0.0, rng.uniform(0, a.noise), out.shape)
    return np.ascontiguousarray(out, dtype=np.float32)


def _pad_to(a: NDArray[Any], size: int) -> NDArray[Any]:
    ph, pw = max(0, size - a.shape[0]), max(0, size - a.shape[1])
    return np.pad(a, ((0, ph), (0, pw)), mode="reflect") if ph or pw else a


def class_frequencies(samples: Sequence[Sample], n_classes: int) -> NDArray[np.float64]:
    """Fraction of pixels of each class over ``samples``."""
    counts = sum((np.bincount(s.mask.ravel(), minlength=n_classes)[:n_classes] for s in samples), np.zeros(n_classes))
    total = counts.sum()
    return np.asarray(counts / total if total else counts, dtype=np.float64)
