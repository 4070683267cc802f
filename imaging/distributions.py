"""Size distributions of objects (grains, pores): number-weighted percentiles of equivalent-circle diameter, σ by a
bootstrap over the objects with a fixed seed, so that a re-analysis gives the same numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from imaging.estimate import Estimate

BOOTSTRAP_SAMPLES = 200
BOOTSTRAP_SEED = 20240611


def ecd(areas: NDArray[np.floating] | Sequence[float]) -> NDArray[np.float64]:
    """Equivalent-circle diameters 2·√(A/π) of ``areas`` (in the square of the diameter's unit)."""
    return 2.0 * np.sqrt(np.asarray(areas, dtype=np.float64) / math.pi)


def percentiles(values: NDArray[np.floating] | Sequence[float], qs: Sequence[float]) -> list[float]:
    """Number-weighted percentiles ``qs`` (0–100) of ``values``, linearly interpolated (numpy's default)."""
    return [float(v) for v in np.percentile(np.asarray(values, dtype=np.float64), list(qs))]


def bootstrap_percentiles(
    values: NDArray[np.floating] | Sequence[float],
    qs: Sequence[float],
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> list[Estimate]:
    """Percentiles ``qs`` of ``values`` with σ the bootstrap standard deviation (``samples`` resamples, seeded).
    With fewer than two values σ is the value itself (one object says little about a distribution); with none,
    the values are NaN."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return [Estimate(math.nan, math.nan) for _ in qs]
    point = percentiles(v, qs)
    if v.size < 2:
        return [Estimate(p, abs(p)) for p in point]
    rng = np.random.default_rng(seed)
    resampled = v[rng.integers(0, v.size, size=(samples, v.size))]
    spread = np.percentile(resampled, list(qs), axis=1).std(axis=1, ddof=1)
    return [Estimate(p, float(s)) for p, s in zip(point, spread, strict=True)]
