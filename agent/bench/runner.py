"""One benchmark run: a strategy on a problem for one seed, budget and batch size, as rows of the tidy table.

The initial points depend only on the seed and the problem (never on the strategy) and are told to the
strategy before its first ask; then each ask proposes ``batch_size`` points until the budget is spent.
Test functions, pools and emulators are evaluated in-process; simulated-lab problems run the full
campaign loop on the virtual clock in a temporary SQLite store.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from agent.bench.metrics import best_so_far as running_best
from agent.bench.problems import Bench, build_problem, sim_campaign_yaml
from agent.bench.spec import Problem, SimProblem, StrategyEntry
from agent.errors import MatloopError
from surrogate.base import Conditions, ConditionValue, Observation, Proposal, Strategy
from surrogate.encoding import canonical_key
from surrogate.objectives import Goal
from surrogate.space import SearchSpace

COLUMNS: dict[str, str] = {
    "sweep": "str",
    "problem": "str",
    "problem_kind": "str",
    "strategy": "str",
    "seed": "int64",
    "budget": "int64",
    "batch_size": "int64",
    "run_id": "str",
    "experiment": "int64",
    "initial": "bool",
    "failed": "bool",
    "value": "float64",
    "score": "float64",
    "best_so_far": "float64",
    "optimum": "float64",
    "regret": "float64",
    "n_pool": "int64",
    "n_top": "int64",
    "top_found": "int64",
    "top_frac": "float64",
    "lab_time_h": "float64",
    "wall_s": "float64",
    "conditions": "str",
}
"""The tidy table schema: one row per run per experiment, exactly these columns and dtypes."""

PoolFactory = Callable[..., Strategy]
pool_factory: PoolFactory | None = None
"""Overrides ``surrogate.pool.make_pool_strategy`` (tests); None: the real one."""

_INITIAL_SALT = 0x1B17  # initial points: from the seed alone


@dataclass(frozen=True)
class RunSpec:
    """Everything one run depends on (its hash is the run id)."""

    sweep: str
    problem: Problem
    strategy: StrategyEntry
    seed: int
    budget: int
    batch_size: int
    initial_points: int
    experiment_hours: float

    def payload(self) -> dict[str, Any]:
        return {
            "sweep": self.sweep,
            "problem": self.problem.model_dump(mode="json"),
            "strategy": self.strategy.model_dump(mode="json"),
            "seed": self.seed,
            "budget": self.budget,
            "batch_size": self.batch_size,
            "initial_points": self.initial_points,
            "experiment_hours": self.experiment_hours,
        }

    @property
    def run_id(self) -> str:
        text = json.dumps(self.payload(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        return (
            f"{self.problem.name} × {self.strategy.key} seed {self.seed} budget {self.budget} batch {self.batch_size}"
        )


class BenchError(MatloopError):
    """A run broke a rule of the benchmark (a point outside the pool, a point chosen twice)."""


def _make_pool_strategy(
    name: str,
    space: SearchSpace,
    goal: Goal,
    seed: int,
    candidates: list[dict[str, ConditionValue]],
    options: dict[str, Any],
) -> Strategy:
    factory = pool_factory
    if factory is None:
        try:
            factory = importlib.import_module("surrogate.pool").make_pool_strategy
        except ModuleNotFoundError as exc:
            raise BenchError("pool problems need surrogate.pool.make_pool_strategy, which is not installed") from exc
    assert factory is not None
    return factory(name, space, goal, seed, candidates, options)


def _make_strategy(entry: StrategyEntry, bench: Bench, seed: int) -> Strategy:
    if bench.pool is not None:
        options = entry.pool_options if entry.pool_options is not None else entry.options
        return _make_pool_strategy(
            entry.name, bench.space, bench.goal, seed, list(bench.pool.conditions), dict(options)
        )
    from surrogate.registry import make_strategy

    return make_strategy(entry.name, bench.space, bench.goal, seed, dict(entry.options))


def initial_conditions(space: SearchSpace, seed: int, k: int) -> list[dict[str, ConditionValue]]:
    """``k`` uniform random points of ``space`` from ``seed`` alone (the same for every strategy)."""
    if k == 0:
        return []
    from surrogate.random_search import RandomStrategy

    return [p.conditions for p in RandomStrategy(space, None, seed=seed * 65_537 + _INITIAL_SALT).ask(k, [])]


def initial_pool_indices(n_pool: int, seed: int, k: int) -> list[int]:
    """``k`` distinct pool indices from ``seed`` alone."""
    rng = np.random.default_rng([seed, _INITIAL_SALT])
    return [int(i) for i in rng.choice(n_pool, size=min(k, n_pool), replace=False)]


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
    return df.astype(COLUMNS)


def _finish(
    run: RunSpec, kind: str, records: list[dict[str, Any]], optimum: float, n_pool: int, top: set[int]
) -> pd.DataFrame:
    """Adds the cumulative columns to per-experiment ``records`` (value, score, failed, pool index, times)."""
    scores = [r["score"] for r in records]
    best = running_best(scores)
    found = 0
    rows = []
    for k, (r, b) in enumerate(zip(records, best, strict=True)):
        if r.get("pool_index") is not None and r["pool_index"] in top:
            found += 1
        rows.append(
            {
                "sweep": run.sweep,
                "problem": run.problem.name,
                "problem_kind": kind,
                "strategy": run.strategy.key,
                "seed": run.seed,
                "budget": run.budget,
                "batch_size": run.batch_size,
                "run_id": run.run_id,
                "experiment": k + 1,
                "initial": r["initial"],
                "failed": r["failed"],
                "value": r["value"],
                "score": r["score"],
                "best_so_far": b,
                "optimum": optimum,
                "regret": optimum - b if math.isfinite(optimum) and math.isfinite(b) else math.nan,
                "n_pool": n_pool,
                "n_top": len(top),
                "top_found": found,
                "top_frac": found / len(top) if top else math.nan,
                "lab_time_h": r["lab_time_h"],
                "wall_s": r["wall_s"],
                "conditions": json.dumps(r["conditions"], sort_keys=True),
            }
        )
    return _frame(rows)


def run_one(run: RunSpec) -> pd.DataFrame:
    """Runs ``run`` and returns its rows of the tidy table."""
    if isinstance(run.problem, SimProblem):
        return _run_sim(run, run.problem)
    return _run_bench(run, build_problem(run.problem))


# ------------------------------------------------------------------------------------ in-process
def _run_bench(run: RunSpec, bench: Bench) -> pd.DataFrame:
    t0 = time.perf_counter()
    strategy = _make_strategy(run.strategy, bench, run.seed)
    pool = bench.pool
    budget = min(run.budget, len(pool)) if pool is not None else run.budget
    records: list[dict[str, Any]] = []
    used: set[Any] = set()
    name = bench.objective.name

    def measure(conds: Sequence[dict[str, ConditionValue]], initial: bool) -> None:
        obs = []
        for c in conds:
            key = canonical_key(c)
            idx = pool.find(dict(c)) if pool is not None else None
            if pool is not None and idx is None:
                raise BenchError(f"{run.describe()}: {run.strategy.key} proposed {dict(c)}, which is not in the pool")
            if key in used:
                raise BenchError(f"{run.describe()}: {run.strategy.key} proposed {dict(c)} a second time")
            problems = bench.space.check(c)
            if problems:
                raise BenchError(
                    f"{run.describe()}: {run.strategy.key} proposed a point outside the space: {'; '.join(problems)}"
                )
            used.add(key)
            rng = np.random.default_rng([run.seed, 2, len(records)])
            true, measured = bench.evaluate(dict(c), rng)
            obs.append(Observation(dict(c), {name: (measured, bench.sigma)}))
            records.append(
                {
                    "initial": initial,
                    "failed": False,
                    "value": true,
                    "score": bench.score(true),
                    "pool_index": idx,
                    "lab_time_h": (len(records) + 1) * run.experiment_hours,
                    "wall_s": time.perf_counter() - t0,
                    "conditions": dict(c),
                }
            )
        strategy.tell(obs)

    k0 = min(run.initial_points, budget)
    if pool is not None:
        first = [pool.conditions[i] for i in initial_pool_indices(len(pool), run.seed, k0)]
    else:
        first = initial_conditions(bench.space, run.seed, k0)
    if first:
        measure(first, initial=True)
    while len(records) < budget:
        q = min(run.batch_size, budget - len(records))
        proposals: list[Proposal] = strategy.ask(q, [])
        if not proposals:
            break
        measure([p.conditions for p in proposals[:q]], initial=False)
    return _finish(run, bench.kind, records, bench.optimum, len(pool) if pool is not None else 0, bench.top)


# ------------------------------------------------------------------------------------ simulated lab
class InitialFirst:
    """Proposes the given initial points first (generator ``initial``), then asks the wrapped strategy;
    everything is told to the wrapped strategy, so it learns the initial points before its first ask."""

    def __init__(self, inner: Strategy, initial: list[dict[str, ConditionValue]]) -> None:
        self.inner = inner
        self.queue = list(initial)

    def ask(self, n: int, pending: Sequence[Conditions]) -> list[Proposal]:
        out = [Proposal(conditions=c, generator="initial") for c in self.queue[:n]]
        self.queue = self.queue[n:]
        if len(out) < n:
            out += self.inner.ask(n - len(out), [*pending, *(p.conditions for p in out)])
        return out

    def tell(self, results: Sequence[Observation]) -> None:
        self.inner.tell(results)


def _run_sim(run: RunSpec, problem: SimProblem) -> pd.DataFrame:
    from agent.assemble import build_lab, build_strategy
    from agent.campaign import Campaign
    from agent.loop import Agent, Update
    from agent.spec import spec_hash
    from agent.vclock import VirtualTimeLoop

    t0 = time.perf_counter()
    done_at: dict[int, float] = {}

    def observer(u: Update) -> None:
        if u.kind in ("completed", "failed") and u.experiment is not None:
            done_at[u.experiment.index] = time.perf_counter() - t0

    with tempfile.TemporaryDirectory(prefix="matloop-bench-") as tmp:
        data = sim_campaign_yaml(
            problem,
            run.strategy,
            seed=run.seed,
            budget=run.budget,
            batch_size=run.batch_size,
            store_url="sqlite:///bench.db",
        )
        path = Path(tmp) / "bench.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        camp = Campaign.from_yaml(path)
        try:
            spec = camp.spec
            # the experiment keys (which seed the simulated lab's noise) derive from this hash: taken from the
            # problem and seed alone, every strategy meets the same lab (common random numbers)
            lab_hash = spec_hash(json.dumps([problem.model_dump(mode="json"), run.seed], sort_keys=True))
            row = camp.store.create_campaign(spec.name, camp.yaml_text, lab_hash, spec.seed, camp.source)
            lab = build_lab(spec, camp.location.workdir)
            initial = initial_conditions(spec.space, run.seed, min(run.initial_points, run.budget))
            strategy = InitialFirst(build_strategy(spec), initial)
            agent = Agent(spec, camp.store, row, lab, strategy, observer=observer)
            with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
                runner.run(agent.run())
            table = camp.table()
        finally:
            camp.close()
    return _sim_rows(run, spec, table, done_at, problem.reference)


def _sim_rows(
    run: RunSpec, spec: Any, table: pd.DataFrame, done_at: dict[int, float], reference: dict[str, float] | None
) -> pd.DataFrame:
    """Rows from the campaign's experiment table, in order of completion (lab time)."""
    t = table[table["state"].isin(["completed", "failed"])].copy()
    t = t.sort_values(["lab_time_end_h", "experiment"], kind="stable")
    objectives = list(spec.objectives)
    constraints = list(spec.outcome_constraints)
    names = spec.space.input_names()
    ref = None
    if len(objectives) > 1:
        ref = []
        for o in objectives:
            r = (reference or {}).get(o.name, o.threshold)
            if r is None:
                raise BenchError(
                    f"problem {run.problem.name}: objective {o.name} has no threshold; give "
                    f"reference.{o.name} in the sweep"
                )
            ref.append(o.score(float(r)))
    front: list[list[float]] = []
    records: list[dict[str, Any]] = []
    wall = 0.0
    for _, e in t.iterrows():
        failed = e["state"] == "failed"
        vals = {o.name: float(e.get(f"y.{o.name}", math.nan)) for o in objectives}
        feasible = not failed and all(
            math.isfinite(float(e.get(f"y.{c.name}", math.nan))) and c.satisfied(float(e[f"y.{c.name}"]))
            for c in constraints
        )
        if ref is None:
            o = objectives[0]
            value = math.nan if failed else vals[o.name]
            score = o.score(value) if math.isfinite(value) else math.nan
            if not feasible:
                score = math.nan if failed else score
        else:
            if feasible and all(math.isfinite(v) for v in vals.values()):
                front.append([o.score(vals[o.name]) for o in objectives])
            value = math.nan if failed else _hypervolume(front, ref)
            score = value
        wall = max(wall, done_at.get(int(e["experiment"]), wall))
        cond = {n: _plain(e.get(f"x.{n}")) for n in names}
        records.append(
            {
                "initial": e["generator"] == "initial",
                "failed": bool(failed),
                "value": value,
                "score": score if feasible or ref is not None else math.nan,
                "pool_index": None,
                "lab_time_h": float(e["lab_time_end_h"]) if e["lab_time_end_h"] is not None else math.nan,
                "wall_s": wall,
                "conditions": cond,
            }
        )
    return _finish(run, "sim", records, math.nan, 0, set())


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def _hypervolume(points: list[list[float]], ref: list[float]) -> float:
    """Hypervolume (maximization) of ``points`` above ``ref``."""
    pts = [p for p in points if all(x > r for x, r in zip(p, ref, strict=True))]
    if not pts:
        return 0.0
    import torch
    from botorch.utils.multi_objective.hypervolume import Hypervolume
    from botorch.utils.multi_objective.pareto import is_non_dominated

    y = torch.tensor(pts, dtype=torch.float64)
    return float(Hypervolume(torch.tensor(ref, dtype=torch.float64)).compute(y[is_non_dominated(y)]))


__all__ = ["COLUMNS", "BenchError", "InitialFirst", "RunSpec", "initial_conditions", "initial_pool_indices", "run_one"]
