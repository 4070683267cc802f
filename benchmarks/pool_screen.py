"""Screening pool strategies cheaply: experiments needed to find a fraction of the top 5 % of a pool (Liang et al.
protocol: 2 random initial candidates shared by all strategies of a seed, then one experiment per cycle), each run
stopped as soon as it gets there. Prints one JSON line per run, then a summary per problem and strategy (median,
mean) and, for each strategy against the first one named, the paired median reduction with a 90 % bootstrap
interval and a one-sided Wilcoxon p. `matloop bench` runs full budgets and writes the report; this is for
choosing what to put in a sweep.

``python benchmarks/pool_screen.py --sweep benchmarks/bench_sweeps/olympus_pool.yaml --problems photo_pce10
--strategies 'botorch:{"acquisition": "UCB"}' botorch-ucb --seeds 0-19 [--level 0.8] [--cap 800] [--workers 2]``
A strategy is a pool strategy name with optional JSON options after a colon.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from multiprocessing import Pool as ProcessPool
from typing import Any


def run(job: tuple[str, str, str, int, float, int]) -> dict[str, Any]:
    sweep, problem_name, strategy, seed, level, cap = job
    import numpy as np
    import torch

    from agent.bench.problems import build_problem
    from agent.bench.runner import initial_pool_indices
    from agent.bench.spec import load_sweep
    from surrogate.base import Observation
    from surrogate.pool import make_pool_strategy

    torch.set_num_threads(1)
    spec = load_sweep(sweep)
    bench = build_problem(next(p for p in spec.problems if p.name == problem_name))
    pool = bench.pool
    assert pool is not None, f"{problem_name} is not a pool problem"
    name, _, raw = strategy.partition(":")
    chooser = make_pool_strategy(name, bench.space, bench.goal, seed, list(pool.conditions), json.loads(raw or "{}"))
    need = math.ceil(level * len(bench.top))
    used: set[int] = set()
    found = 0

    def measure(conditions: list[dict[str, Any]]) -> None:
        nonlocal found
        obs = []
        for c in conditions:
            idx = pool.find(dict(c))
            assert idx is not None and idx not in used, f"{strategy} proposed {c} outside the pool or twice"
            used.add(idx)
            found += idx in bench.top
            _, measured = bench.evaluate(dict(c), np.random.default_rng([seed, 2, len(used)]))
            obs.append(Observation(dict(c), {bench.objective.name: (measured, bench.sigma)}))
        chooser.tell(obs)

    measure([pool.conditions[i] for i in initial_pool_indices(len(pool), seed, 2)])
    while found < need and len(used) < min(cap, len(pool)):
        measure([p.conditions for p in chooser.ask(1, [])])
    return {"problem": problem_name, "strategy": strategy, "seed": seed, "n": len(used) if found >= need else None}


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    return out


def summarize(rows: list[dict[str, Any]], strategies: list[str]) -> dict[str, Any]:
    from agent.bench.verdict import paired_reduction

    by: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        by[r["problem"]][r["strategy"]][r["seed"]] = math.inf if r["n"] is None else r["n"]
    out: dict[str, Any] = {}
    for problem, runs in by.items():
        table: dict[str, Any] = {s: {"median": statistics.median(v.values()), "seeds": len(v)} for s, v in runs.items()}
        ref = runs[strategies[0]]
        for s in strategies[1:]:
            seeds = sorted(set(ref) & set(runs[s]))
            reduction, (lo, hi), p = paired_reduction([ref[k] for k in seeds], [runs[s][k] for k in seeds])
            table[s]["first_needs_fewer_by"] = round(reduction, 3)
            table[s]["ci90"] = [round(lo, 3), round(hi, 3)]
            table[s]["p_one_sided"] = p
        out[problem] = table
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default="benchmarks/bench_sweeps/olympus_pool.yaml")
    ap.add_argument("--problems", nargs="+", required=True)
    ap.add_argument("--strategies", nargs="+", required=True)
    ap.add_argument("--seeds", default="0-19")
    ap.add_argument("--level", type=float, default=0.8)
    ap.add_argument("--cap", type=int, default=800, help="give up after this many experiments")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    jobs = [
        (args.sweep, p, s, k, args.level, args.cap)
        for p in args.problems
        for s in args.strategies
        for k in _seeds(args.seeds)
    ]
    rows = []
    with ProcessPool(args.workers) as workers:
        for row in workers.imap_unordered(run, jobs):
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(json.dumps({"summary": summarize(rows, args.strategies)}, indent=1))


if __name__ == "__main__":
    main()
