"""Grain boundaries as dark thin ridges: a multi-scale ridge significance calibrated against noise, hysteresis
thresholding and skeletonization.

Each scale's response is divided by what white noise of the image's own noise level reaches there in 1 pixel
of 1000, so that scales compare fairly (small scales see more noise) and a significance of 1 means "as strong
as the strongest noise". This makes the threshold follow the image's noise instead of a tuned constant.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi
from skimage import filters, morphology

BoundaryMethod = Literal["hessian", "sato", "tophat"]
Mask = NDArray[np.bool_]

NOISE_QUANTILE = 99.9  # significance 1 = this percentile of the response to noise alone
GRADIENT_WEIGHT = 0.5  # of the gradient penalty in the Hessian ridge measure
LOW_FLOOR = 0.7  # hysteresis low threshold is at least this significance: lower, noise specks grow into lines


def disk(radius: float) -> NDArray[np.uint8]:
    """A disk footprint of ``radius`` pixels rounded to the nearest integer."""
    return morphology.disk(max(round(radius), 0))


def remove_small(mask: Mask, max_size: int, connectivity: int = 1) -> Mask:
    """``mask`` without connected components of ``max_size`` pixels or fewer (any scikit-image version)."""
    structure = ndi.generate_binary_structure(2, connectivity)
    labels, n = ndi.label(mask, structure=structure)
    if n == 0:
        return mask.copy()
    keep = np.bincount(labels.ravel()) > max_size
    keep[0] = False
    return keep[labels]


def hessian_ridge(image: NDArray[np.floating], sigma: float) -> NDArray[np.float32]:
    """Dark-line strength at one scale: σ²·λ₊ − σ·|∇I|, clipped at 0, with λ₊ the larger Hessian eigenvalue (the
    curvature across a dark line) of the image smoothed at σ.

    σ²·λ₊ alone is Sato's 2-D filter. The gradient term keeps the response to line centres: beside a step edge,
    and around a dark blob (where the tangential curvature |∇I|/r is positive), the gradient outweighs the
    curvature, so pore and phase edges are not taken for boundaries.
    """
    img = np.asarray(image, dtype=np.float32)
    hrr = ndi.gaussian_filter(img, sigma, order=(2, 0), mode="reflect")
    hcc = ndi.gaussian_filter(img, sigma, order=(0, 2), mode="reflect")
    hrc = ndi.gaussian_filter(img, sigma, order=(1, 1), mode="reflect")
    gr = ndi.gaussian_filter(img, sigma, order=(1, 0), mode="reflect")
    gc = ndi.gaussian_filter(img, sigma, order=(0, 1), mode="reflect")
    lam = 0.5 * (hrr + hcc) + np.sqrt((0.5 * (hrr - hcc)) ** 2 + hrc**2)
    return np.maximum(sigma**2 * lam - GRADIENT_WEIGHT * sigma * np.hypot(gr, gc), 0.0).astype(np.float32)


def ridge_response(image: NDArray[np.floating], method: BoundaryMethod, sigma: float) -> NDArray[np.float32]:
    """Dark thin-line strength at one scale ``sigma`` (for ``tophat``: a disk of radius 2σ + 1)."""
    if method == "tophat":
        return morphology.black_tophat(np.asarray(image, dtype=np.float32), disk(2 * sigma + 1)).astype(np.float32)
    if method == "sato":
        return filters.sato(image, sigmas=[sigma], black_ridges=True, mode="reflect").astype(np.float32)
    return hessian_ridge(image, sigma)


@lru_cache(maxsize=64)
def noise_floor(method: BoundaryMethod, sigma: float, noise: float) -> float:
    """The ``NOISE_QUANTILE`` percentile of the response to white noise of std ``noise`` on a flat field."""
    rng = np.random.default_rng(12345)
    field = rng.normal(0.0, max(noise, 1e-4), (256, 256))
    response = ridge_response(field.astype(np.float32), method, sigma)[12:-12, 12:-12]
    return max(float(np.percentile(response, NOISE_QUANTILE)), 1e-9)


def ridge_significance(
    image: NDArray[np.floating], method: BoundaryMethod, sigmas: tuple[float, ...], noise: NDArray[np.floating]
) -> NDArray[np.float32]:
    """Max over scales of response / noise floor: > 1 where a dark line is stronger than noise could make it.
    ``noise`` is the local noise σ per pixel; every filter here is linear in the noise amplitude, so the floor
    is the one for unit noise times the local σ."""
    out = np.zeros(np.shape(image), dtype=np.float32)
    scales = sigmas[:1] if method == "tophat" else sigmas
    for sigma in scales:
        floor = noise_floor(method, float(sigma), 1.0) * np.asarray(noise, dtype=np.float32)
        np.maximum(out, ridge_response(image, method, sigma) / floor, out=out)
    return out


def hysteresis_levels(significance: NDArray[np.float32], region: Mask) -> tuple[float, float]:
    """(low, high) thresholds: high is the larger of 1 (the noise floor) and half of Otsu's threshold of the
    significance in ``region`` (so that a clean image is not thresholded at its noise); low is half of high, but
    at least ``LOW_FLOOR``, so that hysteresis does not grow noise specks into lines."""
    values = significance[region] if region.any() else significance.ravel()
    try:
        otsu = float(filters.threshold_otsu(values))
    except ValueError:
        otsu = 0.0
    high = max(1.0, 0.5 * otsu)
    return max(LOW_FLOOR, 0.5 * high), high


def boundary_masks(
    significance: NDArray[np.float32], low: float, high: float, region: Mask, min_length_px: float
) -> tuple[Mask, Mask]:
    """(thick boundary mask, 1-px skeleton): hysteresis-thresholded ridges inside ``region``; skeleton pieces
    of ``min_length_px`` pixels or fewer are noise and dropped, with the thick pixels around them."""
    thick = filters.apply_hysteresis_threshold(significance, low, high) & region
    skeleton = remove_small(morphology.skeletonize(thick), max(int(min_length_px), 1), connectivity=2)
    if not skeleton.any():
        return np.zeros_like(thick), skeleton
    keep = ndi.binary_dilation(skeleton, structure=disk(2)) & thick
    return keep, skeleton
