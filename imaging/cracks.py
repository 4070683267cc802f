"""Cracks as objects: long, slender, loop-free dark features, measured in pixels."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi
from skimage import measure, morphology

from imaging.ridges import disk

Mask = NDArray[np.bool_]
MIN_STRAIGHTNESS = 0.7  # end-to-end distance over length: a crack runs on, a boundary network winds about


def skeleton_length_px(skeleton: Mask, orientation: float) -> float:
    """Length of a near-straight 8-connected skeleton: its pixel count over max(|cos θ|, |sin θ|)."""
    return float(skeleton.sum()) / max(abs(np.cos(orientation)), abs(np.sin(orientation)), 1e-6)


def find_cracks(
    thin: Mask,
    bridges: Mask,
    min_length_px: float,
    min_aspect: float,
    gap_px: float = 3.0,
    intensity: NDArray[np.floating] | None = None,
    max_core_level: float | None = None,
) -> tuple[NDArray[np.int32], Mask, list[float]]:
    """Cracks among ``thin`` dark features; returns (crack labels, crack skeleton, lengths in px).

    Pieces closer than ``gap_px``, or touching one ``bridges`` region (a pore the crack runs through), form one
    candidate. It is a crack if its pieces hold no loop (a boundary network does), its length is at least
    ``min_length_px``, length²/area (length/width) is at least ``min_aspect``, and it runs straight enough
    (end-to-end distance ≥ ``MIN_STRAIGHTNESS`` × summed length). Its length is the larger of the summed
    skeleton length of its pieces and its end-to-end distance (which spans gaps). With ``max_core_level``, its
    median ``intensity`` must lie below that level (an open crack is darker than a grain boundary).
    """
    pieces = measure.label(thin, connectivity=2)
    groups = measure.label(ndi.binary_dilation(thin, structure=disk(gap_px)) | bridges, connectivity=2)
    out = np.zeros(thin.shape, dtype=np.int32)
    skeleton = np.zeros(thin.shape, dtype=bool)
    lengths: list[float] = []
    for group in measure.regionprops(groups):
        r0, c0, r1, c1 = group.bbox
        local = np.where(group.image, pieces[r0:r1, c0:c1], 0)
        n_pieces = np.unique(local).size - 1
        area = int((local > 0).sum())
        if n_pieces == 0 or area < min_length_px:  # cannot be long enough
            continue
        sub = local > 0
        if (
            intensity is not None
            and max_core_level is not None
            and np.median(intensity[r0:r1, c0:c1][sub]) > max_core_level
        ):
            continue
        if measure.euler_number(sub, connectivity=2) < n_pieces:  # a hole: part of a network
            continue
        skel = morphology.skeletonize(sub)
        summed = sum(skeleton_length_px(skel & (local == p.label), p.orientation) for p in measure.regionprops(local))
        span = float(measure.regionprops(sub.astype(np.uint8))[0].feret_diameter_max)
        length = max(summed, span)
        if length < min_length_px or length * length / area < min_aspect or span < MIN_STRAIGHTNESS * summed:
            continue
        lengths.append(length)
        out[r0:r1, c0:c1][sub] = len(lengths)
        skeleton[r0:r1, c0:c1] |= skel
    return out, skeleton, lengths
