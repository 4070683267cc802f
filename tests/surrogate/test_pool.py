"""Pool strategies: proposals only from the pool and never twice (with pending points, q > 1, failures, to
exhaustion), the exhaustion error, determinism by seed and from a rebuilt history, the GP strategy finding the best
candidate far sooner than random, composition and categorical pools, several objectives, and option checking."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from surrogate.base import ConditionValue, Observation, Proposal, Strategy, StrategyError, StrategyWarning
from surrogate.encoding import canonical_key
from surrogate.objectives import Goal, Objective, OutcomeConstraint
from surrogate.pool import (
    POOL_STRATEGIES,
    PoolBase,
    PoolBotorchStrategy,
    PoolStrategy,
    make_pool_strategy,
    validate_pool_options,
)
from surrogate.space import CategoricalParameter, Component, CompositionParameter, FloatParameter, SearchSpace
from tests.surrogate.problems import maximize, quadratic, square

Cond = dict[str, ConditionValue]
FAST = {"mc_samples": 32}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def grid_pool(n: int, seed: int = 0) -> list[Cond]:
    rng = np.random.default_rng(seed)
    return [{"x": float(x), "y": float(y)} for x, y in rng.random((n, 2))]


def composition_space() -> SearchSpace:
    return SearchSpace(
        parameters=(
            CompositionParameter(name="comp", components=tuple(Component(name=n) for n in ("Fe", "Ni", "Co", "Cr"))),
        )
    )


def simplex_grid() -> list[Cond]:
    """The 286 compositions of 4 components on a 0.1 grid (as floats that went through arithmetic)."""
    out: list[Cond] = []
    for a, b, c in itertools.product(range(11), repeat=3):
        if a + b + c <= 10:
            out.append({"Fe": a * 0.1, "Ni": b * 0.1, "Co": c * 0.1, "Cr": 1.0 - (a + b + c) * 0.1})
    return out


def options(name: str, **extra: Any) -> dict[str, Any]:
    return {**FAST, **extra} if name == "botorch" else dict(extra)


def drive(
    s: Strategy,
    f: Callable[[Mapping[str, ConditionValue]], float | None],
    asks: list[int],
    keep_pending: int = 0,
    until_exhausted: bool = False,
) -> list[Proposal]:
    """Asks ``q`` per entry of ``asks`` (cycled when ``until_exhausted``), keeping the last ``keep_pending`` proposals
    pending and telling the older ones (``f`` None: a failed experiment)."""
    proposals: list[Proposal] = []
    pending: list[Cond] = []
    qs = itertools.cycle(asks) if until_exhausted else iter(asks)
    for q in qs:
        try:
            batch = s.ask(q, pending)
        except StrategyError as e:
            assert until_exhausted and "pool exhausted" in str(e)
            break
        assert 1 <= len(batch) <= q
        proposals.extend(batch)
        pending.extend(p.conditions for p in batch)
        done, pending = pending[: max(len(pending) - keep_pending, 0)], pending[max(len(pending) - keep_pending, 0) :]
        if until_exhausted and not batch:
            break
        results = []
        for c in done:
            v = f(c)
            results.append(Observation(c, {} if v is None else {"f": (v, 0.0)}, failed=v is None, reason="melted"))
        s.tell(results)
        if until_exhausted and len(proposals) > 10_000:
            raise AssertionError("never exhausted")
    if until_exhausted and pending:  # finish the last pending ones: then nothing is left
        s.tell([Observation(c, {"f": (float(f(c) or 0.0), 0.0)}) for c in pending])
    return proposals


@pytest.mark.parametrize("name", ["random", "sobol", "botorch"])
def test_never_outside_the_pool_nor_twice_until_exhausted(name: str) -> None:
    pool = grid_pool(40)
    s = make_pool_strategy(name, square(), maximize(), 3, pool, options(name))
    assert isinstance(s, PoolStrategy) and isinstance(s, Strategy)

    def f(c: Mapping[str, ConditionValue]) -> float | None:
        return None if float(c["x"]) > 0.85 else quadratic(c)  # a few failures

    proposals = drive(s, f, [1, 3, 2, 5], keep_pending=2, until_exhausted=True)
    keys = [canonical_key(p.conditions) for p in proposals]
    assert len(keys) == len(set(keys)) == len(pool)  # every candidate exactly once
    assert set(keys) == {canonical_key(c) for c in pool}
    assert s.remaining() == 0
    with pytest.raises(StrategyError, match="pool exhausted"):
        s.ask(1, [])
    assert s.ask(0, []) == []


@pytest.mark.parametrize("name", ["random", "sobol", "botorch"])
def test_pending_are_avoided_and_fewer_remaining_are_returned(name: str) -> None:
    pool = grid_pool(8)
    s = make_pool_strategy(name, square(), maximize(), 0, pool, options(name))
    s.tell([Observation(c, {"f": (quadratic(c), 0.0)}) for c in pool[:3]])
    pending: list[Cond] = [
        dict(pool[3]),
        {"x": 0.5, "y": 0.5},
    ]  # one pending candidate, one pending point outside the pool
    out = s.ask(10, pending)
    assert {canonical_key(p.conditions) for p in out} == {canonical_key(c) for c in pool[4:]}
    assert s.remaining(pending) == 4
    with pytest.raises(StrategyError, match=r"pool exhausted.*observed \(3\).*pending \(5\)"):
        s.ask(1, [p.conditions for p in out] + [pool[3]])


@pytest.mark.parametrize("name", ["random", "sobol", "botorch"])
def test_deterministic_by_seed_and_from_a_rebuilt_history(name: str) -> None:
    pool = grid_pool(60)

    def run(seed: int) -> list[Cond]:
        s = make_pool_strategy(name, square(), maximize(), seed, pool, options(name))
        return [p.conditions for p in drive(s, quadratic, [2, 1, 1, 3])]

    first = run(5)
    assert first == run(5)
    assert first != run(6)
    # a strategy rebuilt from the recorded observations proposes what the original one does next
    a = make_pool_strategy(name, square(), maximize(), 5, pool, options(name))
    drive(a, quadratic, [2, 1, 1])
    b = make_pool_strategy(name, square(), maximize(), 5, pool, options(name))
    b.tell([Observation(c, {"f": (quadratic(c), 0.0)}) for c in first[:4]])
    assert [p.conditions for p in a.ask(2, [])] == [p.conditions for p in b.ask(2, [])]


def bumpy(c: Mapping[str, ConditionValue]) -> float:
    """Smooth, one broad maximum near (0.3, 0.7) and a smaller bump near (0.8, 0.2)."""
    x, y = float(c["x"]), float(c["y"])
    broad = math.exp(-((x - 0.3) ** 2 + (y - 0.7) ** 2) / 0.08)
    return broad + 0.5 * math.exp(-((x - 0.8) ** 2 + (y - 0.2) ** 2) / 0.02)


def steps_to_best(s: Strategy, pool: list[Cond], budget: int) -> int:
    best = canonical_key(max(pool, key=bumpy))
    for step in range(1, budget + 1):
        (p,) = s.ask(1, [])
        if canonical_key(p.conditions) == best:
            return step
        s.tell([Observation(p.conditions, {"f": (bumpy(p.conditions), 0.0)})])
    return budget + 1


def test_botorch_finds_the_best_candidate_far_sooner_than_random() -> None:
    pool = grid_pool(500, seed=11)
    seeds = range(5)
    bo = [steps_to_best(make_pool_strategy("botorch", square(), maximize(), k, pool, FAST), pool, 40) for k in seeds]
    rnd = [steps_to_best(make_pool_strategy("random", square(), maximize(), k, pool), pool, 500) for k in seeds]
    assert max(bo) <= 40, bo  # every seed finds it
    assert statistics.median(bo) * 4 < statistics.median(rnd), (bo, rnd)


@pytest.mark.parametrize("acquisition", ["UCB", "TS"])
def test_other_acquisitions_find_the_best_candidate(acquisition: str) -> None:
    pool = grid_pool(300, seed=2)
    s = make_pool_strategy("botorch", square(), maximize(), 1, pool, {**FAST, "acquisition": acquisition})
    assert steps_to_best(s, pool, 40) <= 40
    (p,) = s.ask(1, [])
    assert p.model_state["acquisition"] == acquisition and "f" in p.predictions


def test_composition_pool() -> None:
    space = composition_space()
    pool = simplex_grid()
    assert len(pool) == 286

    def f(c: Mapping[str, ConditionValue]) -> float:
        return -((float(c["Fe"]) - 0.4) ** 2) - (float(c["Ni"]) - 0.3) ** 2 - 0.5 * (float(c["Cr"]) - 0.1) ** 2

    values = sorted((f(c) for c in pool), reverse=True)
    for name in ("sobol", "botorch"):
        s = make_pool_strategy(name, space, maximize(), 0, pool, options(name))
        proposals = drive(s, f, [2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
        assert all(not space.check(p.conditions) for p in proposals)
        keys = [canonical_key(p.conditions) for p in proposals]
        assert len(set(keys)) == len(keys) and set(keys) <= {canonical_key(c) for c in pool}
        if name == "botorch":
            best = max(f(p.conditions) for p in proposals)
            assert best >= values[4], (best, values[:5])  # one of the five best of 286 in 16 experiments
            assert set(proposals[-1].model_state["lengthscales"]) <= {"Fe", "Ni", "Co", "Cr"}
    # Sobol spreads over the simplex: its first 16 points are not all in one corner
    s = make_pool_strategy("sobol", space, maximize(), 0, pool)
    first = [p.conditions for p in s.ask(16, [])]
    assert all(max(float(c[n]) for c in first) >= 0.5 for n in ("Fe", "Ni", "Co", "Cr"))


def test_sobol_matches_categories_when_it_can() -> None:
    space = SearchSpace(
        parameters=(
            FloatParameter(name="x", low=0, high=1, unit="1"),
            CategoricalParameter(name="atm", choices=("Ar", "N2", "air")),
        )
    )
    pool: list[Cond] = [{"x": i / 9, "atm": a} for i in range(10) for a in ("Ar", "N2")]  # no "air" in the pool
    s = make_pool_strategy("sobol", space, maximize(), 0, pool)
    out = drive(s, lambda c: float(c["x"]), [3], until_exhausted=True)
    assert len(out) == len(pool)
    b = make_pool_strategy("botorch", space, maximize(), 0, pool, FAST)
    proposals = drive(b, lambda c: float(c["x"]) + (0.5 if c["atm"] == "N2" else 0.0), [2, 1, 1, 1, 1, 1])
    assert proposals[-1].generator == "pool_botorch"
    assert len({canonical_key(p.conditions) for p in proposals}) == len(proposals)


def test_several_objectives_use_hypervolume_over_the_pool() -> None:
    goal = Goal(
        objectives=(
            Objective(name="a", direction="maximize", unit="1"),
            Objective(name="b", direction="minimize", unit="1"),
        )
    )
    pool = grid_pool(80)
    s = make_pool_strategy("botorch", square(), goal, 0, pool, FAST)
    for c in pool[:4]:
        s.tell([Observation(c, {"a": (float(c["x"]), 0.0), "b": (float(c["y"]), 0.0)})])
    out = s.ask(3, [pool[10]])
    assert len(out) == 3 and all(p.model_state["acquisition"] == "qLogNEHVI" for p in out)
    assert all(set(p.predictions) == {"a", "b"} for p in out)
    assert 3 <= out[0].model_state["candidates_evaluated"] < 79  # the screen left out the hopeless ones
    with pytest.raises(StrategyError, match="one objective"):
        make_pool_strategy("botorch", square(), goal, 0, pool, {"acquisition": "UCB"})


def test_hypervolume_screen_changes_no_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    goal = Goal(
        objectives=(
            Objective(name="a", direction="maximize", unit="1"),
            Objective(name="b", direction="target", target=0.5, unit="1"),
        )
    )
    pool = grid_pool(300, seed=4)

    def f(c: Mapping[str, ConditionValue]) -> dict[str, tuple[float, float]]:
        x, y = float(c["x"]), float(c["y"])
        return {"a": (x + 0.3 * math.sin(4 * y), 0.0), "b": (x * y + 0.2 * y, 0.0)}

    s = make_pool_strategy("botorch", square(), goal, 0, pool, FAST)
    s.tell([Observation(c, f(c)) for c in pool[:25]])
    screened = s.ask(2, [])
    assert screened[0].model_state["candidates_evaluated"] < 275
    monkeypatch.setattr(
        PoolBotorchStrategy, "_hypervolume_screen", lambda self, m, X, B: torch.ones(len(X), dtype=torch.bool)
    )
    full = s.ask(2, [])
    assert full[0].model_state["candidates_evaluated"] == 275
    assert [p.conditions for p in screened] == [p.conditions for p in full]


def test_pool_and_options_are_checked() -> None:
    assert set(POOL_STRATEGIES) >= {"random", "sobol", "botorch"}
    with pytest.raises(ValueError, match="unknown pool strategy"):
        validate_pool_options("ax")
    with pytest.raises(ValidationError):
        validate_pool_options("botorch", {"initial_point": 3})
    with pytest.raises(ValidationError):
        validate_pool_options("botorch", {"acquisition": "EI"})
    assert validate_pool_options("botorch", {"acquisition": "UCB", "beta": 4}).beta == 4.0  # type: ignore[attr-defined]
    with pytest.raises(StrategyError, match="outside the space"):
        make_pool_strategy("random", square(), maximize(), 0, [{"x": 2.0, "y": 0.0}])
    with pytest.raises(StrategyError, match="empty"):
        make_pool_strategy("random", square(), maximize(), 0, [])
    with pytest.warns(StrategyWarning, match="duplicate"):
        s = make_pool_strategy("random", square(), maximize(), 0, [{"x": 0.1, "y": 0.2}, {"x": 0.1 + 1e-13, "y": 0.2}])
    assert isinstance(s, PoolBase) and s.size == 1


def test_botorch_explains_and_learns_from_failures() -> None:
    pool = grid_pool(120)
    s = make_pool_strategy("botorch", square(), maximize(), 0, pool, {**FAST, "initial_points": 4})
    first = s.ask(4, [])
    assert all(p.generator == "pool_botorch:random" for p in first)
    for p in first[:3]:
        s.tell([Observation(p.conditions, {}, failed=True, reason="cracked")])
    # three failures and one success: still not enough to model, more random candidates
    s.tell([Observation(first[3].conditions, {"f": (quadratic(first[3].conditions), 0.01)})])
    assert s.ask(1, [])[0].generator == "pool_botorch:random"
    drive(s, quadratic, [1, 1])
    (p,) = s.ask(1, [])
    assert p.generator == "pool_botorch"
    assert p.acquisition_value is not None and math.isfinite(p.acquisition_value)
    assert "feasibility" in p.model_state and set(p.model_state["lengthscales"]) == {"x", "y"}
    mean, sd = p.predictions["f"]
    assert math.isfinite(mean) and sd >= 0


def test_auto_acquisition_is_ucb_until_something_fails_or_the_goal_needs_more() -> None:
    pool = grid_pool(80)
    s = make_pool_strategy("botorch", square(), maximize(), 0, pool, FAST)
    assert isinstance(s, PoolBotorchStrategy) and s.options.acquisition == "auto"
    drive(s, quadratic, [1, 1, 1])
    (p,) = s.ask(1, [])
    assert p.model_state["acquisition"] == "UCB" and "feasibility" not in p.model_state
    s.tell([Observation(p.conditions, {}, failed=True, reason="cracked")])
    (p,) = s.ask(1, [])  # a failure: the acquisition that weighs the learned feasibility
    assert p.model_state["acquisition"] == "qLogNEI" and "feasibility" in p.model_state
    constrained = Goal(
        objectives=(Objective(name="f", direction="maximize", unit="1"),),
        outcome_constraints=(OutcomeConstraint(name="f", op=">=", bound=0.1),),
    )
    c = make_pool_strategy("botorch", square(), constrained, 0, pool, FAST)
    assert c.acquisition == "qLogNEI"  # type: ignore[attr-defined]
