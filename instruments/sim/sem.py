"""Forms a secondary-electron image from ground-truth masks, then adds what a real SEM adds.

Contrast: grains differ slightly (channelling), boundaries are dark etched grooves, the second phase is bright,
pores are dark with a bright rim (the SE edge effect), cracks are dark lines; grains not yet recrystallized
show deformation bands. Artifacts, in scan order: Gaussian probe blur (heavy when out of focus), brightness
and contrast drift during the frame, charging streaks (bright tails along the fast-scan direction), scan-line
jitter (per-row shift), Poisson shot noise at the beam dose, quantization.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from scipy.ndimage import binary_dilation, gaussian_filter

from instruments.sim.render import CRACK, PORE, SECOND_PHASE, Masks


class Artifacts(BaseModel):
    """Strengths of the SEM artifacts (0 turns one off)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    blur_px: float = Field(default=0.8, ge=0, description="probe size, Gaussian σ in pixels")
    defocus_blur_px: float = Field(default=6.0, ge=0, description="σ of an out-of-focus frame")
    dose: float = Field(default=120.0, gt=0, description="electrons per pixel at full brightness (shot noise)")
    drift: float = Field(default=0.06, ge=0, le=0.5, description="brightness/contrast drift over one frame")
    jitter_px: float = Field(default=0.5, ge=0, description="σ of the per-row scan shift in pixels")
    charging: float = Field(default=0.3, ge=0, description="expected charging streaks per 512 rows, x10")


def structure_image(masks: Masks, rng: np.random.Generator, *, phase_gray: float = 0.78) -> NDArray[np.float32]:
    """Noise-free SE signal in [0, 1] of the masks."""
    labels = masks.grains
    n = int(labels.max()) + 1
    grain_gray = (0.42 + 0.05 * rng.standard_normal(n)).astype(np.float32)
    img = grain_gray[labels]
    if masks.deformed_grains.any():
        theta = rng.uniform(0, np.pi, n).astype(np.float32)
        period = rng.uniform(4.0, 9.0, n).astype(np.float32)
        yy, xx = np.indices(labels.shape, dtype=np.float32)
        t, p = theta[labels], period[labels]
        bands = np.sin(2 * np.pi * (xx * np.cos(t) + yy * np.sin(t)) / p)
        img = img * np.where(masks.deformed_grains[labels], 1.0 + 0.12 * bands, 1.0).astype(np.float32)
    groove = gaussian_filter(masks.boundary.astype(np.float32), 0.7) * 2.5
    img = img * (1.0 - 0.55 * np.clip(groove, 0.0, 1.0))
    phase = masks.phase
    img[phase == SECOND_PHASE] = phase_gray
    holes = (phase == PORE) | (phase == CRACK)
    if holes.any():
        rim = binary_dilation(holes, iterations=2) & ~holes
        img[rim] = np.maximum(img[rim], 0.85)
        img[phase == PORE] = 0.07
        img[phase == CRACK] = 0.04
    return img


def apply_artifacts(
    signal: NDArray[np.float32], art: Artifacts, rng: np.random.Generator, *, out_of_focus: bool, bits: int = 16
) -> NDArray[np.uint16]:
    """Turns a noise-free signal into the frame an SEM would store (``bits``-bit unsigned integers)."""
    return apply_artifacts_with_shift(signal, art, rng, out_of_focus=out_of_focus, bits=bits)[0]


def shift_rows(array: NDArray[Any], shift: NDArray[np.int64]) -> NDArray[Any]:
    """Moves row ``i`` of ``array`` right by ``shift[i]`` pixels (edge pixels repeated), as scan jitter does."""
    w = array.shape[1]
    cols = np.clip(np.arange(w)[None, :] - shift[:, None], 0, w - 1)
    return np.take_along_axis(array, cols, axis=1)


def apply_artifacts_with_shift(
    signal: NDArray[np.float32], art: Artifacts, rng: np.random.Generator, *, out_of_focus: bool, bits: int = 16
) -> tuple[NDArray[np.uint16], NDArray[np.int64]]:
    """`apply_artifacts`, and the scan-jitter shift of each row (pixels), so that label masks can be moved with the
    image: a segmentation label says what the frame shows, and jitter moves what the frame shows."""
    h, w = signal.shape
    shift = np.zeros(h, dtype=np.int64)
    sigma = art.defocus_blur_px if out_of_focus else art.blur_px
    img = gaussian_filter(signal, sigma) if sigma > 0 else signal.copy()
    # drift: gain and offset wander slowly while the frame is scanned (rows are slow-scan time)
    t = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
    phase = rng.uniform(0, 2 * np.pi)
    gain = 1.0 + art.drift * (rng.normal() * t + 0.5 * np.sin(2 * np.pi * t + phase))
    img = img * gain + art.drift * 0.3 * rng.normal() * t
    # charging: a charged spot brightens the rest of its scan lines, fading along the fast-scan direction
    n_streaks = rng.poisson(art.charging * 10.0 * h / 512.0)
    xs = np.arange(w, dtype=np.float32)
    for _ in range(n_streaks):
        y0, x0 = int(rng.integers(0, h)), float(rng.uniform(0, w))
        rows = slice(y0, min(h, y0 + int(rng.integers(1, 4))))
        tail = np.where(xs >= x0, np.exp(-(xs - x0) / rng.uniform(20, 200)), 0.0).astype(np.float32)
        img[rows] += rng.uniform(0.15, 0.5) * tail
    # scan-line jitter: each row lands a little left or right
    if art.jitter_px > 0:
        shift = np.round(rng.normal(0.0, art.jitter_px, h)).astype(np.int64)
        img = shift_rows(img, shift)
    # shot noise at the beam dose, then the detector's gain to the full integer range
    counts = rng.poisson(np.clip(img, 0.0, None) * art.dose + 2.0).astype(np.float32)
    top = float(2**bits - 1)
    scale = 0.8 * top / (art.dose + 2.0)
    dtype = np.uint16 if bits > 8 else np.uint8
    return np.clip(counts * scale, 0, top).astype(dtype), shift  # type: ignore[return-value]
