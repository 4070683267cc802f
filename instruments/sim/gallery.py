"""A contact sheet of simulated micrographs across a system's input space, with conditions and true features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from instruments.sim.features import field_truth
from instruments.sim.render import Microstructure, render_masks
from instruments.sim.seeding import rng_for
from instruments.sim.sem import Artifacts, apply_artifacts, structure_image
from instruments.sim.survey import surviving_samples
from instruments.sim.systems import MaterialSystem, get_system

_SHORT = {
    "anneal_temperature": "T",
    "anneal_time": "t",
    "cooling_rate": "rate",
    "alloy_fraction": "c",
    "atmosphere": "",
    "sinter_temperature": "T",
    "hold_time": "t",
    "pressure": "P",
    "particle_size": "a",
    "binder_fraction": "binder",
}
_PROPS = {
    "yield_strength": "σy {:.0f} MPa",
    "elongation": "e {:.1f} %",
    "flexural_strength": "σf {:.0f} MPa",
    "thermal_conductivity": "k {:.1f} W/mK",
}


def _label(system: MaterialSystem, cond: dict[str, Any], truth: dict[str, Any], feats: dict[str, Any]) -> str:
    parts = []
    for s in system.inputs:
        v = cond[s.name]
        parts.append(
            str(v) if s.categorical else f"{_SHORT.get(s.name, s.name)}={v:.3g}{'' if s.unit == '1' else s.unit}"
        )
    parts = [p.replace("degC", "°C").replace("um", "µm") for p in parts]
    line1 = ", ".join(parts[:3])
    line2 = ", ".join(parts[3:])
    line3 = (
        f"d̄={feats['mean_intercept_um']:.3g} µm  p={feats['porosity']:.3f}  "
        f"f₂={feats['second_phase_fraction']:.3f}  cracks={feats['crack_count']}"
    )
    line4 = "  ".join(fmt.format(truth[k]) for k, fmt in _PROPS.items() if k in truth)
    return "\n".join([line1, line2, line3, line4])


def make_gallery(
    system: str, out: Path, n: int = 9, seed: int = 0, pixel_size_um: float | None = None, size_px: int = 320
) -> Path:
    """Writes a PNG contact sheet of ``n`` samples of ``system`` (failed samples are skipped and counted)."""
    sys_ = get_system(system)
    px = float(pixel_size_um or sys_.default_pixel_size_um)
    panels: list[tuple[np.ndarray, str]] = []
    failures: dict[str, int] = {}
    for i, cond, outcome in surviving_samples(
        sys_, n, seed, candidates=max(4 * n, 16), tag="gallery", failures=failures
    ):
        rng = rng_for(seed, system, i, "gallery-field")
        masks = render_masks(Microstructure.from_truth(outcome.truth), (size_px, size_px), px, rng)
        image = apply_artifacts(structure_image(masks, rng), Artifacts(), rng, out_of_focus=False, bits=8)
        panels.append((image, _label(sys_, cond, outcome.truth, field_truth(masks, px))))
    cols = int(np.ceil(np.sqrt(len(panels))))
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 4.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    bar_um = _nice_bar(size_px * px / 4)
    for ax, (image, label) in zip(axes.ravel(), panels, strict=False):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.plot([size_px * 0.05, size_px * 0.05 + bar_um / px], [size_px * 0.93] * 2, color="white", lw=3)
        ax.text(size_px * 0.05, size_px * 0.89, f"{bar_um:g} µm", color="white", fontsize=8)
        ax.text(0.0, -0.02, label, transform=ax.transAxes, va="top", ha="left", fontsize=6.5, family="monospace")
    failed = ", ".join(f"{k} ×{v}" for k, v in sorted(failures.items()))
    title = f"sim-sem: {system}, {px:g} µm/pixel, seed {seed}"
    fig.suptitle(title + (f"  (skipped failures: {failed})" if failed else ""), fontsize=10)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.95, bottom=0.06, wspace=0.06, hspace=0.32)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())  # type: ignore[attr-defined]
    plt.close(fig)
    gray = (rgba[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.uint8)
    Image.fromarray(gray, mode="L").save(out, optimize=True)  # grayscale PNG: a third of the size of RGBA
    return out


def _nice_bar(length: float) -> float:
    """The largest 1-2-5 number not above ``length``."""
    exp = 10 ** np.floor(np.log10(length))
    return float(max(m * exp for m in (1, 2, 5) if m * exp <= length))
