"""Classical segmentation of SEM/optical micrographs of metals and ceramics into pores, matrix, second phase,
grain boundaries, grains and cracks, with scikit-image: no learned parameters, nothing tuned to one generator.

1. Normalize (percentile stretch), estimate the noise, reject blank frames, optionally flatten shading, denoise.
2. Phases from the histogram (``imaging.phases``): thresholds kept only where the histogram has a real valley.
3. Pores are dark blobs: the dark class opened with a disk wider than ``max_line_width_px`` (dark boundaries
   and cracks go), kept where a disk one pixel larger still fits (junctions of dark lines go too), and given
   back the outline pixels the opening shaved off. Smaller pores count too when they are darker than the grain
   boundary grooves (halfway from the pore level to the median groove) and a disk of radius 2 px fits in them,
   or they are ringed by the bright SE edge rim of a pore (then grown to their blurred edge's 50 % point).
   Channelling contrast makes whole grains lighter or darker, and in a clean image the darkest grains can form
   the dark class: a blob is void only if its core lies ``VOID_GRAIN_Z`` σ of the per-grain levels (a plane over
   the field, for shading) below the typical grain and below the grooves. When no blob of the dark class is
   void, the class is merged into the matrix.
4. Grain boundaries are dark ridges significant against the local noise (``imaging.ridges``), away from pores,
   cracks and second-phase particles much smaller than a grain (precipitates: their outlines, and the matrix
   between close particles, look like dark lines but are not grain boundaries).
5. Cracks are long, slender, loop-free dark features whose median is clearly darker than the grooves
   (``imaging.cracks``).
6. Boundary pixels and the blurred ramps beside boundaries and pores (SE edge halos too) belong to no phase:
   each takes the phase of the nearest pixel outside them, which splits an interface at its midline.
7. Grains are grown by watershed over the distance to boundaries, from one seed per grain core.

Every fraction also comes with the same mask at thresholds moved down and up (``*_alt``), for its σ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi
from skimage import measure, morphology, segmentation

from imaging.cracks import find_cracks
from imaging.intercept import intercept_counts
from imaging.normalize import PercentileStretch
from imaging.phases import Phases, class_mask, classify_phases, is_edge_class, without_pore_class
from imaging.quality import check_usable, noise_map, noise_sigma
from imaging.ridges import BoundaryMethod, boundary_masks, disk, hysteresis_levels, remove_small, ridge_significance

Denoise = Literal["gaussian", "median", "nl_means"]
Mask = NDArray[np.bool_]

RIDGE_SENSITIVITY = 1.25  # for σ of grain size, ridge thresholds are scaled by ÷/× this
RAMP_PX = 0.5  # plus the smoothing σ: half-width of the band beside boundaries and pores that takes the nearest phase
GAP_PX = 2.0  # boundary gaps up to twice this are closed when seeding grains
PORE_MARGIN_PX = 2.0  # ridges this close to a pore are its edge, not a grain boundary
CRACK_GRAINS = 1.5  # by default a crack is at least this many mean intercepts long (one facet is about one)
CRACK_NOISE_MARGIN = 4.0  # crack centres are this many noise σ darker than the median groove
CRACK_SMOOTHING_PX = 0.7  # cracks are judged lightly smoothed: more would lift them out of the dark class
FINE_PORE_RADIUS_PX = 2.0  # void darker than grooves is a pore if a disk this large fits in it
VOID_GRAIN_Z = 5.0  # a dark blob is void only if its level is this many grain-level σ below the typical grain
RIM_PX = 3.0  # width of the ring outside a small dark blob where a pore's bright SE edge rim is looked for
MIN_PORE_PX = 4  # a dark blob smaller than 2×2 px is not resolved
PLANE_MIN_GRAINS = 30  # grains needed to fit a plane (slow shading) to the grain levels
MIN_LEVEL_GRAINS = 5  # grain cores needed to judge dark blobs against the spread of grain levels
MIN_GROOVE_PX = 50  # boundary pixels needed to measure the groove level
MIN_PARTICLE_PX = 7.0  # smallest second-phase particle (a disk of radius 1.5 px)
PARTICLE_GRAIN_AREA = 0.25  # particles smaller than this × ℓ̄² are precipitates, not grains
PARTICLE_MARGIN_PX = 2.0  # ridges this close to a precipitate are its outline


@dataclass(frozen=True)
class SegmentParams:
    """Knobs of ``segment``; lengths in pixels here (the pipeline converts from µm)."""

    min_pore_area_px: float = 0.0
    max_line_width_px: float = 5.0
    boundary_method: BoundaryMethod = "hessian"
    ridge_sigmas_px: tuple[float, ...] = (1.0, 2.0, 3.0)
    denoise: Denoise = "gaussian"
    smoothing_px: float = 1.0
    flatten_background: bool = False
    min_crack_length_px: float | None = None  # None: CRACK_GRAINS mean lineal intercepts, at least 20 px
    min_crack_aspect: float = 5.0


@dataclass(frozen=True)
class Segmentation:
    """Masks of one micrograph. ``*_alt`` hold the same mask with thresholds moved down and up (for σ)."""

    normalized: NDArray[np.float32]  # percentile-stretched input (flattened if asked)
    image: NDArray[np.float32]  # normalized, denoised
    noise: float  # noise σ of the normalized image
    phases: Phases
    pores: Mask
    second: Mask
    solid: Mask  # neither pore nor crack
    boundaries: Mask  # 1-px grain boundary skeleton inside the solid
    grains: NDArray[np.int32]  # watershed grain labels, 0 outside the solid
    cracks: NDArray[np.int32]  # crack labels
    crack_skeleton: Mask
    crack_lengths_px: tuple[float, ...]
    min_crack_length_px: float  # the length a dark line needed to count as a crack here
    pores_alt: tuple[Mask, Mask]
    second_alt: tuple[Mask, Mask]
    boundaries_alt: tuple[Mask, Mask]
    grain_counts: tuple[int, int, int]  # grain seeds with ridge thresholds as used, lowered, raised


def denoise(image: NDArray[np.float32], method: Denoise, sigma_px: float, noise: float) -> NDArray[np.float32]:
    """Light denoising that keeps blob areas unbiased: Gaussian, median, or fast non-local means."""
    if method == "median":
        return ndi.median_filter(image, size=max(3, int(2 * round(sigma_px) + 1))).astype(np.float32)
    if method == "nl_means":
        from skimage.restoration import denoise_nl_means

        out = denoise_nl_means(image, patch_size=5, patch_distance=5, h=0.8 * max(noise, 1e-3), fast_mode=True)
        return np.asarray(out, dtype=np.float32)
    return ndi.gaussian_filter(image, sigma_px).astype(np.float32)


def flatten(image: NDArray[np.float32]) -> NDArray[np.float32]:
    """Removes slow shading: subtracts a background taken as the median over windows a third of the image wide
    (minor phases do not pull a median), smoothed, and restores the global median level."""
    h, w = image.shape
    step = max(1, max(h, w) // 128)
    small = image[::step, ::step]
    win = max(3, min(small.shape) // 3)
    bg = ndi.gaussian_filter(ndi.median_filter(small, size=win, mode="reflect"), win / 4)
    background = ndi.zoom(bg, (h / bg.shape[0], w / bg.shape[1]), order=1)[:h, :w]
    return np.clip(image - background + np.median(image), 0, 1).astype(np.float32)


def fill_small_holes(mask: Mask, max_size: int) -> Mask:
    """``mask`` with background components of ``max_size`` pixels or fewer filled."""
    return mask | ~remove_small(~mask, max_size) if max_size > 0 else mask


def blobs(mask: Mask, open_radius: float, min_area_px: float, core_radius: float = 0.0, restore: bool = False) -> Mask:
    """Compact objects of ``mask``: opened with a disk (lines narrower than it go), kept only where a disk of
    ``core_radius`` fits (junctions of lines, a little wider than lines, go too), with ``restore`` given back
    the pixels of ``mask`` the opening shaved off within ``open_radius`` + 1 of them (irregular outlines, necks),
    small ones removed, small holes filled."""
    opened = ndi.binary_opening(mask, structure=disk(open_radius)) if open_radius > 0 else mask
    if core_radius > open_radius and opened.any():
        cores = ndi.binary_erosion(opened, structure=disk(core_radius))
        labels, _ = ndi.label(opened)
        keep = np.zeros(labels.max() + 1, dtype=bool)
        keep[np.unique(labels[cores])] = True
        keep[0] = False
        opened = keep[labels]
    if restore and open_radius > 0:
        opened = opened | (mask & within(opened, open_radius + 1.0))
    area = max(int(min_area_px), 1)
    return fill_small_holes(remove_small(opened, area), area)


def within(mask: Mask, distance_px: float) -> Mask:
    """Pixels no further than ``distance_px`` (Euclidean) from ``mask``."""
    if not mask.any():
        return mask.copy()
    return ndi.distance_transform_edt(~mask) <= distance_px


def assign_nearest(phase: NDArray[np.int8], unknown: Mask) -> NDArray[np.int8]:
    """``phase`` with each ``unknown`` pixel given the value of the nearest known pixel."""
    if not unknown.any() or unknown.all():
        return phase
    _, (ri, ci) = ndi.distance_transform_edt(unknown, return_indices=True)
    return phase[ri, ci]


def grain_seeds(solid: Mask, skeleton: Mask, min_area_px: float, gap_px: float = GAP_PX) -> NDArray[np.int32]:
    """One label per grain core: the solid less boundaries and voids widened by ``gap_px`` (which closes
    boundary gaps up to twice that), cores of ``min_area_px`` or fewer dropped."""
    walls = ndi.binary_dilation(skeleton | ~solid, structure=disk(gap_px))
    return measure.label(remove_small(~walls, int(min_area_px)), connectivity=1).astype(np.int32)


def grains_watershed(solid: Mask, skeleton: Mask, min_area_px: float) -> NDArray[np.int32]:
    """Grain labels inside ``solid``: the ``grain_seeds`` grown by watershed over the distance to boundaries."""
    distance = ndi.distance_transform_edt(solid & ~skeleton)
    markers = grain_seeds(solid, skeleton, min_area_px)
    return segmentation.watershed(-distance, markers, mask=solid).astype(np.int32)


@dataclass(frozen=True)
class GrainLevels:
    """The grain levels (channelling contrast makes whole grains lighter or darker) as a plane over the field
    (slow shading) with a robust σ about it, at least the noise: ``coef`` (a, b, c) of a + b·row + c·column."""

    coef: tuple[float, float, float]
    spread: float
    typical: float  # the median grain level
    black: float = 0.0  # where zero signal (a void's) lies on the scale of the levels
    groove: float | None = None  # median level of the grain boundary grooves, when enough are seen

    @property
    def discriminates(self) -> bool:
        """Whether zero signal lies ``VOID_GRAIN_Z`` σ below the typical grain; if not, the grain levels are too
        spread (or the 'grains' partly void) to tell a dark grain from a pore."""
        return self.typical - self.black > VOID_GRAIN_Z * self.spread

    def local(self, points: NDArray[np.float64]) -> NDArray[np.float64]:
        """The typical grain level at each of ``points`` (m, 2) (row, column)."""
        a, b, c = self.coef
        return np.asarray(a + b * points[:, 0] + c * points[:, 1], dtype=np.float64)


def grain_level_stats(
    light: NDArray[np.float32],
    solid: Mask,
    skeleton: Mask,
    min_area_px: float,
    noise: float,
    candidates: Mask | None = None,
    black: float = 0.0,
    groove: float | None = None,
) -> GrainLevels | None:
    """``GrainLevels`` of the mean levels of the grain cores of ``solid`` cut by ``skeleton`` (``grain_seeds``)
    and of the components of ``candidates``: dark blobs being judged count too, since leaving out what may be the
    darkest grains would make the spread too small. With at least ``PLANE_MIN_GRAINS`` of them the typical level
    is a plane (slow shading), fitted by least squares to those within 3 robust σ of a first fit (much darker or
    lighter ones, pores among them, do not tilt it); σ is the robust σ (1.4826 × MAD) about it. ``black`` (where
    zero signal lies on the scale of ``light``) and ``groove`` (the groove level) are kept with them. None with
    fewer than ``MIN_LEVEL_GRAINS`` grain cores."""
    cores = grain_seeds(solid, skeleton, min_area_px)
    n = int(cores.max())
    if n < MIN_LEVEL_GRAINS:
        return None
    if candidates is not None and candidates.any():
        extra, m = ndi.label(candidates & ~(cores > 0), structure=np.ones((3, 3), bool))
        cores = np.where(extra > 0, extra + n, cores).astype(np.int32)
        n += m
    levels = label_means(light, cores, n)
    design = np.column_stack([np.ones(n), label_centroids(cores, n)])
    coef = np.array([float(np.median(levels)), 0.0, 0.0])
    residual = levels - coef[0]
    if n >= PLANE_MIN_GRAINS:
        use = np.abs(residual) <= 3.0 * _mad_sigma(residual)
        if use.sum() >= PLANE_MIN_GRAINS:
            coef = np.linalg.lstsq(design[use], levels[use], rcond=None)[0]
            residual = levels - design @ coef
    spread = max(_mad_sigma(residual), noise)
    typical = float(np.median(levels))
    return GrainLevels((float(coef[0]), float(coef[1]), float(coef[2])), spread, typical, black, groove)


def _mad_sigma(values: NDArray[np.float64]) -> float:
    """Robust σ: 1.4826 × the median absolute deviation from the median."""
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def label_means(values: NDArray[np.float32], labels: NDArray[np.int32], n: int) -> NDArray[np.float64]:
    """Mean of ``values`` over each of the labels 1..n (NaN for an empty one), without empty-label warnings."""
    flat = labels.ravel()
    sums = np.bincount(flat, weights=values.ravel().astype(np.float64), minlength=n + 1)[1:]
    counts = np.bincount(flat, minlength=n + 1)[1:]
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def label_centroids(labels: NDArray[np.int32], n: int) -> NDArray[np.float64]:
    """(n, 2) centroids (row, column) of the labels 1..n."""
    rr, cc = np.indices(labels.shape)
    flat = labels.ravel()
    counts = np.maximum(np.bincount(flat, minlength=n + 1)[1:], 1)
    rows = np.bincount(flat, weights=rr.ravel().astype(np.float64), minlength=n + 1)[1:] / counts
    cols = np.bincount(flat, weights=cc.ravel().astype(np.float64), minlength=n + 1)[1:] / counts
    return np.stack([rows, cols], axis=1)


def void_blobs(mask: Mask, light: NDArray[np.float32], grains: GrainLevels | None) -> Mask:
    """The components of ``mask`` that are void, not whole dark grains: the median level of a component's inner
    part (1 px in from its outline: a blurred pore edge is lighter than its core) lies more than
    ``VOID_GRAIN_Z`` σ (``grains.spread``) below the typical grain level there, and below the grooves (void is
    darker than grain boundary grooves). A grain that dark would be an extreme outlier of the grain levels; a
    pore is far darker than any grain. Everything is kept when the grain levels are unknown or cannot tell
    (``GrainLevels.discriminates``)."""
    if grains is None or not grains.discriminates or not mask.any():
        return mask
    labels, n = ndi.label(mask, structure=np.ones((3, 3), bool))
    idx = np.arange(1, n + 1)
    inner = np.where(ndi.binary_erosion(mask, structure=disk(1.0)), labels, 0)
    levels = np.asarray(ndi.median(light, labels, idx), dtype=np.float64)
    has_inner = np.bincount(inner.ravel(), minlength=n + 1)[1:] > 0
    if has_inner.any():
        levels[has_inner] = np.asarray(ndi.median(light, inner, idx[has_inner]), dtype=np.float64)
    around = grains.local(label_centroids(labels, n))
    void = levels < around - VOID_GRAIN_Z * grains.spread
    if grains.groove is not None:
        void &= levels < grains.groove
    keep = np.concatenate([[False], void])
    return keep[labels]


def rimmed_blobs(mask: Mask, light: NDArray[np.float32], grains: GrainLevels | None) -> Mask:
    """Components of ``mask`` (at least ``MIN_PORE_PX``) ringed by a bright rim: the mean level within
    ``RIM_PX`` outside them is above the typical grain level there. The SE edge effect brightens
    the rim of a pore, so pores too small for a disk of ``FINE_PORE_RADIUS_PX`` still count; junctions of
    grooves, ringed by grooves and grain, do not. Each is grown to the 50 % point between its median and its
    rim level (its blurred edge), which keeps its area unbiased."""
    if grains is None or not mask.any():
        return np.zeros_like(mask)
    labels, n = ndi.label(mask, structure=np.ones((3, 3), bool))
    area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    grown = segmentation.expand_labels(labels, RIM_PX)
    rim = label_means(light, np.where(labels == 0, grown, 0), n)
    core = np.asarray(ndi.median(light, labels, np.arange(1, n + 1)), dtype=np.float64)
    around = grains.local(label_centroids(labels, n))
    keep = np.concatenate([[False], (np.nan_to_num(rim, nan=-np.inf) > around) & (area >= MIN_PORE_PX)])
    edge = np.concatenate([[-np.inf], 0.5 * (core + np.nan_to_num(rim, nan=0.0))])
    return keep[labels] | (keep[grown] & (light < edge[grown]))


def _groove_level(light: NDArray[np.float32], grooves: Mask) -> float | None:
    """Median intensity of the grain boundary grooves; None when too few are visible to say."""
    return float(np.median(light[grooves])) if grooves.sum() >= MIN_GROOVE_PX else None


def segment(pixels: NDArray[np.floating], params: SegmentParams, name: str = "image") -> Segmentation:
    """Segments one micrograph (2-D float in [0, 1]); raises ``ImagingError`` for an unusable frame."""
    stretch = PercentileStretch()
    normalized = stretch.transform(pixels)
    low, high = stretch.bounds(np.asarray(pixels))
    black = -low / (high - low) if high > low else 0.0  # zero signal on the normalized scale (≤ 0)
    noise = noise_sigma(normalized)
    check_usable(np.asarray(pixels), normalized, noise, name)
    if params.flatten_background:
        normalized = flatten(normalized)
    smoothed = denoise(normalized, params.denoise, params.smoothing_px, noise)
    noise_smoothed = noise / (2.0 * np.sqrt(np.pi) * max(params.smoothing_px, 0.5))
    open_radius = params.max_line_width_px / 2.0 + 0.5
    core_radius = open_radius + 1.0
    min_area = max(params.min_pore_area_px, np.pi * open_radius**2)
    min_boundary_px = 2 * params.max_line_width_px

    # Thin dark lines (a black top-hat well above noise) are left out of the phase histogram, so that boundaries
    # do not fill the pore/matrix valley.
    lines = morphology.black_tophat(smoothed, disk(open_radius)) > 4.0 * noise_smoothed + 0.02
    phases = classify_phases(smoothed, lines, noise_smoothed)
    if len(phases.thresholds) == 2 and is_edge_class(class_mask(smoothed, phases, 1)):
        phases = classify_phases(smoothed, lines, noise_smoothed, max_classes=2)

    dark = class_mask(smoothed, phases, phases.pore_class)
    coarse = blobs(dark, open_radius, min_area, core_radius, restore=True)
    significance = ridge_significance(normalized, params.boundary_method, params.ridge_sigmas_px, noise_map(normalized))
    margin = int(2 * max(params.ridge_sigmas_px) + 1)

    # Preliminary boundaries give the grain scale (how long a crack must be, how small a particle is) and the
    # groove level: what is darker than the grooves is void even if small or thin.
    light = ndi.gaussian_filter(normalized, CRACK_SMOOTHING_PX)
    noise_light = noise / (2.0 * np.sqrt(np.pi) * CRACK_SMOOTHING_PX)

    def preliminary_skeleton(voids: Mask) -> Mask:
        region0 = ~ndi.binary_dilation(voids, structure=disk(PORE_MARGIN_PX))
        low0, high0 = hysteresis_levels(significance, region0)
        return boundary_masks(significance, low0, high0, region0, min_boundary_px)[1]

    # Channelling contrast makes some whole grains dark enough for the dark class: a blob is void only if it is
    # far darker than the grains are among themselves. When no blob of the dark class is void, it is no pore
    # class: it merges into the matrix.
    # Candidates as large as grains (PARTICLE_GRAIN_AREA·ℓ̄², as for precipitates) join the grain levels: they may
    # be the darkest grains, and leaving them out would make the spread too small.
    skeleton0 = preliminary_skeleton(coarse)
    length0, n0 = intercept_counts(skeleton0, ~coarse, margin=margin)
    grain_sized = remove_small(coarse, int(PARTICLE_GRAIN_AREA * (length0 / max(n0, 1)) ** 2))
    grain_levels = grain_level_stats(
        light,
        ~coarse,
        skeleton0,
        min_area,
        noise_light,
        candidates=grain_sized,
        black=black,
        groove=_groove_level(light, skeleton0),
    )
    voids = void_blobs(coarse, light, grain_levels)
    filtered = not np.array_equal(voids, coarse)
    if filtered:
        if phases.pore_class is not None and not voids.any():
            phases = without_pore_class(phases)
            dark = np.zeros_like(dark)
        coarse = voids
        skeleton0 = preliminary_skeleton(coarse)
    length0, n0 = intercept_counts(skeleton0, ~coarse, margin=margin)
    intercept0 = length0 / max(n0, 1)
    groove_level = _groove_level(light, skeleton0)
    # Void is darker than grooves: pores below halfway from the pore level to the grooves, crack centres
    # CRACK_NOISE_MARGIN noise σ below the grooves. Without a pore class (pores too few for the histogram), the
    # pore level is taken as the bottom of the stretch, 0, where void pixels end up.
    pore_level = phases.levels[phases.pore_class] if phases.pore_class is not None else 0.0
    if filtered and coarse.any():  # the class peak may be the dark grains'; the void level is the voids' own
        pore_level = min(pore_level, float(np.median(light[coarse])))
    void_level = (
        0.5 * (pore_level + groove_level)
        if groove_level is not None and groove_level - pore_level > 4.0 * noise_light
        else None
    )
    crack_level = (
        groove_level - CRACK_NOISE_MARGIN * noise_light if void_level is not None and groove_level is not None else None
    )
    if phases.pore_class is not None:
        dark_light = class_mask(light, phases, phases.pore_class)
    else:
        dark_light = light < void_level if void_level is not None else np.zeros_like(dark)
    fine = (
        blobs((light < void_level) & dark_light, FINE_PORE_RADIUS_PX, np.pi * FINE_PORE_RADIUS_PX**2)
        | rimmed_blobs((light < void_level) & dark_light, light, grain_levels)
        if void_level is not None
        else np.zeros_like(dark)
    )
    pores = void_blobs(coarse | fine, light, grain_levels)
    pores_alt = (
        void_blobs(
            blobs(class_mask(smoothed, phases, phases.pore_class, -1.0), open_radius, min_area, core_radius, True)
            | fine,
            light,
            grain_levels,
        ),
        void_blobs(
            blobs(class_mask(smoothed, phases, phases.pore_class, 1.0), open_radius, min_area, core_radius, True)
            | fine,
            light,
            grain_levels,
        ),
    )
    near_pores = ndi.binary_dilation(pores, structure=disk(open_radius + 1))

    min_crack = params.min_crack_length_px or max(20.0, CRACK_GRAINS * intercept0)
    thin = dark_light & ~near_pores
    bridges = ndi.binary_dilation(pores, structure=disk(open_radius + 3))
    cracks, crack_skeleton, crack_lengths = find_cracks(
        thin,
        bridges,
        min_crack,
        params.min_crack_aspect,
        gap_px=params.max_line_width_px / 2 + 0.5,
        intensity=light,
        max_core_level=crack_level,
    )
    crack_mask = cracks > 0
    solid = ~pores & ~crack_mask

    # Second-phase particles much smaller than grains are precipitates: their outlines (and the matrix between
    # close particles, which looks like a dark line) are not grain boundaries.
    second_raw = class_mask(smoothed, phases, phases.second_class)
    second = blobs(second_raw, 1.0, max(MIN_PARTICLE_PX, params.min_pore_area_px)) & ~pores
    particles = remove_small(second, int(PARTICLE_GRAIN_AREA * intercept0**2)) ^ second
    region = ~ndi.binary_dilation(pores, structure=disk(PORE_MARGIN_PX))
    region &= ~ndi.binary_dilation(crack_mask, structure=disk(2))
    region &= ~within(particles, PARTICLE_MARGIN_PX)
    low, high = hysteresis_levels(significance, region)
    thick, skeleton = boundary_masks(significance, low, high, region, min_boundary_px)
    boundaries_alt = (
        boundary_masks(significance, low / RIDGE_SENSITIVITY, high / RIDGE_SENSITIVITY, region, min_boundary_px)[1],
        boundary_masks(significance, low * RIDGE_SENSITIVITY, high * RIDGE_SENSITIVITY, region, min_boundary_px)[1],
    )

    # Phase map. The blurred ramps beside boundaries and pore edges (SE edge halos too) pass through other
    # classes, and boundary pixels are no phase: all take the phase of the nearest pixel outside them.
    phase = np.ones(smoothed.shape, dtype=np.int8)
    phase[second] = 2
    phase[pores] = 0
    ramp = RAMP_PX + params.smoothing_px
    unknown = (within(thick, ramp) | within(pores, ramp + 1.0) | (dark & ~pores) | (second_raw & ~second)) & ~pores
    second = assign_nearest(phase, unknown) == 2
    min_particle = max(MIN_PARTICLE_PX, params.min_pore_area_px)
    second_alt = (
        blobs(class_mask(smoothed, phases, phases.second_class, -1.0), 1.0, min_particle) & ~pores,
        blobs(class_mask(smoothed, phases, phases.second_class, 1.0), 1.0, min_particle) & ~pores,
    )

    return Segmentation(
        normalized=normalized,
        image=smoothed,
        noise=noise,
        phases=phases,
        pores=pores,
        second=second,
        solid=solid,
        boundaries=skeleton,
        grains=grains_watershed(solid, skeleton, min_area),
        cracks=cracks,
        crack_skeleton=crack_skeleton,
        crack_lengths_px=tuple(crack_lengths),
        min_crack_length_px=float(min_crack),
        pores_alt=pores_alt,
        second_alt=second_alt,
        boundaries_alt=boundaries_alt,
        grain_counts=(
            int(grain_seeds(solid, skeleton, min_area).max()),
            int(grain_seeds(solid, boundaries_alt[0], min_area).max()),
            int(grain_seeds(solid, boundaries_alt[1], min_area).max()),
        ),
    )
