"""Image-level labels for classification and property regression: a folder of micrographs labelled by a
``labels.csv`` or by the fields of a simulated-lab ``manifest.json``, plus augmented random crops as a torch dataset.

``labels.csv``: a header row with an ``image`` column (path relative to the folder) and one column per label or
target; an empty cell is a missing value. ``manifest.json``: ``{"pixel_size_um", "items": [{"image", ...}]}`` where
a dotted key (``truth.porosity``, ``sample_truth.system``) names a value inside each item.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import Dataset

from imaging.base import ImageReadError
from imaging.io import LoadedImage, load_image
from imaging.train.dataset import Augment, DatasetError, flip_rotate, jitter_intensity

Source = Literal["auto", "csv", "manifest"]
Missing = Literal["error", "drop"]


@dataclass(frozen=True)
class LabelledImage:
    """One micrograph: ``pixels`` (H, W) float32 in [0, 1] as read, and its raw label values by key."""

    name: str  # path relative to the folder, as in labels.csv or the manifest; used in split.json
    pixels: NDArray[np.float32]
    pixel_size_um: float | None
    labels: dict[str, Any]


@dataclass(frozen=True)
class LabelledFolder:
    """A folder's labelled images (those with every key present, or an error, per ``missing``)."""

    root: Path
    source: str  # "csv:<file>" or "manifest"
    generator: str
    images: list[LabelledImage]
    dropped: list[str]

    @property
    def pixel_size_um(self) -> float | None:
        """Median pixel size of the images that have one (what a model trained on them expects)."""
        sizes = [im.pixel_size_um for im in self.images if im.pixel_size_um]
        return float(np.median(sizes)) if sizes else None

    def by_name(self, names: Sequence[str]) -> list[LabelledImage]:
        index = {im.name: im for im in self.images}
        missing = [n for n in names if n not in index]
        if missing:
            raise DatasetError(f"{self.root}: split names images without labels here: {missing[:5]}")
        return [index[n] for n in names]


def lookup(item: dict[str, Any], key: str) -> Any:
    """The value at dotted ``key`` in a manifest item (``None`` when any part is missing)."""
    value: Any = item
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def load_labelled_folder(
    root: str | Path,
    keys: Sequence[str],
    *,
    source: Source = "auto",
    labels_file: str = "labels.csv",
    missing: Missing = "error",
    pixel_size_um: float | None = None,
) -> LabelledFolder:
    """Reads the labels (``auto``: the CSV when it exists, else the manifest) and every labelled image."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder does not exist")
    csv_path = Path(labels_file) if Path(labels_file).is_absolute() else root / labels_file
    if source == "auto":
        source = "csv" if csv_path.is_file() else "manifest"
    if source == "csv":
        rows, generator, default_px, where = _read_csv(csv_path, keys), "", None, str(csv_path)
        label = f"csv:{csv_path.name}"
    else:
        rows, generator, default_px, where = _read_manifest(root / "manifest.json")
        label = "manifest"
    images, dropped = [], []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        name = row.get("image")
        if not isinstance(name, str) or not name:
            raise DatasetError(f"{where}: row {i} has no 'image'")
        if name in seen:
            raise DatasetError(f"{where}: image {name} is listed more than once")
        seen.add(name)
        values = {k: lookup(row, k) for k in keys}
        absent = [k for k, v in values.items() if v is None or v == "" or (isinstance(v, float) and math.isnan(v))]
        if absent:
            if missing == "drop":
                dropped.append(name)
                continue
            raise DatasetError(f"{where}: image {name} has no value for {absent} (set missing: drop to skip it)")
        px = pixel_size_um or row.get("pixel_size_um") or default_px
        try:
            loaded = load_image(root / name, pixel_size_um=float(px) if px else None)
        except ImageReadError as exc:
            raise DatasetError(f"{where}: image {name}: {exc}") from exc
        assert isinstance(loaded, LoadedImage)
        images.append(LabelledImage(name, loaded.pixels, loaded.pixel_size_um or None, values))
    if not images:
        raise DatasetError(f"{where}: no labelled images ({len(dropped)} dropped for missing values)")
    return LabelledFolder(root, label, generator, images, dropped)


def _read_csv(path: Path, keys: Sequence[str]) -> list[dict[str, Any]]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or [])
            rows = [dict(r) for r in reader]
    except FileNotFoundError:
        raise DatasetError(f"{path}: labels file does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: not a readable CSV ({exc})") from exc
    absent = [c for c in ("image", *keys) if c not in columns]
    if absent:
        raise DatasetError(f"{path}: no column {absent} (columns: {columns})")
    return [{k: (v.strip() if isinstance(v, str) else v) for k, v in r.items()} for r in rows]


def _read_manifest(path: Path) -> tuple[list[dict[str, Any]], str, float | None, str]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: no labels.csv and no manifest.json in the dataset folder") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc
    items = raw.get("items") if isinstance(raw, dict) else None
    if not isinstance(items, list) or not items or not all(isinstance(it, dict) for it in items):
        raise DatasetError(f"{path}: field 'items' must be a non-empty list of objects")
    px = raw.get("pixel_size_um")
    return items, str(raw.get("generator", "")), float(px) if isinstance(px, int | float) else None, str(path)


# --- label encoding --------------------------------------------------------------------------------------------------


def bin_names(edges: Sequence[float]) -> list[str]:
    """Names of the ``len(edges) + 1`` bins cut at ``edges``: ``<a``, ``a–b``, …, ``≥z``."""
    e = [f"{x:g}" for x in edges]
    return [f"<{e[0]}", *(f"{lo}–{hi}" for lo, hi in itertools.pairwise(e)), f"≥{e[-1]}"]


def encode_classes(
    values: Sequence[Any], key: str, bins: Sequence[float] | None = None, class_names: Sequence[str] | None = None
) -> tuple[list[str], NDArray[np.int64]]:
    """(class names, index per value): numeric values cut at ``bins`` (bin i holds edges[i-1] ≤ v < edges[i]), or
    categorical values (as strings) in the order of ``class_names``, else sorted."""
    if bins is not None:
        try:
            numbers = np.array([float(v) for v in values])
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"label {key!r}: bins need numeric values ({exc})") from exc
        names = list(class_names) if class_names else bin_names(bins)
        return names, np.digitize(numbers, np.asarray(bins, dtype=np.float64)).astype(np.int64)
    strings = [str(v) for v in values]
    names = list(class_names) if class_names else sorted(set(strings))
    unknown = sorted(set(strings) - set(names))
    if unknown:
        raise DatasetError(f"label {key!r}: values {unknown[:5]} are not in class_names {names}")
    index = {n: i for i, n in enumerate(names)}
    return names, np.array([index[s] for s in strings], dtype=np.int64)


def numeric_targets(images: Sequence[LabelledImage], keys: Sequence[str]) -> NDArray[np.float64]:
    """(N, T) float64 of the target values; ``DatasetError`` naming the image and key of a non-number."""
    out = np.empty((len(images), len(keys)))
    for i, im in enumerate(images):
        for j, k in enumerate(keys):
            try:
                out[i, j] = float(im.labels[k])
            except (TypeError, ValueError):
                raise DatasetError(f"image {im.name}: target {k!r} = {im.labels[k]!r} is not a number") from None
            if not math.isfinite(out[i, j]):
                raise DatasetError(f"image {im.name}: target {k!r} = {out[i, j]} is not finite")
    return out


# --- augmentation and torch dataset ----------------------------------------------------------------------------------


def augment_image(img: NDArray[np.float32], rng: np.random.Generator, a: Augment) -> NDArray[np.float32]:
    """The augmentation of ``dataset.CropDataset`` for an image without a mask."""
    return jitter_intensity(flip_rotate([img], rng, a)[0], rng, a)


def random_crop(img: NDArray[np.float32], size: int, rng: np.random.Generator) -> NDArray[np.float32]:
    """A ``size``×``size`` window at a random place (reflect-padded first when the image is smaller)."""
    ph, pw = max(0, size - img.shape[0]), max(0, size - img.shape[1])
    if ph or pw:
        img = np.pad(img, ((0, ph), (0, pw)), mode="reflect")
    y, x = int(rng.integers(img.shape[0] - size + 1)), int(rng.integers(img.shape[1] - size + 1))
    return img[y : y + size, x : x + size]


class LabelledCrops(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Item i of epoch e: a random augmented crop (1, crop, crop) of a random image and that image's target,
    drawn from a generator seeded with (seed, e, i), so that every epoch is reproducible; ``augment=None``: no
    augmentation."""

    def __init__(
        self,
        images: Sequence[NDArray[np.float32]],
        targets: torch.Tensor,
        crop_size: int,
        samples_per_epoch: int,
        seed: int,
        augment: Augment | None = None,
    ) -> None:
        if not images:
            raise DatasetError("no training images (the split left the train set empty)")
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        self.images, self.targets = list(images), targets
        self.crop, self.n, self.seed, self.augment = crop_size, samples_per_epoch, seed, augment
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        k = int(rng.integers(len(self.images)))
        img = random_crop(self.images[k], self.crop, rng)
        if self.augment is not None:
            img = augment_image(img, rng, self.augment)
        return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None], self.targets[k]
