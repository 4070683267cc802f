"""Scan-line alignment: undoes the per-row shifts (scan jitter) of a raster-scanned frame before segmentation.

A scanning microscope writes each fast-scan line at a slightly different horizontal offset when the beam or
stage jitters; edges then zigzag from row to row. ``estimate_row_shifts`` finds each row's integer offset by
matching it, shifted by −s … +s pixels, against the mean of its two neighbours above and below (already aligned,
iterated to a fixed point), with the row means removed so that brightness drift and charging lines do not pull
it. The shifts are centred on their median: a common offset of all rows is a translation, not jitter.

Rows with little structure, or structure that changes from row to row (a particle's top, a curved boundary),
can get a wrong offset: on jitter-free frames the estimate moves a few per cent of the rows by one pixel. Heavy
jitter (σ ≳ 1 px) is found less well, as blocks of rows can settle one pixel off together.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi


class ScanLineError(ValueError):
    """Input the estimator cannot use (not a 2-D frame, too narrow for the shift range)."""


def shift_rows(array: NDArray[Any], shifts: NDArray[np.integer[Any]]) -> NDArray[Any]:
    """Row ``i`` of ``array`` (H, W, ...) moved right by ``shifts[i]`` pixels, edge pixels repeated."""
    h, w = array.shape[:2]
    shifts = np.asarray(shifts, dtype=np.int64)
    if shifts.shape != (h,):
        raise ScanLineError(f"need one shift per row: {h} rows, {shifts.shape} shifts")
    cols = np.clip(np.arange(w)[None, :] - shifts[:, None], 0, w - 1)
    if array.ndim > 2:
        cols = cols.reshape(cols.shape + (1,) * (array.ndim - 2))
        cols = np.broadcast_to(cols, array.shape)
    return np.take_along_axis(array, cols, axis=1)


def estimate_row_shifts(
    image: NDArray[Any],
    *,
    max_shift_px: int = 3,
    neighbours: int = 2,
    smooth_px: float = 0.7,
    iterations: int = 4,
) -> NDArray[np.int64]:
    """(H,) integer shift of each row, as the scan put it: ``shift_rows(image, -shifts)`` aligns the frame and
    ``shift_rows(labels, shifts)`` puts labels found on the aligned frame back where the frame shows them.

    ``neighbours`` rows above and below form each row's reference; ``smooth_px`` is the σ of a Gaussian along
    the rows that damps shot noise before matching. Invariant to the frame's brightness and contrast."""
    x = np.asarray(image, dtype=np.float64)
    if x.ndim != 2:
        raise ScanLineError(f"scan-line alignment needs a 2-D frame, got shape {x.shape}")
    h, w = x.shape
    m = int(max_shift_px)
    if m < 1 or w <= 4 * m or h < 3:
        raise ScanLineError(f"a {h}×{w} frame is too small to align rows by up to {m} px (needs width > {4 * m})")
    if smooth_px > 0:
        x = ndi.gaussian_filter1d(x, smooth_px, axis=1)
    f = x - x.mean(axis=1, keepdims=True)
    kernel = np.ones(2 * neighbours + 1)
    kernel[neighbours] = 0.0
    kernel /= kernel.sum()
    inner = slice(m, w - m)
    candidates = range(-m, m + 1)
    moved = [shift_rows(f, np.full(h, -s))[:, inner] for s in candidates]
    shifts = np.zeros(h, dtype=np.int64)
    for _ in range(iterations):
        ref = ndi.convolve1d(shift_rows(f, -shifts), kernel, axis=0, mode="reflect")[:, inner]
        cost = np.stack([((c - ref) ** 2).sum(axis=1) for c in moved])
        new = np.argmin(cost, axis=0) - m
        if np.array_equal(new, shifts):
            break
        shifts = new
    return (shifts - int(np.median(shifts))).astype(np.int64)
