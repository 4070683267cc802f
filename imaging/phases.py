"""Intensity classes of a micrograph (pores, matrix, second phase) from its histogram, kept only where real.

The histogram (thin dark lines left out) is split by 3-class multi-Otsu. A threshold is kept only where the
histogram has a real valley there: each side holds a local maximum, the histogram between the two dips below
``VALLEY_RATIO`` of the lower one, they lie more than ``PEAK_SEPARATION_NOISE`` noise σ apart, and each side
holds at least 0.1 % of the pixels. A rejected threshold merges its two classes (a 2-class Otsu is tried when
both go). Each kept threshold is then moved to the midpoint of its two peaks: the 50 % point of a blurred edge,
which keeps areas unbiased under blur.

A middle class made only of the blurred edges between the others (``is_edge_class``) is not a phase; the
caller then asks for two classes.

Roles: the darkest class is *pores* when a brighter class is larger; of the others the largest is the *matrix*
and the remaining one the *second phase* (usually the bright one, but a distinct darker phase too). Two classes
of which the darker is the larger: matrix and a brighter second phase, no pores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi
from scipy.signal import find_peaks
from skimage import filters, morphology

VALLEY_RATIO = 0.8
PEAK_SEPARATION_NOISE = 4.0
SENSITIVITY_FRACTION = 0.1  # for σ, thresholds move by ± this fraction of the contrast between the two classes

Mask = NDArray[np.bool_]


@dataclass(frozen=True)
class Phases:
    """Sorted thresholds between intensity classes, each class's peak level, and the role of each class."""

    thresholds: tuple[float, ...]
    levels: tuple[float, ...]
    pore_class: int | None
    matrix_class: int
    second_class: int | None

    def delta(self, index: int) -> float:
        """How far threshold ``index`` moves to measure how sensitive a fraction is to it."""
        return SENSITIVITY_FRACTION * (self.levels[index + 1] - self.levels[index])


def class_mask(image: NDArray[np.floating], phases: Phases, index: int | None, shift: float = 0.0) -> Mask:
    """Pixels of class ``index`` (none for ``None``); ``shift`` moves its thresholds by that many deltas."""
    if index is None:
        return np.zeros(np.shape(image), dtype=bool)
    mask = np.ones(np.shape(image), dtype=bool)
    if index > 0:
        mask &= image >= phases.thresholds[index - 1] + shift * phases.delta(index - 1)
    if index < len(phases.thresholds):
        mask &= image < phases.thresholds[index] + shift * phases.delta(index)
    return mask


def classify_phases(smoothed: NDArray[np.floating], exclude: Mask, noise: float, max_classes: int = 3) -> Phases:
    """Intensity classes (at most ``max_classes``, 2 or 3) of ``smoothed`` (in [0, 1]) from the histogram of
    pixels not in ``exclude``; ``noise`` is the noise σ of ``smoothed``."""
    keep = ~exclude
    sample = smoothed[keep] if keep.sum() > 0.2 * keep.size else np.ravel(smoothed)
    hist, centers = _histogram(sample)
    kept = (_validated(_otsu(sample, 3), hist, centers, noise) if max_classes >= 3 else []) or _validated(
        _otsu(sample, 2), hist, centers, noise
    )
    if not kept:
        return Phases((), (float(centers[np.argmax(hist)]),), None, 0, None)
    thresholds = tuple(0.5 * (pa + pb) for _, pa, pb in kept)
    levels = (kept[0][1], *(pb for _, _, pb in kept))
    bounds = [0.0, *thresholds, 1.01]
    counts = [int(((smoothed >= bounds[i]) & (smoothed < bounds[i + 1])).sum()) for i in range(len(levels))]
    if len(levels) == 2:
        if counts[1] >= counts[0]:
            return Phases(thresholds, levels, 0, 1, None)
        return Phases(thresholds, levels, None, 0, 1)
    matrix = 1 if counts[1] >= counts[2] else 2
    return Phases(thresholds, levels, 0, matrix, 3 - matrix)


def without_pore_class(phases: Phases) -> Phases:
    """``phases`` with its pore class merged into the class above it (found to be dark grains, not void)."""
    if phases.pore_class is None:
        return phases
    k = phases.pore_class
    thresholds = phases.thresholds[:k] + phases.thresholds[k + 1 :]
    levels = phases.levels[:k] + phases.levels[k + 1 :]

    second = None if phases.second_class is None else phases.second_class - (phases.second_class > k)
    return Phases(thresholds, levels, None, phases.matrix_class - (phases.matrix_class > k), second)


def is_edge_class(mask: Mask, min_compact: float = 0.3) -> bool:
    """Whether a middle intensity class is only the blurred edges between the others: less than
    ``min_compact`` of its pixels survive an opening with a disk of radius 2 (bands up to 4 px wide do not)."""
    total = int(mask.sum())
    return total > 0 and int(ndi.binary_opening(mask, structure=morphology.disk(2)).sum()) < min_compact * total


def _otsu(sample: NDArray[np.floating], classes: int) -> list[float]:
    try:
        if classes == 2:
            return [float(filters.threshold_otsu(sample, nbins=256))]
        return [float(t) for t in filters.threshold_multiotsu(sample, classes=classes, nbins=256)]
    except ValueError:  # a flat sample
        return []


def _histogram(sample: NDArray[np.floating]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    hist, edges = np.histogram(sample, bins=256, range=(0.0, 1.0))
    return ndi.gaussian_filter1d(hist.astype(np.float64), 2.0), 0.5 * (edges[:-1] + edges[1:])


def _local_maxima(hist: NDArray[np.float64]) -> NDArray[np.intp]:
    """Indices of local maxima of ``hist``, the end bins included (saturated pores pile up in bin 0)."""
    padded = np.concatenate([[-1.0], hist, [-1.0]])
    peaks, _ = find_peaks(padded, plateau_size=1)
    return np.asarray(peaks - 1, dtype=np.intp)


def _split_ok(
    hist: NDArray[np.float64], centers: NDArray[np.float64], lo: float, t: float, hi: float, noise: float
) -> tuple[bool, float, float]:
    """Whether ``t`` separates real peaks in [lo, t) and [t, hi] (see module docstring); and the peak levels."""
    maxima = _local_maxima(hist)
    in_a = maxima[(centers[maxima] >= lo) & (centers[maxima] < t)]
    in_b = maxima[(centers[maxima] >= t) & (centers[maxima] <= hi)]
    if in_a.size == 0 or in_b.size == 0:
        return False, t, t
    ia = int(in_a[np.argmax(hist[in_a])])
    ib = int(in_b[np.argmax(hist[in_b])])
    side_a = hist[(centers >= lo) & (centers < t)].sum()
    side_b = hist[(centers >= t) & (centers <= hi)].sum()
    ok = (
        hist[ia : ib + 1].min() < VALLEY_RATIO * min(hist[ia], hist[ib])
        and centers[ib] - centers[ia] > PEAK_SEPARATION_NOISE * noise
        and min(side_a, side_b) > 0.001 * hist.sum()
    )
    return bool(ok), float(centers[ia]), float(centers[ib])


def _validated(
    candidates: list[float], hist: NDArray[np.float64], centers: NDArray[np.float64], noise: float
) -> list[tuple[float, float, float]]:
    """(threshold, lower peak, upper peak) for candidates that split real peaks, re-checked after each rejection."""
    current = sorted(candidates)
    while current:
        bounds = [0.0, *current, 1.0]
        checks = [_split_ok(hist, centers, bounds[i], t, bounds[i + 2], noise) for i, t in enumerate(current)]
        bad = [i for i, (ok, _, _) in enumerate(checks) if not ok]
        if not bad:
            return [(t, pa, pb) for t, (_, pa, pb) in zip(current, checks, strict=True)]
        current.pop(bad[0])
    return []
