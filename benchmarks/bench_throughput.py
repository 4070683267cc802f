"""Throughput of the benchmark harness: simulated campaigns per minute, and the harness's own overhead.

A sweep of one test function (``--problem``, default Branin) × the random and sobol baselines (``--botorch``
adds the BoTorch strategy) × ``--seeds`` seeds, each run a 50-experiment campaign (``--budget``), is run twice
with ``agent.bench.sweep.run_sweep``: on the local process pool with all cores (``--workers``, default
``os.cpu_count()``) and with 1 worker (in this process). Campaigns per minute = runs / sweep wall time × 60; the
pool's time includes starting its worker processes.

The serial sweep is instrumented: ``strategy.ask``, ``strategy.tell`` and the problem's ``evaluate`` are timed
by wrapping them (``agent.bench.runner._make_strategy`` and ``build_problem`` are patched in this process), as
are strategy construction and each whole run (``run_one``). The harness overhead is the sweep's wall time spent
outside ask, tell and evaluation, as a fraction of the total; it is split into the part inside the runs
(bookkeeping, checks, strategy construction, building the tidy rows) and the part around them (expanding the
sweep, writing Parquet parts, concatenating results).

``python benchmarks/bench_throughput.py [--problem branin|hartmann6|ackley] [--budget 50] [--seeds N]
[--workers N] [--botorch]``. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import agent.bench.runner as runner_mod
import agent.bench.sweep as sweep_mod
from agent.bench.spec import parse_sweep


def sweep_yaml(problem: str, budget: int, seeds: int, botorch: bool) -> str:
    strategies = "strategies:\n  - {name: botorch}\n" if botorch else ""
    return (
        f"name: throughput\nproblems:\n  - {{name: {problem}, kind: function, function: {problem}}}\n"
        f"{strategies}seeds: [{', '.join(str(s) for s in range(seeds))}]\nbudgets: [{budget}]\n"
    )


class _Timer:
    def __init__(self) -> None:
        self.s: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.n: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.current = "?"

    def wrap(self, what: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.s[self.current][what] += time.perf_counter() - t
                self.n[self.current][what] += 1

        return timed


class _TimedStrategy:
    """Delegates to ``inner``, timing ask and tell."""

    def __init__(self, inner: Any, timer: _Timer) -> None:
        self._inner = inner
        self.ask = timer.wrap("ask", inner.ask)
        self.tell = timer.wrap("tell", inner.tell)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@contextmanager
def instrumented(timer: _Timer) -> Iterator[None]:
    make, build, run_one = runner_mod._make_strategy, runner_mod.build_problem, sweep_mod.run_one

    def make_strategy(entry: Any, bench: Any, seed: int) -> Any:
        return _TimedStrategy(timer.wrap("strategy_init", make)(entry, bench, seed), timer)

    def build_problem(problem: Any) -> Any:
        bench = build(problem)
        bench.evaluate = timer.wrap("evaluate", bench.evaluate)
        return bench

    def one(run: Any) -> Any:
        timer.current = run.strategy.key
        return timer.wrap("run", run_one)(run)

    runner_mod._make_strategy = make_strategy  # type: ignore[assignment]
    runner_mod.build_problem = build_problem  # type: ignore[assignment]
    sweep_mod.run_one = one  # type: ignore[assignment]
    try:
        yield
    finally:
        runner_mod._make_strategy, runner_mod.build_problem, sweep_mod.run_one = make, build, run_one  # type: ignore[assignment]


def timed_sweep(text: str, workers: int) -> tuple[float, int]:
    spec = parse_sweep(text)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        df = sweep_mod.run_sweep(spec, Path(d), workers=workers, resume=False)
        wall = time.perf_counter() - t
    if df.attrs.get("failed"):
        raise SystemExit(f"runs failed: {df.attrs['failed']}")
    return wall, int(df["run_id"].nunique())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problem", default="branin", choices=["branin", "hartmann6", "ackley"])
    ap.add_argument("--budget", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=None, help="seeds per strategy (default: 2 × workers, at least 4)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--botorch", action="store_true", help="add the BoTorch strategy (slow: a GP fit per experiment)")
    args = ap.parse_args()
    seeds = args.seeds or max(4, 2 * args.workers)
    text = sweep_yaml(args.problem, args.budget, seeds, args.botorch)

    # warm-up: imports and first-call costs out of the serial measurement
    timed_sweep(sweep_yaml(args.problem, 3, 1, args.botorch), 1)

    timer = _Timer()
    with instrumented(timer):
        serial_wall, runs = timed_sweep(text, 1)
    parallel_wall, runs_p = timed_sweep(text, args.workers) if args.workers > 1 else (serial_wall, runs)
    assert runs_p == runs
    # the pool's wall time includes starting its processes (imports): a sweep 3 × larger separates that fixed
    # cost from the steady rate
    big_wall, big_runs = (
        timed_sweep(sweep_yaml(args.problem, args.budget, 3 * seeds, args.botorch), args.workers)
        if args.workers > 1
        else (serial_wall, runs)
    )
    rate = (big_runs - runs) / (big_wall - parallel_wall) if big_wall > parallel_wall and big_runs > runs else None

    tot: dict[str, float] = defaultdict(float)
    per_strategy = {}
    for strat, d in sorted(timer.s.items()):
        for k, v in d.items():
            tot[k] += v
        inside = d["ask"] + d["tell"] + d["evaluate"]
        per_strategy[strat] = {
            "runs": timer.n[strat]["run"],
            "run_s_mean": d["run"] / max(1, timer.n[strat]["run"]),
            "ask_s": d["ask"],
            "tell_s": d["tell"],
            "evaluate_s": d["evaluate"],
            "strategy_init_s": d["strategy_init"],
            "harness_fraction_of_run": (d["run"] - inside) / d["run"] if d["run"] else None,
        }
    work = tot["ask"] + tot["tell"] + tot["evaluate"]
    result = {
        "benchmark": "bench_throughput",
        "problem": args.problem,
        "budget": args.budget,
        "strategies": sorted(timer.s),
        "runs": runs,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "machine": platform.platform(),
        "serial": {"workers": 1, "wall_s": serial_wall, "campaigns_per_min": runs / serial_wall * 60},
        "parallel": {
            "workers": args.workers,
            "wall_s": parallel_wall,
            "campaigns_per_min": runs / parallel_wall * 60,
            "larger_sweep": {"runs": big_runs, "wall_s": big_wall, "campaigns_per_min": big_runs / big_wall * 60},
            "steady_campaigns_per_min": None if rate is None else rate * 60,
            "fixed_cost_s": None if rate is None else parallel_wall - runs / rate,
        },
        "speedup": serial_wall / parallel_wall,
        "steady_speedup": None if rate is None else rate * serial_wall / runs,
        "overhead": {
            "note": "serial sweep, instrumented; harness = wall time outside strategy.ask/tell and evaluation",
            "total_s": serial_wall,
            "ask_s": tot["ask"],
            "tell_s": tot["tell"],
            "evaluate_s": tot["evaluate"],
            "strategy_init_s": tot["strategy_init"],
            "runs_s": tot["run"],
            "harness_fraction": (serial_wall - work) / serial_wall,
            "harness_in_runs_fraction": (tot["run"] - work) / serial_wall,
            "harness_around_runs_fraction": (serial_wall - tot["run"]) / serial_wall,
            "harness_s_per_experiment": (serial_wall - work) / (runs * args.budget),
        },
        "per_strategy": per_strategy,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
