"""Finds the SEM data bar: the uniform band at the bottom of a micrograph that holds text and a scale bar.

Heuristic: a data bar is rendered, not imaged, so most pixels of each of its rows have exactly one value (the
bar's background, or a separator line), while imaged rows carry detector noise. Scanning up from the bottom,
a row is *bar-like* when at least ``min_uniform`` of its pixels lie within half a grey level of the row's most
common value. The bar is the run of bar-like rows from the bottom, allowing short runs of text-heavy rows
inside it. It is accepted only if it is at least ``min_rows`` high, at most ``max_fraction`` of the image, and
the rows just above it are not bar-like (a flat, noiseless image is not a data bar).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def row_uniformity(pixels: NDArray[np.floating], tolerance: float = 0.5 / 255) -> NDArray[np.float64]:
    """For each row, the fraction of pixels within ``tolerance`` of the row's most common value."""
    q = np.round(np.asarray(pixels, dtype=np.float64) / max(tolerance * 2, 1e-12)).astype(np.int64)
    out = np.empty(q.shape[0], dtype=np.float64)
    for i, row in enumerate(q):
        _, counts = np.unique(row, return_counts=True)
        out[i] = counts.max() / row.size
    return out


def detect_data_bar(
    pixels: NDArray[np.floating],
    *,
    min_uniform: float = 0.6,
    min_rows: int = 4,
    max_fraction: float = 0.3,
    max_gap_rows: int = 12,
) -> int:
    """Height in rows of the data bar at the bottom of ``pixels`` (2-D, float in [0, 1]); 0 when there is none."""
    h = pixels.shape[0]
    limit = int(h * max_fraction)
    if h < 3 * min_rows or limit < min_rows:
        return 0
    uniform = row_uniformity(pixels[h - limit - max_gap_rows - 2 :]) >= min_uniform
    uniform = uniform[::-1]  # index 0 is the bottom row
    if not uniform[0]:
        return 0
    top, gap = 0, 0
    for i, is_bar in enumerate(uniform):
        if is_bar:
            top, gap = i + 1, 0
        else:
            gap += 1
            if gap > max_gap_rows:
                break
    if top < min_rows or top > limit:
        return 0
    above = uniform[top : top + max_gap_rows]
    if above.size == 0 or above.mean() > 0.5:
        return 0
    return top
