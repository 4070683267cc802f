"""Values with σ and the subfield bookkeeping behind their sampling part, shared by the feature modules."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Tile = tuple[slice, slice]


@dataclass(frozen=True)
class Estimate:
    """A value with its standard uncertainty."""

    value: float
    sigma: float


def subfields(shape: tuple[int, ...], k: int) -> list[Tile]:
    """The k×k tiles of an image of ``shape`` (edges spread as evenly as integer pixels allow)."""
    rows = np.linspace(0, shape[0], k + 1).round().astype(int)
    cols = np.linspace(0, shape[1], k + 1).round().astype(int)
    return [(slice(rows[i], rows[i + 1]), slice(cols[j], cols[j + 1])) for i in range(k) for j in range(k)]


def standard_error(values: Sequence[float]) -> float:
    """std (n−1) / √n over the finite values; 0 with fewer than two."""
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=np.float64)
    return float(v.std(ddof=1) / math.sqrt(v.size)) if v.size >= 2 else 0.0


def field_se(tiles: list[Tile], fn: Callable[[Tile], float]) -> float:
    """Standard error of ``fn`` over the subfields ``tiles`` (NaN results are left out)."""
    return standard_error([fn(t) for t in tiles])


def in_tile(ys: np.ndarray, xs: np.ndarray, t: Tile) -> np.ndarray:
    """Which of the points (rows ``ys``, columns ``xs``) lie in tile ``t``."""
    return (ys >= t[0].start) & (ys < t[0].stop) & (xs >= t[1].start) & (xs < t[1].stop)
