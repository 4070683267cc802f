"""Benchmark metrics as pure functions on arrays and DataFrames.

The pool metrics follow Liang et al. 2021 (npj Comput. Mater. 7:188): the top set is the ⌈0.05·N⌉ best
pool points; Top%(i) is the fraction of it found after i experiments (initial points included); random
sampling without replacement finds on average E[Top%(i)] = i/N; the enhancement factor is
EF(i) = Top%(i) / (i/N) and the acceleration factor AF(a) = n_random(a) / n(a), where n(a) is the first
experiment with Top% ≥ a and n_random(a) = ⌈a·N⌉ (the first i with i/N ≥ a). Seeds are aggregated by
medians with seeded bootstrap intervals.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

_EPS = 1e-9
AF_LEVELS = (0.5, 0.8)
TOP_LEVELS = (0.5, 0.8, 1.0)
GROUP = ["problem", "problem_kind", "strategy", "budget", "batch_size"]


def top_count(n_pool: int, fraction: float = 0.05) -> int:
    """Size of the top set: ⌈fraction·N⌉ (at least 1 for a non-empty pool)."""
    if n_pool <= 0:
        return 0
    return max(1, math.ceil(fraction * n_pool - _EPS))


def top_set(scores: ArrayLike, fraction: float = 0.05) -> NDArray[np.int64]:
    """Indices of the ⌈fraction·N⌉ best pool points (larger score is better; ties broken by index)."""
    s = np.asarray(scores, dtype=float)
    order = np.lexsort((np.arange(len(s)), -s))
    return np.sort(order[: top_count(len(s), fraction)]).astype(np.int64)


def top_fraction_curve(chosen: Sequence[int] | ArrayLike, top: Iterable[int]) -> NDArray[np.float64]:
    """Top%(i) for i = 1..len(chosen): the fraction of ``top`` among the first i chosen pool indices."""
    top_set_ = {int(t) for t in top}
    if not top_set_:
        raise ValueError("the top set is empty")
    hits = np.array([int(c) in top_set_ for c in np.asarray(chosen, dtype=np.int64)], dtype=float)
    return np.cumsum(hits) / len(top_set_)


def random_top_fraction(i: ArrayLike, n_pool: int) -> NDArray[np.float64]:
    """E[Top%(i)] of random sampling without replacement from a pool of N: i/N (capped at 1)."""
    return np.minimum(np.asarray(i, dtype=float) / float(n_pool), 1.0)


def enhancement_factor(curve: ArrayLike, n_pool: int) -> NDArray[np.float64]:
    """EF(i) = Top%(i) / (i/N) for i = 1..len(curve)."""
    c = np.asarray(curve, dtype=float)
    return c / random_top_fraction(np.arange(1, len(c) + 1), n_pool)


def experiments_to(curve: ArrayLike, level: float) -> float:
    """The first experiment (1-based) at which ``curve`` ≥ ``level``; NaN if never."""
    c = np.asarray(curve, dtype=float)
    hit = np.flatnonzero(c >= level - _EPS)
    return float(hit[0] + 1) if len(hit) else math.nan


def random_experiments_to(level: float, n_pool: int) -> float:
    """n_random(a) = ⌈a·N⌉, the first i with E[Top%(i)] = i/N ≥ a."""
    return float(max(1, math.ceil(level * n_pool - _EPS)))


def acceleration_factor(curve: ArrayLike, n_pool: int, level: float) -> float:
    """AF(a) = n_random(a) / n_strategy(a); NaN when the strategy never reaches ``level``."""
    n = experiments_to(curve, level)
    return random_experiments_to(level, n_pool) / n if math.isfinite(n) else math.nan


def best_so_far(scores: ArrayLike) -> NDArray[np.float64]:
    """Running maximum of ``scores`` ignoring NaN (failures); NaN before the first finite score."""
    s = np.asarray(scores, dtype=float)
    out = np.full(len(s), math.nan)
    best = -math.inf
    for k, v in enumerate(s):
        if math.isfinite(v) and v > best:
            best = v
        out[k] = best if math.isfinite(best) else math.nan
    return out


def bootstrap_median_ci(
    values: ArrayLike, level: float = 0.9, seed: int = 0, n_boot: int = 2000
) -> tuple[float, float, float]:
    """Median and percentile-bootstrap ``level`` interval of the finite ``values`` (seeded, so repeatable).
    NaN values (a seed that never reached a level) are dropped; all NaN gives NaNs."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    med = float(np.median(v))
    if len(v) == 1:
        return med, med, med
    rng = np.random.default_rng(seed)
    meds = np.median(v[rng.integers(0, len(v), size=(n_boot, len(v)))], axis=1)
    alpha = (1.0 - level) / 2.0
    return med, float(np.quantile(meds, alpha)), float(np.quantile(meds, 1.0 - alpha))


def _rows(keys: dict[str, object], metric: str, experiment: int, values: ArrayLike, seed: int) -> dict[str, object]:
    v = np.asarray(values, dtype=float)
    med, lo, hi = bootstrap_median_ci(v, seed=seed)
    return {
        **keys,
        "metric": metric,
        "experiment": experiment,
        "median": med,
        "lo": lo,
        "hi": hi,
        "n": int(np.isfinite(v).sum()),
        "n_runs": len(v),
    }


def summarize(df: pd.DataFrame, seed: int = 0, targets: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Seed aggregates of a tidy results table, in long form: one row per problem × strategy × budget ×
    batch size × metric × experiment with the median, the 90 % bootstrap interval (lo, hi), the number of
    runs with a finite value (n) and of runs (n_runs).

    Per experiment i (``experiment`` ≥ 1): ``best_so_far``, ``regret``, ``top_frac``, ``EF`` (pool only).
    Per run (``experiment`` = 0): ``experiments_to_top_{a}`` and ``lab_time_h_to_top_{a}`` for a in
    0.5/0.8/1.0, ``AF_{a}`` for a in 0.5/0.8 (pool only), ``final_best_so_far``, ``final_regret``; and with
    ``targets`` (problem → score to reach, larger is better) ``experiments_to_target`` and ``lab_time_h_to_target``
    (NaN for a run that never reaches it)."""
    out: list[dict[str, object]] = []
    for key, g in df.groupby(GROUP, sort=True):
        keys = dict(zip(GROUP, key, strict=True))
        pool = keys["problem_kind"] == "pool"
        n_pool = int(g["n_pool"].iloc[0]) if pool else 0
        runs = {rid: r.sort_values("experiment") for rid, r in g.groupby("run_id", sort=True)}
        for metric in ("best_so_far", "regret", "top_frac"):
            if metric == "top_frac" and not pool:
                continue
            wide = g.pivot_table(index="experiment", columns="run_id", values=metric, aggfunc="first", dropna=False)
            for i, row in wide.iterrows():
                out.append(_rows(keys, metric, int(i), row.to_numpy(), seed))  # type: ignore[call-overload]
        if pool:
            ef = {rid: enhancement_factor(r["top_frac"].to_numpy(), n_pool) for rid, r in runs.items()}
            n_max = max(len(e) for e in ef.values())
            for i in range(n_max):
                vals = [e[i] if i < len(e) else math.nan for e in ef.values()]
                out.append(_rows(keys, "EF", i + 1, vals, seed))
            for a in TOP_LEVELS:
                n_to = [experiments_to(r["top_frac"].to_numpy(), a) for r in runs.values()]
                out.append(_rows(keys, f"experiments_to_top_{a:g}", 0, n_to, seed))
                t_to = [
                    float(r["lab_time_h"].to_numpy()[int(n) - 1]) if math.isfinite(n) else math.nan
                    for n, r in zip(n_to, runs.values(), strict=True)
                ]
                out.append(_rows(keys, f"lab_time_h_to_top_{a:g}", 0, t_to, seed))
            for a in AF_LEVELS:
                af = [acceleration_factor(r["top_frac"].to_numpy(), n_pool, a) for r in runs.values()]
                out.append(_rows(keys, f"AF_{a:g}", 0, af, seed))
        target = (targets or {}).get(str(keys["problem"]))
        if target is not None:
            n_to = [experiments_to(r["best_so_far"].fillna(-math.inf).to_numpy(), target) for r in runs.values()]
            out.append(_rows(keys, "experiments_to_target", 0, n_to, seed))
            t_to = [
                float(r["lab_time_h"].to_numpy()[int(n) - 1]) if math.isfinite(n) else math.nan
                for n, r in zip(n_to, runs.values(), strict=True)
            ]
            out.append(_rows(keys, "lab_time_h_to_target", 0, t_to, seed))
        for metric in ("best_so_far", "regret"):
            last = [float(r[metric].to_numpy()[-1]) for r in runs.values()]
            out.append(_rows(keys, f"final_{metric}", 0, last, seed))
    cols = [*GROUP, "metric", "experiment", "median", "lo", "hi", "n", "n_runs"]
    return pd.DataFrame.from_records(out, columns=cols)


__all__ = [
    "acceleration_factor",
    "best_so_far",
    "bootstrap_median_ci",
    "enhancement_factor",
    "experiments_to",
    "random_experiments_to",
    "random_top_fraction",
    "summarize",
    "top_count",
    "top_fraction_curve",
    "top_set",
]
