"""Accuracy of the classical segmentation and quantification on synthetic micrographs with known truth."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from imaging.base import ImagingError
from imaging.classical import GrainLevels, SegmentParams, segment, void_blobs
from imaging.io import LoadedImage
from imaging.pipeline import ClassicalPipeline
from imaging.quantify import Estimate
from instruments.sim.dataset import ARTIFACT_PRESETS
from instruments.sim.render import Microstructure, render_masks
from instruments.sim.sem import apply_artifacts, structure_image
from tests.imaging.conftest import measure
from tests.imaging.synth import Micrograph, make_micrograph


def check_accuracy(f: dict[str, Estimate], m: Micrograph, *, grain_tol: float = 0.15) -> None:
    assert f["porosity"].value == pytest.approx(m.porosity, abs=0.01)
    assert f["second_phase_fraction"].value == pytest.approx(m.second_phase_fraction, abs=0.02)
    assert f["grain_size_um"].value == pytest.approx(m.intercept_um, rel=grain_tol)
    assert f["grain_size_ecd_um"].value == pytest.approx(m.ecd_um, rel=0.2)


def test_sharp_micrograph_gives_the_known_structure(sharp: Micrograph, sharp_features: dict[str, Estimate]) -> None:
    check_accuracy(sharp_features, sharp, grain_tol=0.1)
    assert sharp_features["crack_count"].value == len(sharp.crack_lengths_px) == 2
    assert sharp_features["crack_length_um"].value == pytest.approx(sharp.crack_length_um, rel=0.25)
    area_mm2 = sharp.image.size * (sharp.pixel_size_um * 1e-3) ** 2
    assert sharp_features["crack_density_per_mm"].value == pytest.approx(
        sharp_features["crack_length_um"].value * 1e-3 / area_mm2
    )


@pytest.mark.parametrize("seed", [3, 6])
def test_other_structures_at_moderate_noise(pipeline: ClassicalPipeline, seed: int) -> None:
    m = make_micrograph(seed=seed, noise=0.05)
    f = measure(pipeline, m)
    check_accuracy(f, m)
    assert f["crack_count"].value == 2


def test_truth_lies_within_a_few_sigma(
    sharp: Micrograph, sharp_features: dict[str, Estimate], noisy: Micrograph, noisy_features: dict[str, Estimate]
) -> None:
    for m, f in ((sharp, sharp_features), (noisy, noisy_features)):
        for name, truth in (
            ("porosity", m.porosity),
            ("second_phase_fraction", m.second_phase_fraction),
            ("grain_size_um", m.intercept_um),
        ):
            assert abs(f[name].value - truth) < 3 * f[name].sigma, name


def test_sigma_is_larger_on_a_noisy_blurred_image(
    sharp_features: dict[str, Estimate], noisy_features: dict[str, Estimate]
) -> None:
    for name in ("porosity", "grain_size_um", "grain_size_ecd_um", "astm_grain_number"):
        assert noisy_features[name].sigma > sharp_features[name].sigma, name
    assert noisy_features["grain_size_um"].sigma > 2 * sharp_features["grain_size_um"].sigma
    assert noisy_features["focus_quality"].value < 0.5 * sharp_features["focus_quality"].value


def test_focus_quality_falls_with_blur_not_with_noise(pipeline: ClassicalPipeline) -> None:
    base: dict[str, Any] = {"seed": 4, "size": 256, "n_grains": 30}
    sharp = measure(pipeline, make_micrograph(noise=0.02, blur_px=0.5, **base))["focus_quality"].value
    grainy = measure(pipeline, make_micrograph(noise=0.08, blur_px=0.5, **base))["focus_quality"].value
    soft = measure(pipeline, make_micrograph(noise=0.02, blur_px=2.5, **base))["focus_quality"].value
    assert soft < 0.5 * sharp
    assert grainy == pytest.approx(sharp, rel=0.35)


def test_dense_single_phase_reports_no_pores_second_phase_or_cracks(pipeline: ClassicalPipeline) -> None:
    m = make_micrograph(seed=2, porosity=0.0, second_fraction=0.0, n_cracks=0, noise=0.04)
    f = measure(pipeline, m)
    assert f["porosity"].value < 0.003
    assert f["second_phase_fraction"].value < 0.005
    assert f["crack_count"].value == 0 and f["crack_length_um"].value == 0
    assert f["crack_length_um"].sigma > 0  # a crack could have been missed
    assert f["grain_size_um"].value == pytest.approx(m.intercept_um, rel=0.15)


def test_shading_does_not_break_phase_fractions(pipeline: ClassicalPipeline) -> None:
    m = make_micrograph(seed=7, shading=0.4)
    f = measure(pipeline, m)
    assert f["porosity"].value == pytest.approx(m.porosity, abs=0.01)
    assert f["second_phase_fraction"].value == pytest.approx(m.second_phase_fraction, abs=0.02)


def test_grain_size_scales_with_pixel_size_and_not_with_magnification(pipeline: ClassicalPipeline) -> None:
    base: dict[str, Any] = {"seed": 5, "n_grains": 30, "n_cracks": 0, "noise": 0.02}
    m = make_micrograph(size=256, **base)
    coarse = pipeline.measure(LoadedImage(m.image, 0.2, "caller", {}))
    doubled = pipeline.measure(LoadedImage(m.image, 0.4, "caller", {}))
    assert doubled["grain_size_um"].value == pytest.approx(2 * coarse["grain_size_um"].value)
    assert doubled["porosity"].value == coarse["porosity"].value
    # the same field at twice the magnification: every length doubles in pixels, noise stays per pixel
    zoomed = make_micrograph(size=512, boundary_width_px=5.0, pore_radius_px=(8.0, 22.0), blur_px=1.6, **base)
    fine = pipeline.measure(LoadedImage(zoomed.image, 0.1, "caller", {}))
    assert zoomed.intercept_um * 0.1 / 0.1 == pytest.approx(m.intercept_um * 0.2 / 0.1, rel=0.02)  # same field
    assert fine["grain_size_um"].value == pytest.approx(coarse["grain_size_um"].value, rel=0.15)
    assert fine["porosity"].value == pytest.approx(coarse["porosity"].value, abs=0.01)


def test_blank_and_structureless_frames_raise_imaging_error() -> None:
    with pytest.raises(ImagingError, match="blank"):
        segment(np.full((128, 128), 0.3, dtype=np.float32), SegmentParams(), name="frame7.tif")
    noise = np.random.default_rng(0).normal(0.5, 0.1, (128, 128)).astype(np.float32)
    with pytest.raises(ImagingError, match="no structure above noise"):
        segment(np.clip(noise, 0, 1), SegmentParams())
    with pytest.raises(ImagingError, match="too small"):
        segment(np.clip(noise[:20, :20], 0, 1), SegmentParams())


def clean_render(seed: int, porosity: float, grain_size_um: float = 25.0) -> tuple[LoadedImage, float]:
    """A 256² simulated SEM field with no artifacts (no noise, blur, drift, jitter or charging): few large grains
    whose grey levels differ (channelling contrast; the darkest fall into the dark histogram class) and pores of
    radius 2 µm at 0.5 µm/px; and its true porosity."""
    rng = np.random.default_rng(seed)
    ms = Microstructure(grain_size_um=grain_size_um, porosity=porosity, pore_radius_um=2.0)
    masks = render_masks(ms, (256, 256), 0.5, rng)
    image = apply_artifacts(structure_image(masks, rng), ARTIFACT_PRESETS["none"], rng, out_of_focus=False, bits=16)
    return LoadedImage(image.astype(np.float32) / 65535.0, 0.5, "caller", {}), float(masks.pore.mean())


@pytest.mark.parametrize("seed", [0, 6, 9])
def test_clean_render_counts_pores_not_dark_grains(pipeline: ClassicalPipeline, seed: int) -> None:
    loaded, truth = clean_render(seed, porosity=0.01)
    f = pipeline.measure(loaded)
    # before dark grains were told from pores, these fields measured 25 %, 46 % and 28 %
    assert f["porosity"].value == pytest.approx(truth, abs=0.005)


@pytest.mark.parametrize(("seed", "grain_size_um"), [(1, 25.0), (5, 25.0), (1, 15.0), (3, 15.0)])
def test_clean_render_without_pores_has_no_porosity(
    pipeline: ClassicalPipeline, seed: int, grain_size_um: float
) -> None:
    loaded, truth = clean_render(seed, porosity=0.0, grain_size_um=grain_size_um)
    assert truth == 0.0
    assert pipeline.measure(loaded)["porosity"].value < 0.002  # measured 28–57 % before


def test_void_blobs_keeps_pores_and_drops_grains_as_dark_as_the_grain_spread_allows() -> None:
    light = np.full((64, 64), 0.5, dtype=np.float32)
    light[5:25, 5:25] = 0.42  # a whole grain 1.6 σ darker than typical
    light[40:46, 40:46] = 0.02  # a pore far darker than any grain
    mask = np.zeros(light.shape, dtype=bool)
    mask[5:25, 5:25] = mask[40:46, 40:46] = True
    grains = GrainLevels((0.5, 0.0, 0.0), spread=0.05, typical=0.5, black=-0.1, groove=0.3)
    kept = void_blobs(mask, light, grains)
    assert kept[40:46, 40:46].all() and not kept[5:25, 5:25].any()
    # a shading plane moves the typical level: the same pore on a dark side is still judged against its surround
    shaded = GrainLevels((0.5, 0.0, -0.004), spread=0.05, typical=0.5, black=-0.1, groove=0.3)
    assert void_blobs(mask, light, shaded)[40:46, 40:46].all()
    # too spread to tell (void would be within 5 σ of the grains): everything is kept
    vague = GrainLevels((0.5, 0.0, 0.0), spread=0.2, typical=0.5, black=0.0, groove=0.3)
    assert (void_blobs(mask, light, vague) == mask).all()
    assert (void_blobs(mask, light, None) == mask).all()
