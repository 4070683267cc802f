"""Proposal time per step on pools: matloop's pool ``botorch`` strategy and every pool peer, side by side.

Pools of ``--sizes`` (default 1,000, 2,000 and 5,000) random compositions of 6 components (the shape of the OER
plate: uniform on the simplex), a smooth objective with measurement noise. For each pool size and each number of
observations in ``--observations`` (default 10, 50, 150: random candidates, told before timing), each strategy
(warmed up once on a small pool first) is built and told the observations (``setup_s``, not counted), then asked
for one proposal ``--repeats`` times, the proposal told after each ask; ``ask_s`` is the median wall time of those
asks (``ask_s_max`` the slowest). Torch runs on ``--threads`` threads (default 2: the target is under 1 s per step
on 2 cores). Ax starts at its model (``initial_points: 0``, no centre point), so that every timed ask of every
strategy is a model's ask (the ``generators`` of each row say so).
Prints JSON (and writes it to ``--out``).

``python benchmarks/pool_step_latency.py [--sizes 1000 2000 5000] [--observations 10 50 150] [--repeats 3]
[--threads 2] [--strategies botorch botorch-logei botorch-ucb ax-pool baybe] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from surrogate.base import Observation
from surrogate.objectives import Goal, Objective
from surrogate.pool import make_pool_strategy
from surrogate.space import Component, CompositionParameter, SearchSpace

NAMES = [f"m{i}" for i in range(6)]
SPACE = SearchSpace(
    parameters=(CompositionParameter(name="loading", components=tuple(Component(name=n) for n in NAMES)),)
)
GOAL = Goal(objectives=(Objective(name="overpotential", direction="minimize", unit="V"),))
STRATEGIES = ["botorch", "botorch-logei", "botorch-ucb", "ax-pool", "baybe"]
#: Ax from its model at once (see the module docstring); the others with their defaults
OPTIONS: dict[str, dict[str, Any]] = {"ax-pool": {"initial_points": 0, "initialize_with_center": False}}
CENTRE = np.array([0.35, 0.25, 0.15, 0.1, 0.1, 0.05])
NOISE = 0.002


def pool(n: int, seed: int = 0) -> list[dict[str, float]]:
    x = np.random.default_rng(seed).dirichlet(np.ones(len(NAMES)), size=n)
    x[:, -1] = 1.0 - x[:, :-1].sum(axis=1)
    return [{k: float(v) for k, v in zip(NAMES, row, strict=True)} for row in x]


def value(c: dict[str, Any], rng: np.random.Generator) -> float:
    x = np.array([float(c[n]) for n in NAMES])
    return float(0.3 + ((x - CENTRE) ** 2).sum() + 0.02 * np.sin(8 * x[0]) + rng.normal(0.0, NOISE))


def observe(conds: list[dict[str, Any]], rng: np.random.Generator) -> list[Observation]:
    return [Observation(dict(c), {"overpotential": (value(c, rng), NOISE)}) for c in conds]


def time_strategy(name: str, candidates: list[dict[str, float]], n_obs: int, repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng([n_obs, len(candidates)])
    first = [candidates[i] for i in rng.choice(len(candidates), size=n_obs, replace=False)]
    t0 = time.perf_counter()
    s = make_pool_strategy(name, SPACE, GOAL, 0, candidates, OPTIONS.get(name, {}))
    s.tell(observe(first, rng))
    setup = time.perf_counter() - t0
    times: list[float] = []
    generators: list[str] = []
    for _ in range(repeats):
        t1 = time.perf_counter()
        (p,) = s.ask(1, [])
        times.append(time.perf_counter() - t1)
        generators.append(p.generator)
        s.tell(observe([p.conditions], rng))
    return {
        "strategy": name,
        "candidates": len(candidates),
        "observations": n_obs,
        "ask_s": round(statistics.median(times), 4),
        "ask_s_max": round(max(times), 4),
        "setup_s": round(setup, 3),
        "under_1s": statistics.median(times) < 1.0,
        "generators": sorted(set(generators)),
    }


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("torch", "botorch", "gpytorch", "ax-platform", "baybe"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000])
    ap.add_argument("--observations", type=int, nargs="+", default=[10, 50, 150])
    ap.add_argument("--strategies", nargs="+", default=STRATEGIES)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")  # third-party deprecations and numerical notes; timings are what matter here
    for name in args.strategies:  # first calls import and compile lazily: not what a step costs
        time_strategy(name, pool(200, seed=1), 10, 1)
    results = []
    for size in args.sizes:
        candidates = pool(size)
        for n_obs in args.observations:
            for name in args.strategies:
                r = time_strategy(name, candidates, n_obs, args.repeats)
                print(json.dumps(r), flush=True)
                results.append(r)
    worst = {name: max(r["ask_s"] for r in results if r["strategy"] == name) for name in args.strategies if results}
    report = {
        "benchmark": "pool_step_latency",
        "threads": args.threads,
        "cpus_visible": os.cpu_count(),
        "repeats": args.repeats,
        "versions": versions(),
        "worst_median_ask_s": worst,
        "all_under_1s": {
            name: all(r["under_1s"] for r in results if r["strategy"] == name) for name in args.strategies
        },
        "results": results,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
