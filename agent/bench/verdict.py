"""Two verdicts on a sweep's results, paired by seed: does a strategy (matloop's default) need fewer experiments
than the best peer to find a fraction of a pool's top set (Liang et al. 2021 protocol), and is it never worse
than random search on any problem. `benchmarks/benchmarks_doc.py` prints both into ``docs/benchmarks.md``."""

from __future__ import annotations

import math
import random
import statistics
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from agent.bench.report import Section, StrategyRuns, sections

#: bootstrap resamples and seed of the interval of a median reduction (the same table gives the same verdict)
N_BOOT = 4000
BOOT_SEED = 0
ALPHA = 0.05


@dataclass(frozen=True)
class Versus:
    """``strategy`` against ``other`` on one pool section: median experiments to the level (inf: not within the
    budget), the relative reduction ``1 - median(strategy) / median(other)`` with a 90 % paired-bootstrap
    interval, and the one-sided Wilcoxon p that ``strategy`` needs fewer."""

    problem: str
    budget: int
    batch_size: int
    strategy: str
    other: str
    level: float
    n_pairs: int
    median: float
    other_median: float
    reduction: float
    ci90: tuple[float, float]
    p_fewer: float


@dataclass(frozen=True)
class RandomCheck:
    """``strategy`` against random search on one section, on the section's criterion (pool: experiments to the
    level, fewer is better; otherwise the final best score, larger is better). ``worse``: the one-sided Wilcoxon
    test says the strategy is worse at p < 0.05."""

    problem: str
    budget: int
    batch_size: int
    strategy: str
    criterion: str
    n_pairs: int
    median: float
    random_median: float
    p_worse: float

    @property
    def worse(self) -> bool:
        return self.p_worse < ALPHA


def _by_seed(runs: StrategyRuns, values: np.ndarray) -> dict[int, float]:
    return {int(s): float(v) for s, v in zip(runs.seeds, values, strict=True)}


def _runs(sec: Section, name: str) -> StrategyRuns | None:
    return next((s for s in sec.strategies if s.name == name), None)


def _wilcoxon_less(a: list[float], b: list[float]) -> float:
    """One-sided p that ``a`` is smaller than ``b`` (censored inf values are ranked as larger than any finite)."""
    from scipy.stats import wilcoxon

    finite = [v for v in a + b if math.isfinite(v)]
    big = (max(abs(v) for v in finite) if finite else 1.0) * 2 + 1
    x = [big if v == math.inf else -big if v == -math.inf else v for v in a]
    y = [big if v == math.inf else -big if v == -math.inf else v for v in b]
    if all(u == v for u, v in zip(x, y, strict=True)):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(wilcoxon(x, y, alternative="less").pvalue)


def _reduction(a: list[float], b: list[float]) -> float:
    ma, mb = statistics.median(a), statistics.median(b)
    if math.isinf(ma) or math.isinf(mb):
        return math.nan if math.isinf(ma) and math.isinf(mb) else (-math.inf if math.isinf(ma) else 1.0)
    return 1.0 - ma / mb


def paired_reduction(a: list[float], b: list[float]) -> tuple[float, tuple[float, float], float]:
    """Experiments ``a`` against ``b``, paired (same order): ``1 - median(a) / median(b)``, its 90 % paired-bootstrap
    interval and the one-sided Wilcoxon p that ``a`` needs fewer (inf: not reached within the budget)."""
    rng = random.Random(BOOT_SEED)
    n = len(a)
    boots = []
    for _ in range(N_BOOT):
        idx = [rng.randrange(n) for _ in range(n)]
        boots.append(_reduction([a[i] for i in idx], [b[i] for i in idx]))
    boots = sorted(x for x in boots if not math.isnan(x))
    lo, hi = (boots[int(0.05 * len(boots))], boots[int(0.95 * len(boots)) - 1]) if boots else (math.nan, math.nan)
    return _reduction(a, b), (lo, hi), _wilcoxon_less(a, b)


def versus(sec: Section, strategy: str, other: str, level: float) -> Versus | None:
    """``strategy`` against ``other`` on pool section ``sec`` (None when either is missing or it is no pool)."""
    a_runs, b_runs = _runs(sec, strategy), _runs(sec, other)
    if not sec.pool or a_runs is None or b_runs is None:
        return None
    a_by, b_by = _by_seed(a_runs, a_runs.n_to(level)), _by_seed(b_runs, b_runs.n_to(level))
    seeds = sorted(set(a_by) & set(b_by))
    if len(seeds) < 2:
        return None
    a, b = [a_by[k] for k in seeds], [b_by[k] for k in seeds]
    reduction, ci, p = paired_reduction(a, b)
    return Versus(
        sec.problem,
        sec.budget,
        sec.batch_size,
        strategy,
        other,
        level,
        len(seeds),
        statistics.median(a),
        statistics.median(b),
        reduction,
        ci,
        p,
    )


def versus_best_peer(df: pd.DataFrame, strategy: str, peers: list[str], level: float = 0.8) -> list[Versus]:
    """Per pool section, ``strategy`` against the peer (of those present) with the fewest median experiments to
    ``level`` of the top set."""
    out = []
    for sec in sections(df):
        if not sec.pool or _runs(sec, strategy) is None:
            continue
        present = [p for p in peers if p != strategy and _runs(sec, p) is not None]
        if not present:
            continue

        def median_n(name: str, sec: Section = sec) -> float:
            runs = _runs(sec, name)
            assert runs is not None
            return float(np.median(runs.n_to(level)))

        best = min(present, key=median_n)
        v = versus(sec, strategy, best, level)
        if v is not None:
            out.append(v)
    return out


def against_random(df: pd.DataFrame, strategy: str, level: float = 0.8, baseline: str = "random") -> list[RandomCheck]:
    """Per section holding both, ``strategy`` against ``baseline`` (see `RandomCheck`)."""
    out = []
    for sec in sections(df):
        a_runs, r_runs = _runs(sec, strategy), _runs(sec, baseline)
        if a_runs is None or r_runs is None:
            continue
        if sec.pool:
            criterion = f"experiments to {level:.0%} of the top set (fewer is better)"
            a_by, r_by = _by_seed(a_runs, a_runs.n_to(level)), _by_seed(r_runs, r_runs.n_to(level))
            sign = 1.0
        else:
            criterion = "final best score (larger is better)"
            a_by, r_by = _by_seed(a_runs, a_runs.final("best")), _by_seed(r_runs, r_runs.final("best"))
            sign = -1.0  # "worse" = smaller score: test -score larger
        seeds = sorted(k for k in set(a_by) & set(r_by) if not (math.isnan(a_by[k]) or math.isnan(r_by[k])))
        if len(seeds) < 2:
            continue
        a, r = [a_by[k] for k in seeds], [r_by[k] for k in seeds]
        # worse: the baseline's criterion is better, i.e. sign*r < sign*a
        p = _wilcoxon_less([sign * v for v in r], [sign * v for v in a])
        out.append(
            RandomCheck(
                sec.problem,
                sec.budget,
                sec.batch_size,
                strategy,
                criterion,
                len(seeds),
                statistics.median(a),
                statistics.median(r),
                p,
            )
        )
    return out


__all__ = ["RandomCheck", "Versus", "against_random", "paired_reduction", "versus", "versus_best_peer"]
