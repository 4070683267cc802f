"""Segmentation metrics in numpy: per-class IoU and Dice (from a confusion matrix), mean IoU, and boundary F1.

Conventions: a class absent from both prediction and truth has IoU/Dice/boundary-F1 ``nan`` and is left out of
the means; ``binary_iou`` of two empty masks is 1 (they agree perfectly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi


def binary_iou(a: NDArray[Any], b: NDArray[Any]) -> float:
    """|a ∧ b| / |a ∨ b| of two boolean masks of the same shape; 1 when both are empty."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def confusion_matrix(pred: NDArray[np.integer], target: NDArray[np.integer], n_classes: int) -> NDArray[np.int64]:
    """(n_classes, n_classes) counts, rows = truth, columns = prediction; ``target`` values ≥ n_classes are ignored."""
    p, t = np.asarray(pred).ravel().astype(np.int64), np.asarray(target).ravel().astype(np.int64)
    if p.shape != t.shape:
        raise ValueError(f"pred and target differ in size: {np.shape(pred)} vs {np.shape(target)}")
    ok = (t >= 0) & (t < n_classes) & (p >= 0) & (p < n_classes)
    return np.bincount(t[ok] * n_classes + p[ok], minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def iou_from_confusion(cm: NDArray[np.integer]) -> NDArray[np.float64]:
    """Per-class IoU = TP / (TP + FP + FN); nan where the class is in neither prediction nor truth."""
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)


def dice_from_confusion(cm: NDArray[np.integer]) -> NDArray[np.float64]:
    """Per-class Dice = 2 TP / (2 TP + FP + FN); nan where the class is in neither prediction nor truth."""
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1)
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)


def nanmean(values: NDArray[np.float64]) -> float:
    """Mean over the finite entries; nan if there are none (without numpy's empty-slice warning)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def boundary(mask: NDArray[Any]) -> NDArray[np.bool_]:
    """Inner boundary pixels of a boolean mask (8-connected); the image border is not a boundary."""
    m = np.asarray(mask, dtype=bool)
    return m & ~ndi.binary_erosion(m, structure=np.ones((3, 3), bool), border_value=1)


def boundary_counts(pred: NDArray[Any], target: NDArray[Any], tolerance_px: float) -> tuple[int, int, int, int]:
    """(matched predicted, predicted, matched true, true) boundary-pixel counts of two boolean masks.

    A predicted boundary pixel is matched when a true boundary pixel lies within ``tolerance_px`` (Euclidean), and
    vice versa.
    """
    bp, bt = boundary(pred), boundary(target)
    n_p, n_t = int(bp.sum()), int(bt.sum())
    if n_p == 0 or n_t == 0:
        return 0, n_p, 0, n_t
    near_t = ndi.distance_transform_edt(~bt) <= tolerance_px
    near_p = ndi.distance_transform_edt(~bp) <= tolerance_px
    return int((bp & near_t).sum()), n_p, int((bt & near_p).sum()), n_t


def f1_from_counts(matched_p: int, n_p: int, matched_t: int, n_t: int) -> float:
    """Boundary F1 from ``boundary_counts``; nan when neither has a boundary, 0 when only one does."""
    if n_p == 0 and n_t == 0:
        return math.nan
    if n_p == 0 or n_t == 0:
        return 0.0
    precision, recall = matched_p / n_p, matched_t / n_t
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def boundary_f1(pred: NDArray[Any], target: NDArray[Any], tolerance_px: float = 2.0) -> float:
    """Boundary F1 of two boolean masks with a pixel tolerance (see ``boundary_counts``)."""
    return f1_from_counts(*boundary_counts(pred, target, tolerance_px))


@dataclass
class SegmentationMetrics:
    """Accumulates label maps over images and reports dataset-level metrics (pixels pooled over all images).

    ``update(pred, target)`` takes (H, W) integer class maps; ``compute()`` returns a JSON-safe dict.
    """

    classes: list[str]
    tolerance_px: float = 2.0
    cm: NDArray[np.int64] = field(init=False)
    bcounts: NDArray[np.int64] = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.classes)
        self.cm = np.zeros((n, n), dtype=np.int64)
        self.bcounts = np.zeros((n, 4), dtype=np.int64)

    def update(self, pred: NDArray[np.integer], target: NDArray[np.integer]) -> None:
        if np.shape(pred) != np.shape(target):
            raise ValueError(f"pred and target differ in shape: {np.shape(pred)} vs {np.shape(target)}")
        n = len(self.classes)
        self.cm += confusion_matrix(pred, target, n)
        for c in range(n):
            self.bcounts[c] += boundary_counts(pred == c, target == c, self.tolerance_px)

    def compute(self) -> dict[str, Any]:
        iou, dice = iou_from_confusion(self.cm), dice_from_confusion(self.cm)
        bf1 = np.array([f1_from_counts(*(int(x) for x in row)) for row in self.bcounts])
        total = int(self.cm.sum())

        def clean(x: float) -> float | None:
            return None if not math.isfinite(x) else float(x)

        return {
            "miou": clean(nanmean(iou)),
            "mdice": clean(nanmean(dice)),
            "mboundary_f1": clean(nanmean(bf1)),
            "pixel_accuracy": clean(float(np.trace(self.cm)) / total if total else math.nan),
            "per_class": {
                name: {"iou": clean(float(iou[i])), "dice": clean(float(dice[i])), "boundary_f1": clean(float(bf1[i]))}
                for i, name in enumerate(self.classes)
            },
            "boundary_tolerance_px": self.tolerance_px,
        }


def format_metrics(m: dict[str, Any]) -> str:
    """One line per class: IoU, Dice and boundary F1 (``-`` where undefined)."""

    def f(x: float | None) -> str:
        return "    -" if x is None else f"{x:5.3f}"

    rows = [f"  {'class':<14} {'IoU':>5} {'Dice':>5} {'BF1':>5}"]
    rows += [f"  {name:<14} {f(v['iou'])} {f(v['dice'])} {f(v['boundary_f1'])}" for name, v in m["per_class"].items()]
    rows.append(f"  {'mean':<14} {f(m['miou'])} {f(m['mdice'])} {f(m['mboundary_f1'])}")
    return "\n".join(rows)
