"""SimSEM: determinism, masks that match the pixels and the sample, TIFF tags, idempotent files, artifacts."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest
import tifffile

from instruments.base import ConditionValue, Imager, Micrograph, PermanentFault, Sample, SynthesisRequest
from instruments.registry import InstrumentContext
from instruments.sim.characterizer import SimTester
from instruments.sim.lab import SimFurnace
from instruments.sim.microscope import SimSEM
from instruments.sim.tiff import read_pixel_size_um
from tests.sim.conftest import vrun

ALLOY: dict[str, ConditionValue] = {
    "anneal_temperature": 780.0,
    "anneal_time": 1.0,
    "cooling_rate": 0.3,
    "alloy_fraction": 0.06,
    "atmosphere": "argon",
}
CERAMIC: dict[str, ConditionValue] = {
    "sinter_temperature": 1250.0,
    "hold_time": 1.0,
    "pressure": 5.0,
    "particle_size": 0.5,
    "binder_fraction": 0.03,
}


def make_sample(ctx: InstrumentContext, system: str, conditions: dict[str, Any], key: str = "s") -> Sample:
    return vrun(SimFurnace(context=ctx, system=system).synthesize(SynthesisRequest(key, conditions)))


def acquire(ctx: InstrumentContext, sample: Sample, **options: Any) -> list[Micrograph]:
    return vrun(SimSEM(context=ctx, **options).acquire(sample))


def test_speaks_the_protocol(ctx: InstrumentContext) -> None:
    assert isinstance(SimSEM(context=ctx), Imager)
    with pytest.raises(ValueError, match="size_px"):
        SimSEM.validate_options({"size_px": 8})
    with pytest.raises(ValueError, match="pixel_sise_um"):
        SimSEM.validate_options({"pixel_sise_um": 0.1})


def test_same_seed_same_pixels_other_seed_other_pixels(tmp_path: Any) -> None:
    def shoot(seed: int, where: str) -> tuple[np.ndarray, dict[str, Any]]:
        ctx = InstrumentContext(seed=seed, workdir=tmp_path / where)
        m = acquire(ctx, make_sample(ctx, "two_phase_alloy", ALLOY), size_px=256)[0]
        return tifffile.imread(m.path), {k: v for k, v in dict(m.truth or {}).items() if k != "masks_path"}

    a, ta = shoot(3, "a")
    b, tb = shoot(3, "b")
    c, _ = shoot(4, "c")
    assert np.array_equal(a, b) and ta == tb
    assert not np.array_equal(a, c)


def test_tiff_carries_pixel_size(ctx: InstrumentContext) -> None:
    sample = make_sample(ctx, "porous_ceramic", CERAMIC)
    m = acquire(ctx, sample, size_px=128, pixel_size_um=0.05)[0]
    assert m.path.suffix == ".tif" and m.path.parent == ctx.workdir / "micrographs"
    assert m.pixel_size_um == 0.05
    assert read_pixel_size_um(m.path) == pytest.approx(0.05)
    with tifffile.TiffFile(m.path) as tif:
        page = tif.pages.first
        assert page.tags["ResolutionUnit"].value == tifffile.RESUNIT.CENTIMETER
        assert page.tags["XResolution"].value[0] / page.tags["XResolution"].value[1] == pytest.approx(2e5)
        meta = json.loads(page.description)
        image = page.asarray()
    assert meta["pixel_size_um"] == 0.05 and meta["sample_id"] == sample.sample_id
    assert image.shape == (128, 128) and image.dtype == np.uint16
    assert m.metadata["magnification"] > 0


def test_masks_match_the_pixels_and_the_sample(ctx: InstrumentContext) -> None:
    sample = make_sample(ctx, "porous_ceramic", CERAMIC)
    assert sample.truth is not None
    m = acquire(ctx, sample, size_px=512, focus_failure_probability=0.0)[0]
    truth = dict(m.truth or {})
    masks = np.load(truth["masks_path"])
    image = tifffile.imread(m.path).astype(float)
    pore = masks["pore"]
    assert truth["porosity"] == pytest.approx(pore.mean())
    assert truth["porosity"] == pytest.approx(sample.truth["porosity"], rel=0.1, abs=0.002)
    assert truth["mean_intercept_um"] == pytest.approx(sample.truth["grain_size_um"], rel=0.1)
    assert abs(truth["grain_size_sigma_ln"] - sample.truth["grain_size_sigma_ln"]) < 0.08
    # pores are dark in the image (centres, away from the bright rim), grains are not
    from scipy.ndimage import binary_erosion

    core = binary_erosion(pore, iterations=2)
    matrix = masks["phase"] == 0
    assert core.any()
    assert image[core].mean() < 0.5 * image[matrix].mean()
    assert masks["phase_names"].tolist() == ["matrix", "second_phase", "pore", "crack"]


def test_second_phase_fraction_within_sampling_error(ctx: InstrumentContext) -> None:
    sample = make_sample(ctx, "two_phase_alloy", ALLOY)
    t = dict(sample.truth or {})
    expected = t["second_phase_fraction"] + t["boundary_precipitate_fraction"]
    assert expected > 0.05
    fields = acquire(ctx, sample, size_px=512, images_per_sample=2)
    r_px = t["particle_radius_um"] / fields[0].pixel_size_um
    n_particles = -np.log1p(-t["second_phase_fraction"]) * 512**2 / (np.pi * r_px**2 * np.exp(0.18))
    tol = 4 * t["second_phase_fraction"] / np.sqrt(n_particles) + 0.003
    for m in fields:
        assert abs(dict(m.truth or {})["second_phase_fraction"] - expected) < tol


def test_cracks_are_drawn_and_measured(ctx: InstrumentContext) -> None:
    fake = Sample(
        "cracky",
        "cracky",
        {},
        0.0,
        {"system": "two_phase_alloy"},
        {"system": "two_phase_alloy", "grain_size_um": 10.0, "crack_density_per_mm2": 400.0, "crack_length_um": 40.0},
    )
    m = acquire(ctx, fake, size_px=512)[0]
    truth = dict(m.truth or {})
    masks = np.load(truth["masks_path"])
    fov_mm2 = (512 * m.pixel_size_um * 1e-3) ** 2
    assert truth["crack_count"] == pytest.approx(400 * fov_mm2, abs=4 * (400 * fov_mm2) ** 0.5 + 2)
    assert truth["crack_count"] == len(masks["crack_offsets"]) - 1
    assert truth["crack_length_um"] == pytest.approx(truth["crack_count"] * 40.0, rel=0.5)
    assert masks["crack"].any()


def test_acquire_is_idempotent_and_takes_lab_time(ctx: InstrumentContext) -> None:
    sample = make_sample(ctx, "two_phase_alloy", ALLOY)

    async def go() -> tuple[list[Micrograph], list[Micrograph], float]:
        sem = SimSEM(context=ctx, size_px=128, images_per_sample=3)
        t0 = asyncio.get_running_loop().time()
        first = await sem.acquire(sample)
        took = asyncio.get_running_loop().time() - t0
        second = await SimSEM(context=ctx, size_px=128, images_per_sample=3).acquire(sample)
        return first, second, took

    first, second, took = vrun(go())
    assert took == pytest.approx(600 + 3 * 90)
    assert [m.path for m in first] == [m.path for m in second] and len({m.path for m in first}) == 3
    assert [m.truth for m in first] == [m.truth for m in second]
    stamps = [m.path.stat().st_mtime_ns for m in first]
    vrun(SimSEM(context=ctx, size_px=128, images_per_sample=3).acquire(sample))
    assert [m.path.stat().st_mtime_ns for m in first] == stamps


def test_out_of_focus_frames_are_flagged_and_blurred(ctx: InstrumentContext) -> None:
    sample = make_sample(ctx, "two_phase_alloy", ALLOY)
    sharp = acquire(ctx, sample, size_px=256, focus_failure_probability=0.0, artifacts={"dose": 1e5})[0]
    blurred = acquire(ctx, sample, size_px=256, focus_failure_probability=1.0, artifacts={"dose": 1e5})[0]
    assert (sharp.truth or {})["out_of_focus"] is False and (blurred.truth or {})["out_of_focus"] is True

    def detail(path: Any) -> float:
        img = tifffile.imread(path).astype(float)
        return float(np.abs(np.diff(img, axis=1)).mean())

    assert detail(blurred.path) < 0.5 * detail(sharp.path)


def test_pixel_size_defaults_per_system_and_auto(ctx: InstrumentContext) -> None:
    alloy = make_sample(ctx, "two_phase_alloy", ALLOY, key="a")
    ceramic = make_sample(ctx, "porous_ceramic", CERAMIC, key="c")
    sem = SimSEM(context=ctx)
    assert sem.pixel_size_for(alloy) == 0.2 and sem.pixel_size_for(ceramic) == 0.1
    auto = SimSEM(context=ctx, auto_magnification=True)
    for s in (alloy, ceramic):
        per_grain = (s.truth or {})["grain_size_um"] / auto.pixel_size_for(s)
        assert 5 < per_grain < 40


def test_no_truth_is_a_permanent_fault(ctx: InstrumentContext) -> None:
    with pytest.raises(PermanentFault) as err:
        acquire(ctx, Sample("x", "x", {}, 0.0))
    assert err.value.code == "no_truth"


def test_hall_petch_slope_recovered_from_rendered_grains(ctx: InstrumentContext) -> None:
    """Regressing measured yield strength on rendered (mean intercept)^-½ gives back k_HP = 0.55 MPa·√m."""
    furnace = SimFurnace(context=ctx)
    sem = SimSEM(context=ctx, size_px=384, auto_magnification=True)
    tester = SimTester(context=ctx, outlier_probability=0.0)

    async def go() -> tuple[list[float], list[float]]:
        xs, ys = [], []
        for i, (temp, hours) in enumerate(
            [(750, 2), (800, 4), (850, 6), (900, 10), (950, 4), (1000, 3), (1000, 12), (1050, 8), (1100, 4), (1100, 16)]
        ):
            cond: dict[str, ConditionValue] = {
                "anneal_temperature": float(temp),
                "anneal_time": float(hours),
                "cooling_rate": 1.0,
                "alloy_fraction": 0.0,
                "atmosphere": "vacuum",
            }
            sample = await furnace.synthesize(SynthesisRequest(f"hp{i}", cond))
            micrograph = (await sem.acquire(sample))[0]
            measured = {m.name: m.value for m in await tester.measure(sample)}
            xs.append(dict(micrograph.truth or {})["mean_intercept_um"] ** -0.5)
            ys.append(measured["yield_strength"])
        return xs, ys

    xs, ys = vrun(go())
    slope, intercept = np.polyfit(xs, ys, 1)
    assert slope == pytest.approx(550.0, rel=0.15)  # MPa·µm^½ = 0.55 MPa·m^½
    assert intercept == pytest.approx(60.0, abs=40.0)  # σ₀, the lattice friction stress
