"""Spur pruning of a one-pixel skeleton: skeletonizing a blob that sits on a line leaves side branches (spurs)
that a test line would count as extra boundary crossings."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Mask = NDArray[np.bool_]

#: the 8 neighbours in cyclic order around the pixel (N, NE, E, SE, S, SW, W, NW) as (row, column) offsets
_RING = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


def neighbour_runs(skeleton: Mask) -> NDArray[np.int8]:
    """Per pixel, the number of separate runs of skeleton pixels in its cyclic 8-neighbour ring: 0 for an isolated
    pixel, 1 for an end (a branch tip, or a stub pixel sitting on a line), 2 or more where it connects branches."""
    padded = np.pad(np.asarray(skeleton, dtype=bool), 1)
    h, w = skeleton.shape
    ring = [padded[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w] for dr, dc in _RING]
    runs = np.zeros((h, w), dtype=np.int8)
    for a, b in zip(ring, ring[1:] + ring[:1], strict=True):
        runs += ~a & b
    return runs


def prune_spurs(skeleton: Mask, removable: Mask, max_length_px: int = 64) -> Mask:
    """``skeleton`` with its end branches eaten back, one end pixel at a time, for as long as the end lies in
    ``removable`` (at most ``max_length_px`` steps). Closed loops and branches ending outside ``removable`` are
    kept whole, so a boundary network loses only the spurs that grow into the blobs it was thickened with."""
    out = np.asarray(skeleton, dtype=bool).copy()
    removable = np.asarray(removable, dtype=bool)
    for _ in range(max_length_px):
        ends = out & removable & (neighbour_runs(out) <= 1)
        if not ends.any():
            break
        out[ends] = False
    return out
