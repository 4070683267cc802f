"""AxStrategy: the goal and space reach Ax intact, pending and failed points are handled, BO beats random."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from ax.core.optimization_config import MultiObjectiveOptimizationConfig

from surrogate.ax_strategy import AxStrategy, GoalEncoding
from surrogate.base import ConditionValue, Observation, StrategyError, StrategyWarning
from surrogate.encoding import canonical_key
from surrogate.objectives import Goal, Objective, OutcomeConstraint
from surrogate.options import AxOptions
from surrogate.random_search import RandomStrategy
from surrogate.space import Component, CompositionParameter, FloatParameter, LinearConstraint, SearchSpace
from tests.surrogate.problems import maximize, mixed_space, quadratic, square

NOISE = 0.01


def _observe(c: dict, rng: np.random.Generator | None = None) -> Observation:
    noise = 0.0 if rng is None else rng.normal(0, NOISE)
    return Observation(conditions=c, values={"f": (quadratic(c) + noise, NOISE)})


def _campaign(strategy, steps: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    seen = []
    for _ in range(steps):
        (p,) = strategy.ask(1, [])
        seen.append(p.conditions)
        strategy.tell([_observe(p.conditions, rng)])
    return seen


def test_bo_finds_the_optimum_of_a_noisy_quadratic_better_than_random() -> None:
    budget = 14
    bo = [
        -max(
            quadratic(c) for c in _campaign(AxStrategy(square(), maximize(), s, AxOptions(initial_points=6)), budget, s)
        )
        for s in range(3)
    ]
    rand = [
        -max(quadratic(c) for c in _campaign(RandomStrategy(square(), maximize(), s), budget, s)) for s in range(25)
    ]
    # random search's median regret with 14 points is ~0.015; BO's is ~1e-4 (a broken BO is no better than random)
    assert np.mean(bo) < 0.2 * np.median(rand), (bo, np.median(rand))
    assert max(bo) < 0.01


def test_pending_points_are_attached_and_avoided() -> None:
    s = AxStrategy(square(), maximize(), 1, AxOptions(initial_points=4))
    _campaign(s, 4)
    # where the model wants to go
    pending: list[dict[str, ConditionValue]] = [{"x": 0.3, "y": 0.7}, {"x": 0.31, "y": 0.69}]
    (p,) = s.ask(1, pending)
    assert p.generator == "ax:MBM"
    assert canonical_key(p.conditions) not in {canonical_key(c) for c in pending}
    running = [c for c, status in s.trials().values() if status == "RUNNING"]
    assert {canonical_key(c) for c in running} == {canonical_key(c) for c in [*pending, p.conditions]}
    assert set(p.predictions) == {"f"} and p.predictions["f"][1] > 0
    assert p.acquisition_value is not None
    # the next ask does not list the proposal as pending: it was dropped, so it stops counting as running
    s.ask(1, pending)
    assert s.trials()[p.model_state["ax_trial"]][1] == "STALE"
    # and when it is told after all, it is recorded on a fresh trial
    s.tell([_observe(p.conditions)])
    assert sum(status == "COMPLETED" for _, status in s.trials().values()) == 5


def test_same_seed_same_proposals() -> None:
    a, b = (_campaign(AxStrategy(square(), maximize(), 11, AxOptions(initial_points=4)), 6) for _ in range(2))
    assert a == b


def test_failed_points_are_told_and_not_proposed_again() -> None:
    s = AxStrategy(square(), maximize(), 2, AxOptions(initial_points=4))
    first = [p.conditions for p in s.ask(3, [])]
    s.tell([Observation(conditions=c, values={}, failed=True, reason="cracked") for c in first[:2]])
    s.tell([_observe(first[2])])
    s.tell([_observe({"x": 0.1, "y": 0.1}), _observe({"x": 0.9, "y": 0.2})])  # e.g. after a resume
    statuses = sorted(status for _, status in s.trials().values())
    assert statuses == ["COMPLETED"] * 3 + ["FAILED"] * 2
    later = [p.conditions for p in s.ask(2, [])]
    assert not {canonical_key(c) for c in later} & {canonical_key(c) for c in first}
    with pytest.warns(StrategyWarning, match="none of the goal metrics"):
        s.tell([Observation(conditions=later[0], values={"other": (1.0, 0.1)})])


def test_multi_objective_with_thresholds() -> None:
    goal = Goal(
        objectives=(
            Objective(name="f", direction="maximize", unit="1", threshold=-0.5),
            Objective(name="cost", direction="minimize", unit="EUR", threshold=0.8),
        )
    )
    enc = GoalEncoding(goal)
    assert enc.objective == "y_f, -y_cost"
    assert enc.constraints == ["y_f >= -0.5", "y_cost <= 0.8"]
    s = AxStrategy(square(), goal, 0, AxOptions(initial_points=4))
    config = s.client._experiment.optimization_config
    assert isinstance(config, MultiObjectiveOptimizationConfig)
    assert {(t.metric_names[0], t.op.name, t.bound) for t in config.objective_thresholds} == {
        ("y_f", "GEQ", -0.5),
        ("y_cost", "LEQ", 0.8),
    }
    assert config.outcome_constraints == []
    for _ in range(5):
        (p,) = s.ask(1, [])
        c = p.conditions
        s.tell([Observation(conditions=c, values={"f": (quadratic(c), 0.01), "cost": (float(c["x"]), 0.01)})])
    assert p.generator == "ax:MBM" and set(p.predictions) == {"f", "cost"}


def test_target_objective_minimizes_the_distance() -> None:
    goal = Goal(objectives=(Objective(name="size", direction="target", target=0.4, unit="um"),))
    s = AxStrategy(square(), goal, 0, AxOptions(initial_points=4))
    assert GoalEncoding(goal).objective == "-y_size_distance"
    for _ in range(5):
        (p,) = s.ask(1, [])
        s.tell([Observation(conditions=p.conditions, values={"size": (float(p.conditions["x"]), 0.01)})])
    data = s.client._experiment.lookup_data().df
    assert set(data["metric_name"]) == {"y_size_distance"}
    trial = data.iloc[-1]
    x = float(s.trials()[int(trial["trial_index"])][0]["x"])
    assert trial["mean"] == pytest.approx(abs(x - 0.4)) and trial["sem"] == pytest.approx(0.01)
    assert p.generator == "ax:MBM" and set(p.predictions) == {"size_distance"}


def test_outcome_constraint_passes_through() -> None:
    goal = Goal(
        objectives=(Objective(name="f", direction="maximize", unit="1"),),
        outcome_constraints=(OutcomeConstraint(name="porosity", op="<=", bound=0.02),),
    )
    s = AxStrategy(square(), goal, 0, AxOptions(initial_points=4))
    config = s.client._experiment.optimization_config
    assert config is not None
    (oc,) = config.outcome_constraints
    assert (oc.metric_names, oc.op.name, oc.bound, oc.relative) == (["y_porosity"], "LEQ", 0.02, False)
    for _ in range(5):
        (p,) = s.ask(1, [])
        c = p.conditions
        s.tell(
            [Observation(conditions=c, values={"f": (quadratic(c), 0.01), "porosity": (0.04 * float(c["y"]), 0.002)})]
        )
    assert p.generator == "ax:MBM" and set(p.predictions) == {"f", "porosity"}


def test_outcome_constraint_on_an_objective_is_rejected() -> None:
    goal = Goal(
        objectives=(Objective(name="f", direction="maximize", unit="1"),),
        outcome_constraints=(OutcomeConstraint(name="f", op=">=", bound=0.0),),
    )
    with pytest.raises(StrategyError, match="also an objective"):
        AxStrategy(square(), goal, 0)


def test_composition_simplex_is_respected_by_bo() -> None:
    space = SearchSpace(
        parameters=(
            FloatParameter(name="x", low=0.0, high=1.0, unit="1"),
            CompositionParameter(
                name="comp",
                components=(
                    Component(name="Si", low=0.1, high=0.6),
                    Component(name="Li", high=0.5),
                    Component(name="O", low=0.2, high=0.7),
                ),
            ),
        )
    )
    s = AxStrategy(space, maximize(), 0, AxOptions(initial_points=3))
    for _ in range(4):
        (p,) = s.ask(1, [])  # ask checks every proposal against the space
        c = p.conditions
        assert sum(float(c[n]) for n in ("Si", "Li", "O")) == pytest.approx(1.0, abs=1e-9)
        s.tell([Observation(conditions=c, values={"f": (float(c["Li"]) - (float(c["x"]) - 0.5) ** 2, 0.01)})])
    assert p.generator == "ax:MBM"


def test_mixed_space_with_element_names_builds_and_proposes() -> None:
    space = mixed_space()
    s = AxStrategy(space, maximize(), 0, AxOptions(initial_points=4))
    props = s.ask(3, [])
    assert [p.generator for p in props] == ["ax:CenterOfSearchSpace", "ax:Sobol", "ax:Sobol"]
    assert all(space.check(p.conditions) == [] for p in props)
    assert len({canonical_key(p.conditions) for p in props}) == 3


def test_ax_info_logs_are_silenced(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    s = AxStrategy(square(), maximize(), 0, AxOptions(initial_points=2))
    _campaign(s, 2)
    assert not [r for r in caplog.records if r.name.startswith("ax") and r.levelno < logging.WARNING]


def test_points_outside_the_space_are_skipped_with_a_warning() -> None:
    space = SearchSpace(
        parameters=square().parameters,
        constraints=(LinearConstraint(coefficients={"x": 1.0, "y": 1.0}, bound=1.0),),
    )
    s = AxStrategy(space, maximize(), 0, AxOptions(initial_points=2))
    with pytest.warns(StrategyWarning, match="outside the search space"):
        s.tell([_observe({"x": 0.8, "y": 0.8})])  # e.g. recorded before the constraint was added
    with pytest.warns(StrategyWarning, match="outside the search space"):
        props = s.ask(2, [{"x": 1.5, "y": 0.0}])
    assert s.trials() == {p.model_state["ax_trial"]: (p.conditions, "RUNNING") for p in props}
