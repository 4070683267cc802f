"""Time to propose after n observations: the direct BoTorch strategy and Ax's default, side by side in one run.

For n in ``--n`` (default 20, 100, 300, 1000) random points of Hartmann-6 (d = 6, noise σ = 0.01, the σ reported),
each strategy is told the n observations and asked for q = 1 and q = 4 proposals; the wall time of each ask
(model fit, acquisition optimization and decoding) is the median of ``--repeats`` fresh strategies. The BoTorch
ask is split into fitting and the rest. Also the SAAS (Pyro NUTS) fit time at n = 30, d = 20. Prints JSON.

``python benchmarks/proposal_latency.py [--n 20 100 300 1000] [--repeats 3] [--threads 2] [--no-ax] [--no-saas]``
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import warnings
from typing import Any

import numpy as np
import torch
from botorch.test_functions import Hartmann

from surrogate.base import Observation
from surrogate.objectives import Goal, Objective
from surrogate.registry import make_strategy
from surrogate.space import FloatParameter, SearchSpace

D = 6
SPACE = SearchSpace(parameters=tuple(FloatParameter(name=f"x{i}", low=0.0, high=1.0, unit="1") for i in range(D)))
GOAL = Goal(objectives=(Objective(name="y", direction="maximize", unit="1"),))
#: Ax's generation strategy counts only the trials it generated itself towards leaving its Sobol step, so with
#: attached observations it would answer the first ask with a Sobol point: start it at the model instead
OPTIONS: dict[str, dict[str, Any]] = {
    "botorch": {"initial_points": 5},
    "ax": {"initial_points": 0, "initialize_with_center": False},
}


def observations(n: int, seed: int) -> list[Observation]:
    rng = np.random.default_rng(seed)
    X = rng.random((n, D))
    y = -Hartmann(dim=D)(torch.tensor(X)).numpy() + rng.normal(0, 0.01, n)
    return [
        Observation({f"x{i}": float(x[i]) for i in range(D)}, {"y": (float(v), 0.01)})
        for x, v in zip(X, y, strict=True)
    ]


def time_ask(name: str, obs: list[Observation], q: int, seed: int) -> dict[str, float]:
    s = make_strategy(name, SPACE, GOAL, seed, OPTIONS[name])
    s.tell(obs)
    t0 = time.perf_counter()
    proposals = s.ask(q, [])
    total = time.perf_counter() - t0
    out = {"s": total}
    assert all("sobol" not in p.generator.lower() for p in proposals), [p.generator for p in proposals]
    fit = proposals[0].model_state.get("fit_s") if proposals else None
    if fit is not None:
        out["fit_s"] = float(fit)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[20, 100, 300, 1000])
    ap.add_argument("--q", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-ax", action="store_true")
    ap.add_argument("--no-saas", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    result: dict[str, Any] = {
        "d": D,
        "threads": args.threads,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "repeats": args.repeats,
        "propose_s": [],
    }
    names = ["botorch"] + ([] if args.no_ax else ["ax"])
    for name in names:  # warm-up: imports, first-call dispatch and caches stay out of the timings
        time_ask(name, observations(10, seed=0), 1, seed=0)
    for n in args.n:
        obs = observations(n, seed=n)
        for q in args.q:
            row: dict[str, Any] = {"n": n, "q": q}
            for name in names:
                runs = [time_ask(name, obs, q, seed=r) for r in range(args.repeats)]
                row[name] = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
            if "ax" in row:
                row["ax_over_botorch"] = round(row["ax"]["s"] / row["botorch"]["s"], 2)
            result["propose_s"].append(row)
            print(json.dumps(row), flush=True)
    if not args.no_saas:
        from surrogate.saas import saas_fit_seconds

        result["saas_fit_s"] = {"n": 30, "d": 20, "s": round(saas_fit_seconds(n=30, d=20, seed=0), 2)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
