"""What a benchmark run evaluates: a problem's space, goal, known optimum and answer for given conditions
(test functions, pools, emulators), and the campaign file of a simulated-lab problem."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from agent.bench.datasets import Pool, fitted_emulator, group_pool, read_table, space_of
from agent.bench.metrics import top_set
from agent.bench.spec import EmulatorProblem, FunctionProblem, PoolProblem, SimProblem, StrategyEntry
from agent.errors import ConfigError
from surrogate.base import ConditionValue
from surrogate.objectives import Goal, Objective
from surrogate.space import FloatParameter, SearchSpace


@dataclass
class Bench:
    """A problem evaluated in-process. ``evaluate`` returns the noise-free value (reported) and the measured
    value told to the strategy; ``sigma`` is the measurement σ told with it."""

    name: str
    kind: str
    space: SearchSpace
    goal: Goal
    evaluate: Callable[[dict[str, ConditionValue], np.random.Generator], tuple[float, float]]
    sigma: float = 0.0
    optimum: float = math.nan  # best achievable score
    pool: Pool | None = None
    top: set[int] = field(default_factory=set)

    @property
    def objective(self) -> Objective:
        return self.goal.objectives[0]

    def score(self, value: float) -> float:
        return self.objective.score(value) if math.isfinite(value) else math.nan


def _function(problem: FunctionProblem) -> Bench:
    import torch
    from botorch.test_functions import Ackley, Branin, Hartmann

    d = problem.dimension
    fn: Any = {"branin": lambda: Branin(), "hartmann6": lambda: Hartmann(dim=6), "ackley": lambda: Ackley(dim=d)}[
        problem.function
    ]()
    bounds = fn.bounds.tolist()
    names = [f"x{i + 1}" for i in range(d)]
    space = SearchSpace(
        parameters=tuple(
            FloatParameter(name=n, low=float(lo), high=float(hi), unit="1")
            for n, lo, hi in zip(names, bounds[0], bounds[1], strict=True)
        )
    )
    goal = Goal(objectives=(Objective(name="y", direction="minimize", unit="1"),))
    sigma = problem.noise_sigma

    def evaluate(c: dict[str, ConditionValue], rng: np.random.Generator) -> tuple[float, float]:
        x = torch.tensor([[float(c[n]) for n in names]], dtype=torch.float64)
        with torch.no_grad():
            v = float(fn.evaluate_true(x).item())
        return v, v + (float(rng.normal(0.0, sigma)) if sigma > 0 else 0.0)

    return Bench(problem.name, "function", space, goal, evaluate, sigma, -float(fn.optimal_value))


def _goal(problem: PoolProblem | EmulatorProblem) -> Goal:
    o = problem.data.objectives[0]
    return Goal(objectives=(Objective(name=o.name, direction=o.direction, unit=o.unit),))


def _pool(problem: PoolProblem) -> Bench:
    table = read_table(problem.data)
    space = space_of(problem, table)
    pool = group_pool(table, space)
    goal = _goal(problem)
    scores = np.array([goal.objectives[0].score(v) for v in pool.values])

    def evaluate(c: dict[str, ConditionValue], rng: np.random.Generator) -> tuple[float, float]:
        k = pool.find(c)
        if k is None:
            raise ValueError(f"conditions {c} are not in the pool")
        v = float(pool.values[k])
        return v, v

    top = {int(i) for i in top_set(scores, problem.top_fraction)}
    return Bench(problem.name, "pool", space, goal, evaluate, 0.0, float(scores.max()), pool, top)


def _emulator(problem: EmulatorProblem) -> Bench:
    em, space, _ = fitted_emulator(problem.model_dump_json())
    sigma = problem.emulator.noise_sigma

    def evaluate(c: dict[str, ConditionValue], rng: np.random.Generator) -> tuple[float, float]:
        v = float(em.predict([c])[0])
        return v, v + (float(rng.normal(0.0, sigma)) if sigma > 0 else 0.0)

    return Bench(problem.name, "emulator", space, _goal(problem), evaluate, sigma)


def build_problem(problem: FunctionProblem | PoolProblem | EmulatorProblem) -> Bench:
    """The in-process problem (simulated-lab problems run through the campaign loop instead)."""
    if isinstance(problem, FunctionProblem):
        return _function(problem)
    if isinstance(problem, PoolProblem):
        return _pool(problem)
    return _emulator(problem)


# -------------------------------------------------------------------------------- simulated lab
def sim_campaign_yaml(
    problem: SimProblem, strategy: StrategyEntry, *, seed: int, budget: int, batch_size: int, store_url: str
) -> dict[str, Any]:
    """The campaign of ``problem`` rewritten for one run: its strategy, seed, budget and lanes, no stopping
    rules, a store of its own; without imaging (and the outcome constraints) when ``imaging`` is off."""
    try:
        data = yaml.safe_load(Path(problem.campaign).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([f"{problem.campaign}: cannot read campaign: {exc}"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{problem.campaign}: a campaign file must be a mapping"])
    data["name"] = "bench"
    data["seed"] = int(seed)
    data["strategy"] = {"name": strategy.name, "options": dict(strategy.options)}
    data.pop("stopping", None)
    budget_ = dict(data.get("budget") or {})
    budget_.update(experiments=int(budget), lanes=int(batch_size))
    budget_.pop("lab_time_h", None)
    budget_.pop("wall_time_s", None)
    data["budget"] = budget_
    data["store"] = {"url": store_url}
    inst = data.get("instruments") or {}
    if not problem.imaging:
        inst.pop("imager", None)
        data.pop("imaging", None)
        data.pop("outcome_constraints", None)
    elif problem.image_size_px is not None and isinstance(inst.get("imager"), dict):
        opts = dict(inst["imager"].get("options") or {})
        opts["size_px"] = problem.image_size_px
        inst["imager"]["options"] = opts
    return data


__all__ = ["Bench", "build_problem", "sim_campaign_yaml"]
