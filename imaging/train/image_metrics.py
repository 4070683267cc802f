"""Image-level metrics in numpy: classification (accuracy, macro-F1, confusion matrix) and regression with
predictive uncertainty (RMSE, MAE, R², Gaussian NLL and the 1σ/2σ coverage that shows calibration)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imaging.train.metrics import confusion_matrix

GAUSS_COVERAGE = {"1sigma": math.erf(1 / math.sqrt(2)), "2sigma": math.erf(2 / math.sqrt(2))}  # 0.683, 0.954


def classification_metrics(
    target: NDArray[np.integer], probs: NDArray[np.floating], classes: list[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1 (over classes present in truth or prediction), per-class F1, confusion matrix (rows =
    truth) and mean cross-entropy of ``probs`` (N, K) against ``target`` (N,)."""
    k = len(classes)
    target = np.asarray(target, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    pred = probs.argmax(1)
    cm = confusion_matrix(pred, target, k)
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1)  # 2TP + FP + FN
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)
    present = ~np.isnan(f1)
    n = int(target.size)
    p_true = probs[np.arange(n), target] if n else np.zeros(0)
    return {
        "n": n,
        "accuracy": float((pred == target).mean()) if n else None,
        "macro_f1": float(f1[present].mean()) if present.any() else None,
        "f1": {c: (None if math.isnan(v) else float(v)) for c, v in zip(classes, f1, strict=True)},
        "cross_entropy": float(-np.log(np.clip(p_true, 1e-12, 1)).mean()) if n else None,
        "majority_accuracy": float(np.bincount(target, minlength=k).max() / n) if n else None,
        "confusion_matrix": cm.tolist(),
        "classes": list(classes),
    }


def regression_metrics(
    target: NDArray[np.floating], mean: NDArray[np.floating], sigma: NDArray[np.floating], baseline: float
) -> dict[str, Any]:
    """Metrics of predictions ``mean`` ± ``sigma`` of ``target`` (all (N,)): RMSE, MAE, R², mean Gaussian NLL (with
    the ½ log 2π constant), fraction of targets within 1σ and 2σ (ideal 0.683 and 0.954), mean σ, and the RMSE of
    always predicting ``baseline`` (the training mean)."""
    y, mu, s = (np.asarray(a, dtype=np.float64).ravel() for a in (target, mean, sigma))
    if y.size == 0:
        return {"n": 0}
    err = mu - y
    s = np.maximum(s, 1e-12)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    z = np.abs(err) / s
    return {
        "n": int(y.size),
        "rmse": float(np.sqrt((err**2).mean())),
        "mae": float(np.abs(err).mean()),
        "r2": 1 - float((err**2).sum()) / ss_tot if ss_tot > 0 else None,
        "nll": float((0.5 * np.log(2 * np.pi * s**2) + 0.5 * z**2).mean()),
        "coverage_1sigma": float((z <= 1).mean()),
        "coverage_2sigma": float((z <= 2).mean()),
        "mean_sigma": float(s.mean()),
        "baseline_rmse": float(np.sqrt(((y - baseline) ** 2).mean())),
    }
