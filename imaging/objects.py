"""Defects and grains as objects in physical units (one CSV row each): cracks, pores, inclusions and grains, so that
a campaign keeps the distributions behind its scalar features.

Kinds: ``crack`` (crack labels; length along the skeleton), ``pore`` (8-connected pore components, as counted by
``pore_count``), ``inclusion`` (second-phase particles smaller than ``PARTICLE_GRAIN_AREA`` × ℓ̄², the rule by which
the classical segmentation tells precipitates from grains) and ``grain`` (grains off the border, as in the ECD
features). Positions are from the top-left corner of the frame, x along columns, y down rows, pixel centres at
(i + ½) × pixel size; lengths of all but cracks are the major axis of the ellipse of equal second moments.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from skimage import measure as skmeasure

from imaging.classical import MIN_PARTICLE_PX, PARTICLE_GRAIN_AREA, Segmentation
from imaging.intercept import intercept_counts
from imaging.pores import blobs


@dataclass(frozen=True)
class MicroObject:
    """One object of one frame, in µm; ``edge`` is 1 when the field edge cuts it (its size is then a lower bound)."""

    kind: str
    frame: int
    file: str
    x_um: float
    y_um: float
    area_um2: float
    length_um: float
    ecd_um: float
    edge: int


COLUMNS = tuple(f.name for f in fields(MicroObject))


@dataclass(frozen=True)
class Frame:
    """What the objects of one analyzed frame are taken from (the segmentation at the pixel size it was made at)."""

    file: str
    seg: Segmentation
    pixel_size_um: float
    min_grain_area_px: float


def _objects(
    labels: NDArray[np.integer], kind: str, frame: Frame, index: int, keep: NDArray[np.bool_] | None = None
) -> list[MicroObject]:
    """Objects of ``labels`` (label i ↔ ``keep[i - 1]``); crack lengths from the segmentation's crack lengths."""
    px = frame.pixel_size_um
    h, w = labels.shape
    out = []
    for r in skmeasure.regionprops(np.asarray(labels, dtype=np.int32)):
        if keep is not None and not keep[r.label - 1]:
            continue
        r0, c0, r1, c1 = r.bbox
        if kind == "crack":
            lengths = frame.seg.crack_lengths_px
            length = lengths[r.label - 1] if r.label <= len(lengths) else float(frame.seg.crack_skeleton[r.slice].sum())
        else:
            length = float(r.axis_major_length)
        cy, cx = r.centroid
        out.append(
            MicroObject(
                kind=kind,
                frame=index,
                file=frame.file,
                x_um=(cx + 0.5) * px,
                y_um=(cy + 0.5) * px,
                area_um2=float(r.area) * px * px,
                length_um=float(length) * px,
                ecd_um=2.0 * math.sqrt(float(r.area) / math.pi) * px,
                edge=int(r0 == 0 or c0 == 0 or r1 == h or c1 == w),
            )
        )
    return out


def inclusion_limit_px(seg: Segmentation) -> float:
    """Largest area in px² of a second-phase particle counted as an inclusion: ``PARTICLE_GRAIN_AREA`` × ℓ̄², with
    ℓ̄ the mean lineal intercept of the boundaries (at most the smaller image side, when boundaries are few)."""
    length, n = intercept_counts(seg.boundaries, seg.solid)
    ell = min(length / max(n, 1), float(min(seg.solid.shape)))
    return PARTICLE_GRAIN_AREA * ell * ell


def frame_objects(frame: Frame, index: int) -> list[MicroObject]:
    """Cracks, pores, inclusions and grains (off the border, at least the grain minimum area) of one frame."""
    seg = frame.seg
    pores = blobs(seg.pores)
    particles = blobs(seg.second, MIN_PARTICLE_PX)
    grains = np.asarray(seg.grains)
    area = np.bincount(grains.ravel())
    edge = np.zeros(area.size, dtype=bool)
    edge[np.concatenate([grains[0], grains[-1], grains[:, 0], grains[:, -1]])] = True
    grain_ok = (area >= max(frame.min_grain_area_px, 1.0)) & ~edge
    return [
        *_objects(seg.cracks, "crack", frame, index),
        *_objects(pores.labels, "pore", frame, index),
        *_objects(particles.labels, "inclusion", frame, index, particles.area_px < inclusion_limit_px(seg)),
        *_objects(grains, "grain", frame, index, grain_ok[1:]),
    ]


def write_objects_csv(frames: Sequence[Frame], path: Path) -> Path:
    """All objects of ``frames`` as one CSV at ``path`` (header ``COLUMNS``; floats to 6 significant digits)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for i, frame in enumerate(frames):
            for obj in frame_objects(frame, i):
                writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in astuple(obj)])
    return path
