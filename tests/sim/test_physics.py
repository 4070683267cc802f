"""Physical laws the simulated materials must obey, and invariants of their ground truth."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instruments.sim.systems import SYSTEMS, porous_ceramic, two_phase_alloy
from instruments.sim.systems.base import InputSpec


@pytest.mark.parametrize("c", [0.0, 0.03, 0.08])
@pytest.mark.parametrize("atmosphere", ["argon", "air"])
def test_alloy_grains_grow_with_temperature_and_time(c: float, atmosphere: str) -> None:
    temps = np.linspace(600, 1100, 26)[:, None]
    times = np.geomspace(0.1, 20, 30)[None, :]
    d = two_phase_alloy.model(temps, times, 10.0, c, atmosphere)["grain_size_um"]
    assert np.all(np.diff(d, axis=0) >= -1e-9), "grain size must not shrink with temperature"
    assert np.all(np.diff(d, axis=1) >= -1e-9), "grain size must not shrink with time"
    assert d.max() > 1.5 * d.min()


def test_alloy_grain_growth_law_without_pinning() -> None:
    """d² − d₀² = K₀·exp(−Q/RT)·t once recrystallized, for the pure metal."""
    t = np.array([4.0, 8.0, 16.0])
    d = two_phase_alloy.model(1000.0, t, 10.0, 0.0, "argon")["grain_size_um"]
    growth = d**2 - 6.0**2
    np.testing.assert_allclose(growth / t, growth[0] / t[0], rtol=1e-3)
    k = [float(two_phase_alloy.model(tc, 4.0, 10.0, 0.0, "argon")["grain_size_um"]) ** 2 - 36 for tc in (950, 1050)]
    q = 8.314 * np.log(k[1] / k[0]) / (1 / 1223.15 - 1 / 1323.15)
    assert q == pytest.approx(230e3, rel=0.01)


def test_alloy_lever_rule_and_solidus() -> None:
    f = two_phase_alloy.equilibrium_fraction(0.06, np.array([600.0, 800.0, 1000.0]) + 273.15)
    assert f[0] > f[1] > f[2] == 0.0  # solvus rises with temperature: β dissolves
    assert two_phase_alloy.solidus_c(0.0) > 1100 > two_phase_alloy.solidus_c(0.12)


def test_alloy_strength_and_ductility_trade_off() -> None:
    """The best elongation reachable falls as the strength asked for rises: the Pareto front is real."""
    rng = np.random.default_rng(0)
    n = 4000
    m = two_phase_alloy.model(
        rng.uniform(600, 1100, n),
        np.exp(rng.uniform(np.log(0.1), np.log(20), n)),
        np.exp(rng.uniform(np.log(0.1), np.log(500), n)),
        rng.uniform(0, 0.12, n),
        "argon",
    )
    edges = np.quantile(m["yield_strength"], np.linspace(0, 1, 6))
    best = [
        m["elongation"][(m["yield_strength"] >= lo) & (m["yield_strength"] <= hi)].max()
        for lo, hi in itertools.pairwise(edges)
    ]
    assert np.all(np.diff(best) < 0), best


def test_alloy_air_softens_the_surface() -> None:
    args = (1000.0, 10.0, 10.0, 0.05)
    air = two_phase_alloy.model(*args, "air")
    argon = two_phase_alloy.model(*args, "argon")
    assert air["surface_layer_um"] > 5 * argon["surface_layer_um"]
    assert air["hardness"] < argon["hardness"]


def test_ceramic_densifies_with_temperature_and_time() -> None:
    temps = np.linspace(1100, 1700, 31)[:, None]
    times = np.geomspace(0.25, 10, 15)[None, :]
    for p_mpa in (0.0, 20.0):
        m = porous_ceramic.model(temps, times, p_mpa, 0.5, 0.0)
        sintered = m["porosity"] - m["swelling_porosity"]  # what densification leaves
        assert np.all(np.diff(sintered, axis=0) <= 1e-9)
        assert np.all(np.diff(sintered, axis=1) <= 1e-9)
        below = temps[:, 0] <= 1300  # below over-firing, total porosity falls too
        assert np.all(np.diff(m["porosity"][below], axis=0) <= 1e-9)
    assert (
        porous_ceramic.model(1400.0, 2.0, 30.0, 0.5, 0.0)["porosity"]
        < porous_ceramic.model(1400.0, 2.0, 0.0, 0.5, 0.0)["porosity"]
    )


def test_ceramic_over_firing_swells_trapped_gas() -> None:
    short = porous_ceramic.model(1650.0, 0.5, 30.0, 0.5, 0.05)
    long = porous_ceramic.model(1650.0, 10.0, 30.0, 0.5, 0.05)
    assert long["porosity"] > short["porosity"] and long["bloat_probability"] > 0.9 > short["bloat_probability"]


@pytest.mark.parametrize("temp", [1300.0, 1400.0, 1500.0])
def test_ceramic_porosity_rises_with_particle_size(temp: float) -> None:
    a = np.geomspace(0.2, 5, 25)
    p = porous_ceramic.model(temp, 1.0, 0.0, a, 0.02)["porosity"]
    assert np.all(np.diff(p) >= -1e-9)
    assert p[-1] > p[0] + 0.05


def test_ceramic_grains_grow_with_temperature_and_time() -> None:
    temps = np.linspace(1100, 1700, 25)[:, None]
    times = np.geomspace(0.25, 10, 20)[None, :]
    d = porous_ceramic.model(temps, times, 10.0, 0.5, 0.0)["grain_size_um"]
    assert np.all(np.diff(d, axis=0) >= -1e-9) and np.all(np.diff(d, axis=1) >= -1e-9)


def test_ceramic_properties_follow_porosity() -> None:
    p = np.array([0.0, 0.1, 0.3])
    # E = E0 exp(-b p) and Maxwell–Eucken conductivity, checked through the model at fixed grain size
    m = porous_ceramic.model(np.array([1700.0, 1250.0, 1150.0]), 1.0, 0.0, 0.5, 0.0)
    e, k, por = m["elastic_modulus"], m["thermal_conductivity"], m["porosity"]
    np.testing.assert_allclose(e, 400 * np.exp(-3 * por))
    assert np.all(np.diff(por) > 0) and np.all(np.diff(e) < 0) and np.all(np.diff(k) < 0)
    assert p.size == 3


def _conditions(inputs: tuple[InputSpec, ...]) -> st.SearchStrategy[dict[str, object]]:
    fields: dict[str, st.SearchStrategy[object]] = {}
    for s in inputs:
        if s.categorical:
            fields[s.name] = st.sampled_from(s.choices)
        else:
            fields[s.name] = st.floats(s.low, s.high, allow_nan=False)  # type: ignore[arg-type]
    return st.fixed_dictionaries(fields)


FRACTIONS = (
    "porosity",
    "second_phase_fraction",
    "recrystallized_fraction",
    "relative_density",
    "fine_precipitate_fraction",
    "boundary_precipitate_fraction",
    "quench_crack_probability",
    "bloat_probability",
    "crack_probability",
)


@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_truth_invariants(name: str) -> None:
    system = SYSTEMS[name]

    @settings(max_examples=60, deadline=None)
    @given(_conditions(system.inputs), st.integers(0, 2**32 - 1))
    def check(conditions: dict[str, object], seed: int) -> None:
        outcome = system.outcome(conditions, np.random.default_rng(seed))
        truth = outcome.truth
        assert truth["system"] == name
        assert truth["grain_size_um"] > 0 and truth["grain_size_sigma_ln"] > 0
        for key in FRACTIONS:
            if key in truth:
                assert 0.0 <= truth[key] <= 1.0, (key, truth[key])
        for key in system.outputs:
            if key in truth:
                assert np.isfinite(truth[key]) and truth[key] > 0, (key, truth[key])
        assert truth["crack_density_per_mm2"] >= 0
        if outcome.failure is not None:
            assert outcome.failure.code in {"melted", "quench_cracked", "bloated", "cracked"}
            assert outcome.failure.reason

    check()
