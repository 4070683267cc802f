"""True feature values of a rendered field, computed from its masks (what a perfect image analysis would say)."""

from __future__ import annotations

from typing import Any

import numpy as np

from instruments.sim.render import Masks
from instruments.sim.shapes import path_length_px


def mean_intercept_px(labels: np.ndarray) -> float:
    """Mean linear intercept (ASTM E112) of the grain labels on every row and column, in pixels."""
    h, w = labels.shape
    crossings = int((labels[:, 1:] != labels[:, :-1]).sum() + (labels[1:, :] != labels[:-1, :]).sum())
    total = h * (w - 1) + w * (h - 1)
    return float(total / max(crossings, 1))


def grain_sigma_ln(labels: np.ndarray) -> float:
    """Standard deviation of ln(equivalent circle diameter) of the grains not cut by the frame."""
    areas = np.bincount(labels.ravel())
    edge = np.zeros(len(areas), dtype=bool)
    edge[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
    inner = areas[(areas > 0) & ~edge]
    if len(inner) < 3:
        return float("nan")
    return float(np.std(0.5 * np.log(inner)))


def field_truth(masks: Masks, pixel_size_um: float) -> dict[str, Any]:
    """Porosity, phase fraction, grain statistics and cracks of one field, in physical units."""
    px = float(pixel_size_um)
    lengths = [path_length_px(p) * px for p in masks.crack_paths]
    return {
        "porosity": float(masks.pore.mean()),
        "second_phase_fraction": float(masks.second_phase.mean()),
        "crack_area_fraction": float(masks.crack.mean()),
        "mean_intercept_um": mean_intercept_px(masks.grains) * px,
        "grain_count": int(masks.grains.max()) + 1,
        "grain_size_sigma_ln": grain_sigma_ln(masks.grains),
        "crack_count": len(lengths),
        "crack_length_um": float(sum(lengths)),
        "field_area_um2": float(masks.grains.size) * px * px,
    }
