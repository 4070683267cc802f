"""Pores as objects: count per field and size (mean and 90th percentile of equivalent-circle diameter), each with σ
from subfields or counting, the bootstrap for the percentile, and the pore mask at moved thresholds."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from skimage import measure as skmeasure

from imaging.distributions import bootstrap_percentiles, ecd
from imaging.estimate import Estimate, Tile, field_se, in_tile

Mask = NDArray[np.bool_]

MIN_PORE_PX = 4  # a pore smaller than 2×2 px is not resolved (and in predicted labels is mostly speckle)


@dataclass(frozen=True)
class Blobs:
    """Connected components of a mask (8-connected, at least ``MIN_PORE_PX``): labels and per-object arrays."""

    labels: NDArray[np.int32]  # 0 background; small components removed
    area_px: NDArray[np.float64]
    cy: NDArray[np.float64]
    cx: NDArray[np.float64]
    cut: NDArray[np.bool_]  # touches the field edge

    @property
    def inner(self) -> NDArray[np.bool_]:
        """The objects not cut by the field edge (all of them, when every one is cut)."""
        return ~self.cut if (~self.cut).any() else np.ones_like(self.cut)

    @property
    def inner_ecd_px(self) -> NDArray[np.float64]:
        """ECD in px of the ``inner`` objects."""
        return ecd(self.area_px[self.inner])


def blobs(mask: Mask, min_area_px: float = MIN_PORE_PX) -> Blobs:
    """The connected components of ``mask`` of at least ``min_area_px`` pixels, relabelled 1..n."""
    raw = skmeasure.label(mask, connectivity=2)
    area = np.bincount(raw.ravel()).astype(np.float64)
    keep = area >= max(min_area_px, 1.0)
    keep[0] = False
    new = np.zeros(area.size, dtype=np.int32)
    new[keep] = np.arange(1, int(keep.sum()) + 1)
    labels = new[raw]
    n = int(keep.sum()) + 1
    rr, cc = np.indices(mask.shape)
    a = np.bincount(labels.ravel(), minlength=n).astype(np.float64)
    cy = np.bincount(labels.ravel(), weights=rr.ravel(), minlength=n) / np.maximum(a, 1)
    cx = np.bincount(labels.ravel(), weights=cc.ravel(), minlength=n) / np.maximum(a, 1)
    cut = np.zeros(n, dtype=bool)
    cut[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
    return Blobs(labels, a[1:], cy[1:], cx[1:], cut[1:])


def _mean(values: NDArray[np.float64]) -> float:
    return float(values.mean()) if values.size else 0.0


def pore_features(
    pores: Mask, pores_alt: tuple[Mask, Mask], tiles: list[Tile], pixel_size_um: float
) -> dict[str, Estimate]:
    """``pore_count`` (σ: larger of Poisson √n and subfield counts, ⊕ threshold sensitivity), ``pore_size_um``
    (mean ECD of pores not cut by the edge; σ larger of subfields and std/√n, ⊕ thresholds) and
    ``pore_size_d90_um`` (σ bootstrap ⊕ thresholds). With no pore the sizes are 0 ± the smallest pore counted."""
    b, lo, hi = blobs(pores), blobs(pores_alt[0]), blobs(pores_alt[1])
    n = b.area_px.size
    tile_counts = [float(in_tile(b.cy, b.cx, t).sum()) for t in tiles]
    sampling = float(np.std(tile_counts, ddof=1)) * math.sqrt(len(tiles)) if len(tiles) > 1 else 0.0
    count = Estimate(
        float(n), math.hypot(max(sampling, math.sqrt(max(n, 1))), 0.5 * abs(hi.area_px.size - lo.area_px.size))
    )
    diam = b.inner_ecd_px
    if diam.size == 0:
        floor = float(ecd([MIN_PORE_PX])[0]) * pixel_size_um
        return {"pore_count": count, "pore_size_um": Estimate(0.0, floor), "pore_size_d90_um": Estimate(0.0, floor)}
    ys, xs = b.cy[b.inner], b.cx[b.inner]
    mean = float(diam.mean())
    counting = float(diam.std(ddof=1) / math.sqrt(diam.size)) if diam.size > 1 else mean

    def tile_mean(t: Tile) -> float:
        sel = in_tile(ys, xs, t)
        return float(diam[sel].mean()) if sel.any() else math.nan

    seg_mean = 0.5 * abs(_mean(hi.inner_ecd_px) - _mean(lo.inner_ecd_px))
    size = Estimate(
        mean * pixel_size_um, math.hypot(max(field_se(tiles, tile_mean), counting), seg_mean) * pixel_size_um
    )
    [d90] = bootstrap_percentiles(diam, (90,))
    alt90 = [float(np.percentile(x.inner_ecd_px, 90)) if x.area_px.size else 0.0 for x in (lo, hi)]
    seg90 = 0.5 * abs(alt90[1] - alt90[0])
    return {
        "pore_count": count,
        "pore_size_um": size,
        "pore_size_d90_um": Estimate(d90.value * pixel_size_um, math.hypot(d90.sigma, seg90) * pixel_size_um),
    }
