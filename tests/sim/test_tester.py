"""SimTester: outputs per system, realistic noise, outliers, Weibull strength, failures and lab time."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from instruments.base import Characterizer, ConditionValue, PermanentFault, Sample, SynthesisRequest, TransientFault
from instruments.registry import InstrumentContext
from instruments.sim.characterizer import SimTester
from instruments.sim.lab import SimFurnace
from tests.sim.conftest import vrun

ALLOY: dict[str, ConditionValue] = {
    "anneal_temperature": 900.0,
    "anneal_time": 2.0,
    "cooling_rate": 20.0,
    "alloy_fraction": 0.04,
    "atmosphere": "argon",
}
CERAMIC: dict[str, ConditionValue] = {
    "sinter_temperature": 1300.0,
    "hold_time": 1.0,
    "pressure": 20.0,
    "particle_size": 0.5,
    "binder_fraction": 0.03,
}


def test_outputs_per_system() -> None:
    assert SimTester.outputs({"system": "two_phase_alloy"}) == {
        "yield_strength": "MPa",
        "hardness": "HV",
        "elongation": "%",
        "strength_ductility": "GPa*%",
    }
    assert SimTester.outputs({"system": "porous_ceramic"}) == {
        "elastic_modulus": "GPa",
        "thermal_conductivity": "W/(m*K)",
        "flexural_strength": "MPa",
        "relative_density": "1",
    }
    with pytest.raises(ValueError, match="does not have"):
        SimTester.validate_options({"noise": {"porosity": 0.1}})


def _measure_many(
    ctx: InstrumentContext, system: str, conditions: dict[str, Any], n: int, **options: Any
) -> tuple[Sample, dict[str, np.ndarray], dict[str, np.ndarray]]:
    async def go() -> tuple[Sample, dict[str, np.ndarray], dict[str, np.ndarray]]:
        sample = await SimFurnace(context=ctx, system=system).synthesize(SynthesisRequest("k", conditions))
        tester = SimTester(context=ctx, system=system, **options)
        assert isinstance(tester, Characterizer)
        values: dict[str, list[float]] = {}
        sigmas: dict[str, list[float]] = {}
        for _ in range(n):
            for m in await tester.measure(sample):
                assert m.source == "sim-tester"
                values.setdefault(m.name, []).append(m.value)
                sigmas.setdefault(m.name, []).append(m.sigma)
        return sample, {k: np.array(v) for k, v in values.items()}, {k: np.array(v) for k, v in sigmas.items()}

    return vrun(go())


def test_noise_is_realistic_and_unbiased(ctx: InstrumentContext) -> None:
    sample, values, sigmas = _measure_many(ctx, "two_phase_alloy", ALLOY, 300, outlier_probability=0.0)
    truth = dict(sample.truth or {})
    for name, rel in [("yield_strength", 0.03), ("hardness", 0.02), ("elongation", 0.05)]:
        v = values[name]
        assert v.mean() == pytest.approx(truth[name], rel=4 * rel / np.sqrt(len(v)))
        assert v.std() / truth[name] == pytest.approx(rel, rel=0.2)
        assert np.median(sigmas[name] / v) == pytest.approx(rel, rel=0.01)
    pse = values["yield_strength"] * values["elongation"] / 1000
    np.testing.assert_allclose(values["strength_ductility"], pse)


def test_outliers_happen_and_escape_the_stated_sigma(ctx: InstrumentContext) -> None:
    _, values, sigmas = _measure_many(ctx, "two_phase_alloy", ALLOY, 400, outlier_probability=0.1)
    v, s = values["yield_strength"], sigmas["yield_strength"]
    z = np.abs(v - np.median(v)) / s
    assert 0.05 < (z > 4).mean() < 0.15


def test_ceramic_strength_from_weibull_bars(ctx: InstrumentContext) -> None:
    sample, values, sigmas = _measure_many(ctx, "porous_ceramic", CERAMIC, 200, specimens=5)
    truth = dict(sample.truth or {})
    v = values["flexural_strength"]
    assert v.mean() == pytest.approx(truth["flexural_strength"], rel=0.02)
    # a Weibull modulus of 10 scatters single bars by ~12 %, a mean of five by ~5 %
    assert v.std() / v.mean() == pytest.approx(0.12 / np.sqrt(5), rel=0.25)
    assert np.median(sigmas["flexural_strength"]) / v.mean() == pytest.approx(0.05, rel=0.4)
    assert (values["relative_density"] <= 1.0).all()


def test_test_failures_are_transient_and_time_passes(ctx: InstrumentContext) -> None:
    async def go() -> None:
        sample = await SimFurnace(context=ctx).synthesize(SynthesisRequest("k", ALLOY))
        tester = SimTester(context=ctx, failure_probability=0.4, duration_h=2.0)
        failures = 0
        for _ in range(100):
            t0 = asyncio.get_running_loop().time()
            try:
                await tester.measure(sample)
            except TransientFault as exc:
                assert exc.code == "test_failed"
                failures += 1
            assert asyncio.get_running_loop().time() - t0 == pytest.approx(7200)
        assert 25 < failures < 55

    vrun(go())


def test_wrong_system_is_refused(ctx: InstrumentContext) -> None:
    async def go() -> None:
        sample = await SimFurnace(context=ctx).synthesize(SynthesisRequest("k", ALLOY))
        with pytest.raises(PermanentFault) as err:
            await SimTester(context=ctx, system="porous_ceramic").measure(sample)
        assert err.value.code == "wrong_system"

    vrun(go())
