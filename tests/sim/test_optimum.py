"""The noise-free optimum of each system is interior, feasible, and where its docstring says."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from instruments.sim.systems import SYSTEMS, porous_ceramic, two_phase_alloy
from instruments.sim.systems.base import MaterialSystem, Optimum

# what the module docstrings state (value, then conditions with tolerances)
STATED: dict[str, tuple[float, dict[str, Any]]] = {
    "two_phase_alloy": (
        18.48,
        {
            "anneal_temperature": (943, 10),
            "anneal_time": (2.8, 0.4),
            "cooling_rate": (27, 4),
            "alloy_fraction": (0.052, 0.003),
            "atmosphere": "argon",
        },
    ),
    "porous_ceramic": (
        477.0,
        {
            "sinter_temperature": (1299, 10),
            "hold_time": (1.18, 0.2),
            "pressure": (20.7, 2.0),
            "particle_size": (0.51, 0.05),
            "binder_fraction": (0.029, 0.003),
        },
    ),
}


def _normalized(system: MaterialSystem, best: Optimum) -> dict[str, float]:
    out = {}
    for s in system.inputs:
        if s.categorical:
            continue
        lo, hi, x = float(s.low), float(s.high), float(best.conditions[s.name])  # type: ignore[arg-type]
        out[s.name] = (np.log(x / lo) / np.log(hi / lo)) if s.log else (x - lo) / (hi - lo)
    return out


@pytest.fixture(scope="module", params=sorted(SYSTEMS))
def optimum(request: pytest.FixtureRequest) -> tuple[MaterialSystem, Optimum]:
    system = SYSTEMS[request.param]
    return system, system.optimum(seed=0, maxiter=200)


def test_optimum_is_interior(optimum: tuple[MaterialSystem, Optimum]) -> None:
    system, best = optimum
    for name, u in _normalized(system, best).items():
        assert 0.03 < u < 0.97, f"{system.name}: optimum {name}={best.conditions[name]} lies on a bound"


def test_optimum_is_where_the_docstring_says(optimum: tuple[MaterialSystem, Optimum]) -> None:
    system, best = optimum
    value, where = STATED[system.name]
    assert best.value == pytest.approx(value, rel=0.01)
    for name, expect in where.items():
        if isinstance(expect, str):
            assert best.conditions[name] == expect
        else:
            centre, tol = expect
            assert abs(best.conditions[name] - centre) <= tol, (name, best.conditions[name])


def test_optimum_is_a_local_maximum(optimum: tuple[MaterialSystem, Optimum]) -> None:
    """A step of 3 % of the range along any input lowers the objective."""
    system, best = optimum
    f = system.objectives[best.objective]
    for s in system.inputs:
        if s.categorical:
            continue
        for sign in (-1, 1):
            cond = dict(best.conditions)
            lo, hi, x = float(s.low), float(s.high), float(cond[s.name])  # type: ignore[arg-type]
            cond[s.name] = x * (hi / lo) ** (0.03 * sign) if s.log else x + 0.03 * sign * (hi - lo)
            assert float(f(**cond)) < best.value, (s.name, sign)


def test_optimum_is_safe() -> None:
    best = two_phase_alloy.optimum(maxiter=200)
    m = two_phase_alloy.model(**best.conditions)
    c = best.conditions
    assert two_phase_alloy.solidus_c(c["alloy_fraction"]) - c["anneal_temperature"] > 30  # well below melting
    assert m["quench_crack_probability"] < 0.05
    cer = porous_ceramic.optimum(maxiter=200)
    mc = porous_ceramic.model(**cer.conditions)
    assert porous_ceramic.survival_probability(mc) > 0.95
