"""Overlay pictures of a segmentation: the micrograph in grey, the classes as a semi-transparent colour overlay
with a legend, a scale bar in µm, an optional per-pixel uncertainty panel, and the features as a text block.

Rendered with matplotlib's Agg canvas on a ``Figure`` that is never registered with pyplot (no global state), and
written atomically (temporary file, then ``os.replace``). Images longer than ``MAX_DISPLAY_PX`` are shown
subsampled (every k-th pixel: nearest for labels, so class indices stay exact, except that thin
classes — boundaries, cracks — are kept wherever they fall in a k×k block, so that 1-px lines stay visible).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from numpy.typing import NDArray

from imaging.base import Feature
from imaging.classical import Segmentation

CLASSES: tuple[str, ...] = ("matrix", "second_phase", "pore", "boundary", "crack")  # as in imaging.train.dataset
MAX_DISPLAY_PX = 1024  # long side of a displayed panel
DPI = 100
MARGIN_PX = 12
TITLE_PX = 28
LINE_PX = 17  # height of one line of the text block and legend
MIN_WIDTH_PX = 560  # room for the text block and legend under small images
COLORBAR_PX = 60  # colour bar and its tick labels beside the uncertainty panel

COLORS: dict[str, tuple[float, float, float]] = {
    "matrix": (0.5, 0.5, 0.5),  # drawn transparent
    "second_phase": (0.10, 0.45, 1.00),
    "pore": (1.00, 0.15, 0.15),
    "boundary": (1.00, 0.90, 0.00),
    "crack": (1.00, 0.00, 1.00),
}
_SPARE = [(0.0, 0.8, 0.3), (1.0, 0.55, 0.0), (0.0, 0.85, 0.85), (0.6, 0.3, 1.0), (0.6, 0.4, 0.2)]
TRANSPARENT = frozenset({"matrix", "background"})
THIN = frozenset({"boundary", "crack"})  # drawn nearly opaque so that 1-px lines stay visible
DIMENSIONLESS = frozenset({"", "1", "fraction", "count", "dimensionless"})
_UNIT_TEXT = {"um": "µm", "um2": "µm²", "um^2": "µm²", "per_mm": "1/mm"}


def label_map_from_segmentation(seg: Segmentation) -> NDArray[np.uint8]:
    """(H, W) uint8 indices into ``CLASSES``; where masks overlap, crack > pore > boundary > second phase > matrix."""
    labels = np.zeros(seg.pores.shape, dtype=np.uint8)
    labels[seg.second] = CLASSES.index("second_phase")
    labels[seg.boundaries] = CLASSES.index("boundary")
    labels[seg.pores] = CLASSES.index("pore")
    labels[seg.cracks > 0] = CLASSES.index("crack")
    return labels


def class_color(name: str, index: int) -> tuple[float, float, float]:
    """The overlay colour of a class: a fixed one for the known classes, else one from a spare cycle."""
    return COLORS.get(name, _SPARE[index % len(_SPARE)])


def _fmt(x: float, digits: int) -> str:
    return f"{x:.{digits}g}" if math.isfinite(x) else str(x)


def feature_lines(features: Sequence[Feature]) -> list[str]:
    """One line per feature, ``"porosity = 0.012 ± 0.002"``, with the unit after it unless dimensionless;
    σ is left out when it is not finite (NaN: not measured)."""
    lines = []
    for f in features:
        unit = "" if f.unit in DIMENSIONLESS else " " + _UNIT_TEXT.get(f.unit, f.unit)
        sigma = f" ± {_fmt(f.sigma, 2)}" if math.isfinite(f.sigma) else ""
        lines.append(f"{f.name} = {_fmt(f.value, 4)}{sigma}{unit}")
    return lines


def display_step(shape: tuple[int, ...], max_px: int = MAX_DISPLAY_PX) -> int:
    """Subsampling step so that the long side of ``shape`` is at most ``max_px``."""
    return max(1, math.ceil(max(shape[:2]) / max_px))


def display_labels(labels: NDArray[np.integer], classes: Sequence[str], step: int) -> NDArray[np.intp]:
    """``labels`` subsampled by ``step`` (nearest), except that a block holding any pixel of a thin class
    (boundary, crack; the later in ``classes`` wins) shows it, so that 1-px lines survive subsampling."""
    shown = labels[::step, ::step].astype(np.intp)
    if step == 1:
        return shown
    h, w = shown.shape
    padded = np.zeros((h * step, w * step), dtype=labels.dtype)
    padded[: labels.shape[0], : labels.shape[1]] = labels
    blocks = padded.reshape(h, step, w, step)
    for i, name in enumerate(classes):
        if name in THIN:
            shown[(blocks == i).any(axis=(1, 3))] = i
    return shown


def nice_length(target: float) -> float:
    """The largest 1, 2 or 5 × 10^k not above ``target`` (> 0)."""
    k = 10.0 ** math.floor(math.log10(target))
    return max(m * k for m in (1.0, 2.0, 5.0) if m * k <= target)


@dataclass(frozen=True)
class Layout:
    """Where things go in the PNG, in pixels from its top-left corner: ``image`` and ``uncertainty`` are
    (top, left, height, width) boxes of the panels, ``size`` is (height, width) of the whole picture."""

    size: tuple[int, int]
    image: tuple[int, int, int, int]
    uncertainty: tuple[int, int, int, int] | None
    text_top: int


def layout(panel_shape: tuple[int, int], n_lines: int, n_classes: int, *, title: bool, uncertainty: bool) -> Layout:
    """The picture's layout for displayed panels of ``panel_shape`` (after subsampling)."""
    h, w = panel_shape
    top = MARGIN_PX + (TITLE_PX if title else 0)
    image = (top, MARGIN_PX, h, w)
    right = MARGIN_PX + w
    unc = None
    if uncertainty:
        unc = (top, right + MARGIN_PX, h, w)
        right += MARGIN_PX + w + COLORBAR_PX
    text_top = top + h + MARGIN_PX
    text_h = max(n_lines, n_classes, 1) * LINE_PX
    width = max(right + MARGIN_PX, MIN_WIDTH_PX)
    return Layout((text_top + text_h + MARGIN_PX, width), image, unc, text_top)


def _axes_rect(box: tuple[int, int, int, int], size: tuple[int, int]) -> tuple[float, float, float, float]:
    top, left, h, w = box
    fh, fw = size
    return (left / fw, 1.0 - (top + h) / fh, w / fw, h / fh)


def _overlay_rgba(labels: NDArray[np.integer], classes: Sequence[str], alpha: float) -> NDArray[np.float32]:
    table = np.zeros((len(classes), 4), dtype=np.float32)
    for i, name in enumerate(classes):
        a = 0.0 if name in TRANSPARENT else max(alpha, 0.9) if name in THIN else alpha
        table[i] = (*class_color(name, i), a)
    return table[labels]


def _scale_bar(ax: Axes, width_px: int, height_px: int, um_per_display_px: float) -> None:
    length_um = nice_length(0.2 * width_px * um_per_display_px)
    length_px = length_um / um_per_display_px
    bar_h = max(3.0, 0.012 * height_px)
    x0, y0 = 0.04 * width_px, height_px - 0.05 * height_px - bar_h
    ax.add_patch(Rectangle((x0, y0), length_px, bar_h, facecolor="white", edgecolor="black", linewidth=0.8))
    label = f"{length_um:g} µm" if length_um >= 1 else f"{length_um * 1000:g} nm"
    ax.text(
        x0 + length_px / 2, y0 - 4, label, color="white", ha="center", va="bottom", fontsize=10,
        bbox={"facecolor": "black", "alpha": 0.5, "pad": 1.5, "edgecolor": "none"},
    )  # fmt: skip


def render_overlay(
    pixels: NDArray[np.floating],
    labels: NDArray[np.integer],
    classes: Sequence[str],
    features: Sequence[Feature],
    out: Path,
    *,
    title: str = "",
    pixel_size_um: float | None = None,
    uncertainty: NDArray[np.floating] | None = None,
    alpha: float = 0.45,
) -> Path:
    """Writes the overlay picture of one micrograph to ``out`` (PNG) and returns ``out``.

    pixels: (H, W) float in [0, 1]. labels: (H, W) integer indices into ``classes`` (``matrix`` is drawn
    transparent). uncertainty: optional (H, W) per-pixel map shown as a second panel with a colour bar.
    ``pixel_size_um`` (of the input pixels) adds a scale bar. Raises ``ValueError`` for mismatched shapes.
    """
    pixels = np.asarray(pixels)
    labels = np.asarray(labels)
    if pixels.ndim != 2:
        raise ValueError(f"pixels must be (H, W), got shape {pixels.shape}")
    if labels.shape != pixels.shape:
        raise ValueError(f"labels have shape {labels.shape}, pixels {pixels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(f"labels must index the {len(classes)} classes, got values {labels.min()}..{labels.max()}")
    if uncertainty is not None and np.shape(uncertainty) != pixels.shape:
        raise ValueError(f"uncertainty has shape {np.shape(uncertainty)}, pixels {pixels.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")

    step = display_step(pixels.shape)
    grey = np.clip(np.nan_to_num(pixels[::step, ::step].astype(np.float32)), 0.0, 1.0)
    lab = display_labels(labels, classes, step)
    lines = feature_lines(features)
    shown = [(i, c) for i, c in enumerate(classes) if c not in TRANSPARENT]
    lay = layout(grey.shape, len(lines), len(shown), title=bool(title), uncertainty=uncertainty is not None)
    fh, fw = lay.size

    fig = Figure(figsize=(fw / DPI, fh / DPI), dpi=DPI, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes(_axes_rect(lay.image, lay.size))
    ax.imshow(grey, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.imshow(_overlay_rgba(lab, classes, alpha), interpolation="nearest")
    ax.set_axis_off()
    if pixel_size_um is not None and math.isfinite(pixel_size_um) and pixel_size_um > 0:
        _scale_bar(ax, grey.shape[1], grey.shape[0], pixel_size_um * step)
    if step > 1:
        ax.text(
            grey.shape[1] - 4, 4, f"shown 1:{step}", color="white", ha="right", va="top", fontsize=8,
            bbox={"facecolor": "black", "alpha": 0.5, "pad": 1.0, "edgecolor": "none"},
        )  # fmt: skip
    if uncertainty is not None and lay.uncertainty is not None:
        u = np.asarray(uncertainty, dtype=np.float32)[::step, ::step]
        uax = fig.add_axes(_axes_rect(lay.uncertainty, lay.size))
        finite = u[np.isfinite(u)]
        hi = float(finite.max()) if finite.size else 1.0
        im = uax.imshow(u, cmap="magma", vmin=0.0, vmax=hi if hi > 0 else 1.0, interpolation="nearest")
        uax.set_axis_off()
        uax.set_title("uncertainty", fontsize=9, pad=2)
        top, left, h, w = lay.uncertainty
        cax = fig.add_axes(_axes_rect((top, left + w + 6, h, 12), lay.size))
        fig.colorbar(im, cax=cax).ax.tick_params(labelsize=8)
    if title:
        fig.text(MARGIN_PX / fw, 1.0 - MARGIN_PX / fh, title, ha="left", va="top", fontsize=12, weight="bold")
    if lines:
        fig.text(
            MARGIN_PX / fw, 1.0 - lay.text_top / fh, "\n".join(lines), ha="left", va="top", fontsize=10,
            family="monospace", linespacing=1.2,
        )  # fmt: skip
    if shown:
        handles = [Patch(facecolor=class_color(c, i), edgecolor="black", label=c) for i, c in shown]
        fig.legend(
            handles=handles, loc="upper right", bbox_to_anchor=(1.0 - MARGIN_PX / fw, 1.0 - lay.text_top / fh),
            fontsize=9, frameon=False, borderaxespad=0.0, handlelength=1.2, labelspacing=0.3,
        )  # fmt: skip

    out = Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        canvas.print_png(tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
