"""Frame quality: noise level, a noise-corrected focus measure, and the check that a frame is usable at all."""

from __future__ import annotations

from functools import cache

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from imaging.base import ImagingError

#: Laplacian-of-Gaussian scale (pixels) of the focus measure: fine enough to see edge sharpness, coarse enough
#: not to be all noise.
FOCUS_SIGMA_PX = 1.0
MIN_SIDE_PX = 32


def _immerkaer(image: NDArray[np.floating]) -> NDArray[np.float64]:
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    return np.abs(ndi.convolve(np.asarray(image, dtype=np.float64), mask, mode="reflect"))


def noise_map(image: NDArray[np.floating], block: int = 16) -> NDArray[np.float32]:
    """Local noise σ per pixel: the median-based Immerkær estimate in ``block``×``block`` tiles, interpolated.

    SEM noise is not uniform: shot noise grows with brightness, so bright grains are noisier than dark ones;
    thresholds relative to a single global σ would find false boundaries in the bright grains.
    """
    response = _immerkaer(image)
    h, w = response.shape
    rows, cols = max(h // block, 1), max(w // block, 1)
    tiles = response[: rows * block, : cols * block].reshape(rows, block, cols, block) if min(h, w) >= block else None
    if tiles is None:
        return np.full((h, w), noise_sigma(image), dtype=np.float32)
    local = np.median(tiles.transpose(0, 2, 1, 3).reshape(rows, cols, -1), axis=2) / 0.6745 / 6.0
    local = np.maximum(local, 0.25 * max(float(np.median(local)), 1e-6))
    full = ndi.zoom(local, (h / rows, w / cols), order=1, mode="nearest", grid_mode=True)
    return full[:h, :w].astype(np.float32)


def noise_sigma(image: NDArray[np.floating]) -> float:
    """Standard deviation of white noise in ``image``, by Immerkær's mask (1996) with a median (edge-robust) norm.

    The 3×3 mask [[1,-2,1],[-2,4,-2],[1,-2,1]] cancels intensity up to second order, so what remains is noise:
    its response to white noise of std σ has std 6σ.
    """
    return float(np.median(_immerkaer(image)[1:-1, 1:-1]) / 0.6745 / 6.0)


@cache
def _log_noise_gain(sigma: float) -> float:
    """Sum of squared LoG kernel weights: the variance a unit white noise gets through the filter."""
    n = int(8 * sigma) | 1
    delta = np.zeros((n, n))
    delta[n // 2, n // 2] = 1.0
    return float((ndi.gaussian_laplace(delta, sigma) ** 2).sum())


def focus_map(image: NDArray[np.floating], noise: float) -> NDArray[np.float64]:
    """Per-pixel squared LoG response minus its expected noise part; its mean over a region, square-rooted, is the
    focus measure of that region (sharp edges give large values, blur small ones, noise alone about zero)."""
    response = ndi.gaussian_laplace(np.asarray(image, dtype=np.float64), FOCUS_SIGMA_PX)
    return response**2 - _log_noise_gain(FOCUS_SIGMA_PX) * noise**2


def focus_quality(focus: NDArray[np.floating]) -> float:
    """Focus measure (a.u., on the [0, 1] normalized image) from a ``focus_map`` region: sqrt of its clipped mean."""
    return float(np.sqrt(max(float(np.mean(focus)), 0.0)))


def check_usable(raw: NDArray[np.floating], normalized: NDArray[np.floating], noise: float, name: str) -> None:
    """Raises ``ImagingError`` for a frame that cannot be analyzed: too small, blank (no dynamic range) or
    structureless (intensity variation at a 4-pixel scale no larger than noise alone would give)."""
    if min(np.shape(raw)) < MIN_SIDE_PX:
        raise ImagingError(f"{name}: frame of {np.shape(raw)} pixels is too small; at least {MIN_SIDE_PX} per side")
    lo, hi = np.percentile(raw, [0.5, 99.5])
    if hi - lo < 2.0 / 255:
        raise ImagingError(
            f"{name}: frame is blank (intensity range {hi - lo:.4f} of full scale); check beam, detector and focus"
        )
    smoothed = ndi.gaussian_filter(np.asarray(normalized, dtype=np.float64), 2.0)
    noise_after = noise / (2.0 * np.sqrt(np.pi) * 2.0)  # white-noise std after a Gaussian of sigma 2 px
    if float(smoothed.std()) < 3.0 * noise_after:
        raise ImagingError(
            f"{name}: frame shows no structure above noise (smoothed std {smoothed.std():.4f}, noise alone "
            f"{noise_after:.4f}); it is unusable: check focus, beam current and detector"
        )
