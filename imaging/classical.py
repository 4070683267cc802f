"""Classical segmentation of SEM/optical micrographs of metals and ceramics into pores, matrix, second phase,
grain boundaries, grains and cracks, with scikit-image: no learned parameters, nothing tuned to one generator.

1. Normalize (percentile stretch), estimate the noise, reject blank frames, optionally flatten shading, denoise.
2. Phases from the histogram (``imaging.phases``): thresholds kept only where the histogram has a real valley.
3. Pores are dark blobs: the dark class opened with a disk wider than ``max_line_width_px`` (dark boundaries
   and cracks go), kept where a disk one pixel larger still fits (junctions of dark lines go too), and given
   back the outline pixels the opening shaved off. Smaller pores count too when they are darker than the grain
   boundary grooves (halfway from the pore level to the median groove) and a disk of radius 2 px fits in them.
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
from imaging.phases import Phases, class_mask, classify_phases, is_edge_class
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


def _groove_level(light: NDArray[np.float32], grooves: Mask) -> float | None:
    """Median intensity of the grain boundary grooves; None when too few are visible to say."""
    return float(np.median(light[grooves])) if grooves.sum() >= MIN_GROOVE_PX else None


def segment(pixels: NDArray[np.floating], params: SegmentParams, name: str = "image") -> Segmentation:
    """Segments one micrograph (2-D float in [0, 1]); raises ``ImagingError`` for an unusable frame."""
    normalized = PercentileStretch().transform(pixels)
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
    region0 = ~ndi.binary_dilation(coarse, structure=disk(PORE_MARGIN_PX))
    low, high = hysteresis_levels(significance, region0)
    _, skeleton0 = boundary_masks(significance, low, high, region0, min_boundary_px)
    length0, n0 = intercept_counts(skeleton0, ~coarse, margin=margin)
    intercept0 = length0 / max(n0, 1)
    light = ndi.gaussian_filter(normalized, CRACK_SMOOTHING_PX)
    groove_level = _groove_level(light, skeleton0)
    noise_light = noise / (2.0 * np.sqrt(np.pi) * CRACK_SMOOTHING_PX)
    # Void is darker than grooves: pores below halfway from the pore level to the grooves, crack centres
    # CRACK_NOISE_MARGIN noise σ below the grooves. Without a pore class (pores too few for the histogram), the
    # pore level is taken as the bottom of the stretch, 0, where void pixels end up.
    pore_level = phases.levels[phases.pore_class] if phases.pore_class is not None else 0.0
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
        if void_level is not None
        else np.zeros_like(dark)
    )
    pores = coarse | (fine & ~coarse)
    pores_alt = (
        blobs(class_mask(smoothed, phases, phases.pore_class, -1.0), open_radius, min_area, core_radius, True) | fine,
        blobs(class_mask(smoothed, phases, phases.pore_class, 1.0), open_radius, min_area, core_radius, True) | fine,
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
