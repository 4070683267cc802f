"""Features in physical units from a segmentation, each with an honest σ.

σ has two parts, added in quadrature:
- *sampling*: the image is split into k×k subfields and the feature measured in each; the standard error
  std/√(k²) is the field-to-field part. Where counting sets a floor (intercepts, grains, cracks), the larger of
  the two is used: with few subfields their spread is itself uncertain.
- *segmentation*: the feature re-measured with its thresholds moved down and up (phase thresholds by 10 % of
  the contrast, ridge thresholds ×/÷ 1.25); half the difference. Blur and noise widen it: more pixels lie near
  a threshold, and faint boundaries come and go.

Grain size also comes by the planimetric method (``imaging.planimetric``) and as ECD percentiles with bootstrap σ
(``imaging.distributions``); pores as objects (``imaging.pores``).

Several images of one sample are pooled by ``pool``: the mean, with a random-effects standard error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from imaging.classical import Segmentation
from imaging.distributions import bootstrap_percentiles
from imaging.estimate import Estimate, field_se, in_tile, subfields
from imaging.intercept import astm_grain_number, astm_sigma, intercept_counts
from imaging.planimetric import planimetric_features
from imaging.pores import pore_features
from imaging.quality import focus_map, focus_quality

Mask = NDArray[np.bool_]

#: Feature names and units, exactly as reported.
FEATURE_UNITS: dict[str, str] = {
    "porosity": "fraction",
    "second_phase_fraction": "fraction",
    "grain_size_um": "um",
    "grain_size_ecd_um": "um",
    "astm_grain_number": "",
    "grain_size_planimetric_um": "um",
    "astm_grain_number_planimetric": "",
    "grain_size_d10_um": "um",
    "grain_size_d50_um": "um",
    "grain_size_d90_um": "um",
    "pore_count": "count",
    "pore_size_um": "um",
    "pore_size_d90_um": "um",
    "crack_count": "count",
    "crack_length_um": "um",
    "crack_density_per_mm": "1/mm",
    "focus_quality": "a.u.",
}


def fraction(mask: Mask, alt: tuple[Mask, Mask], tiles: list[tuple[slice, slice]]) -> Estimate:
    """Area fraction of ``mask`` over the whole field, σ from subfields and threshold sensitivity."""
    value = float(mask.mean())
    sampling = field_se(tiles, lambda t: float(mask[t].mean()))
    seg = 0.5 * abs(float(alt[1].mean()) - float(alt[0].mean()))
    return Estimate(value, math.hypot(sampling, seg))


def _intercept_px(boundaries: Mask, solid: Mask) -> tuple[float, int]:
    length, n = intercept_counts(boundaries, solid)
    return length / max(n, 1), n


def grain_intercept(
    seg: Segmentation, tiles: list[tuple[slice, slice]], crop: tuple[slice, slice], pixel_size_um: float
) -> Estimate:
    """Mean lineal intercept in µm over all rows and columns of ``crop`` (the image less its filter margin).

    Counting floor: intercepts on lines one ℓ̄ apart are about independent, so of N counted on every pixel
    line, N/ℓ̄ count: σ ≥ ℓ̄/√(N/ℓ̄). With no intersection, ℓ̄ is the test length and σ equals it.
    """
    boundaries, solid = seg.boundaries[crop], seg.solid[crop]
    ell, n = _intercept_px(boundaries, solid)
    counting = ell / math.sqrt(max(n / ell, 1.0))
    field = field_se(tiles, lambda t: _intercept_px(boundaries[t], solid[t])[0])
    lo = _intercept_px(seg.boundaries_alt[0][crop], solid)[0]
    hi = _intercept_px(seg.boundaries_alt[1][crop], solid)[0]
    sigma = math.hypot(max(field, counting), 0.5 * abs(hi - lo))
    return Estimate(ell * pixel_size_um, sigma * pixel_size_um)


def _ecd_px(
    labels: NDArray[np.int32], min_area_px: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(diameters, centroid rows, centroid columns) of grains that do not touch the border (they are cut) and
    are at least ``min_area_px``."""
    n = int(labels.max()) + 1
    area = np.bincount(labels.ravel(), minlength=n).astype(np.float64)
    rr, cc = np.indices(labels.shape)
    cy = np.bincount(labels.ravel(), weights=rr.ravel(), minlength=n) / np.maximum(area, 1)
    cx = np.bincount(labels.ravel(), weights=cc.ravel(), minlength=n) / np.maximum(area, 1)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    ok = area >= max(min_area_px, 1.0)
    ok[0] = False
    ok[edge] = False
    return 2.0 * np.sqrt(area[ok] / np.pi), cy[ok], cx[ok]


def grain_ecd(
    seg: Segmentation, tiles: list[tuple[slice, slice]], pixel_size_um: float, min_area_px: float
) -> Estimate:
    """Mean equivalent-circle diameter in µm of watershed grains off the border. σ: subfields (grains by
    centroid) or std/√n, whichever is larger, and half the change with the ridge thresholds moved, from the
    grain counts (a missed boundary merges two grains, so ECD is more sensitive to it than the intercept)."""
    diam, ys, xs = _ecd_px(seg.grains, min_area_px)
    if diam.size == 0:
        size = float(min(seg.grains.shape))
        return Estimate(size * pixel_size_um, size * pixel_size_um)
    value = float(diam.mean())

    def tile_mean(t: tuple[slice, slice]) -> float:
        inside = in_tile(ys, xs, t)
        return float(diam[inside].mean()) if inside.any() else math.nan

    counting = float(diam.std(ddof=1) / math.sqrt(diam.size)) if diam.size > 1 else value
    sampling = max(field_se(tiles, tile_mean), counting)
    # at a fixed solid area, mean diameter goes as 1/√(grain count)
    n, n_lo, n_hi = (max(c, 1) for c in seg.grain_counts)
    seg_sigma = 0.5 * value * abs(math.sqrt(n / n_lo) - math.sqrt(n / n_hi))
    return Estimate(value * pixel_size_um, math.hypot(sampling, seg_sigma) * pixel_size_um)


def grain_percentiles(seg: Segmentation, pixel_size_um: float, min_area_px: float) -> dict[str, Estimate]:
    """d10, d50, d90 in µm of the ECD of grains off the border (number-weighted). σ: bootstrap over grains
    (seeded) and, in quadrature, the relative change of size with the ridge thresholds, as for ``grain_ecd``."""
    diam, _, _ = _ecd_px(seg.grains, min_area_px)
    names = ("grain_size_d10_um", "grain_size_d50_um", "grain_size_d90_um")
    if diam.size == 0:
        size = float(min(seg.grains.shape)) * pixel_size_um
        return {name: Estimate(size, size) for name in names}
    n, n_lo, n_hi = (max(c, 1) for c in seg.grain_counts)
    rel = 0.5 * abs(math.sqrt(n / n_lo) - math.sqrt(n / n_hi))
    return {
        name: Estimate(e.value * pixel_size_um, math.hypot(e.sigma, rel * e.value) * pixel_size_um)
        for name, e in zip(names, bootstrap_percentiles(diam, (10, 50, 90)), strict=True)
    }


def crack_features(
    seg: Segmentation, tiles: list[tuple[slice, slice]], pixel_size_um: float, min_crack_length_um: float
) -> dict[str, Estimate]:
    """Crack count (σ Poisson, at least 1), total length in µm and density in mm per mm².

    Length σ: the larger of the subfield spread of crack length per area (scaled to the field) and the
    counting term L/√N; with no crack found, one crack of the minimum length could have been missed."""
    lengths = np.asarray(seg.crack_lengths_px, dtype=np.float64) * pixel_size_um
    count = int(lengths.size)
    total = float(lengths.sum())
    area_um2 = float(seg.cracks.size) * pixel_size_um**2
    skel = seg.crack_skeleton
    per_px = total / max(int(skel.sum()), 1)  # µm of crack per skeleton pixel

    def tile_density(t: tuple[slice, slice]) -> float:
        return float(skel[t].sum()) * per_px / (skel[t].size * pixel_size_um**2)

    field = field_se(tiles, tile_density) * area_um2
    counting = total / math.sqrt(count) if count else min_crack_length_um
    length_sigma = max(field, counting)
    area_mm2 = area_um2 * 1e-6
    return {
        "crack_count": Estimate(float(count), math.sqrt(max(count, 1))),
        "crack_length_um": Estimate(total, length_sigma),
        "crack_density_per_mm": Estimate(total * 1e-3 / area_mm2, length_sigma * 1e-3 / area_mm2),
    }


def focus_feature(seg: Segmentation, tiles: list[tuple[slice, slice]]) -> Estimate:
    """Noise-corrected Laplacian-of-Gaussian focus measure of the normalized image, σ from subfields."""
    fmap = focus_map(seg.normalized, seg.noise)
    return Estimate(focus_quality(fmap), field_se(tiles, lambda t: focus_quality(fmap[t])))


def measure(
    seg: Segmentation,
    pixel_size_um: float,
    *,
    k: int = 3,
    margin_px: int = 0,
    min_grain_area_px: float = 0.0,
    min_crack_length_um: float = 0.0,
) -> dict[str, Estimate]:
    """All features of one segmented image, keyed by ``FEATURE_UNITS`` names. ``margin_px`` is left out of the
    intercept count at each edge, where ridge filters see past the image and miss boundaries."""
    h, w = seg.solid.shape
    tiles = subfields((h, w), k)
    m = margin_px if min(h, w) > 4 * margin_px else 0
    crop = (slice(m, h - m), slice(m, w - m))
    inner_tiles = subfields((h - 2 * m, w - 2 * m), k)
    grain = grain_intercept(seg, inner_tiles, crop, pixel_size_um)
    out = {
        "porosity": fraction(seg.pores, seg.pores_alt, tiles),
        "second_phase_fraction": fraction(seg.second, seg.second_alt, tiles),
        "grain_size_um": grain,
        "grain_size_ecd_um": grain_ecd(seg, tiles, pixel_size_um, min_grain_area_px),
        "astm_grain_number": Estimate(astm_grain_number(grain.value), astm_sigma(grain.value, grain.sigma)),
        **planimetric_features(seg.grains, seg.grain_counts, tiles, pixel_size_um),
        **grain_percentiles(seg, pixel_size_um, min_grain_area_px),
        **pore_features(seg.pores, seg.pores_alt, tiles, pixel_size_um),
        **crack_features(seg, tiles, pixel_size_um, min_crack_length_um),
        "focus_quality": focus_feature(seg, tiles),
    }
    return out


def pool(estimates: Sequence[Estimate]) -> Estimate:
    """Mean of per-image estimates of one sample with a random-effects standard error: each image's value
    varies by its own σᵢ and by real image-to-image spread, so σ² = max(mean σᵢ², s²)/n, with s² the sample
    variance of the values (the between-image spread, which already contains the within-image noise)."""
    values = np.asarray([e.value for e in estimates], dtype=np.float64)
    sigmas = np.asarray([e.sigma for e in estimates], dtype=np.float64)
    n = values.size
    if n == 0:
        raise ValueError("nothing to pool")
    within = float(np.mean(sigmas**2))
    between = float(values.var(ddof=1)) if n > 1 else 0.0
    return Estimate(float(values.mean()), math.sqrt(max(within, between) / n))
