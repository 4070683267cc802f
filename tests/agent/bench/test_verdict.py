"""The verdicts of `agent.bench.verdict` on synthetic tidy tables whose answers are known by construction."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from agent.bench.report import sections
from agent.bench.verdict import against_random, versus, versus_best_peer
from tests.agent.bench.test_report import _run

SEEDS = range(8)
BUDGET = 60


def _pool(strategy: str, seed: int, n80: float) -> pd.DataFrame:
    """A pool run that reaches 80 % of the top set at experiment ``n80`` (never when inf)."""
    i = np.arange(1, BUDGET + 1)
    top = np.where(i >= n80, 0.8, 0.4 * (i >= 3))
    return _run("pool-a", "pool", strategy, seed, np.linspace(0, 1, BUDGET) + top, top=top)


def _function(strategy: str, seed: int, level: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    scores = level + 0.1 * rng.random(BUDGET)
    return _run("fn", "function", strategy, seed, scores, optimum=10.0)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    parts = []
    for seed in SEEDS:
        parts += [
            _pool("matloop", seed, 20 + seed % 2),
            _pool("peer_slow", seed, 30),
            _pool("peer_fast", seed, 25),
            _pool("random", seed, math.inf if seed % 2 else 55),
            _function("matloop", seed, 1.0),
            _function("random", seed, 2.0),  # random is better here: matloop must be flagged
        ]
    return pd.concat(parts, ignore_index=True)


def test_against_the_best_peer(table: pd.DataFrame) -> None:
    (v,) = versus_best_peer(table, "matloop", ["peer_slow", "peer_fast", "random"])
    assert v.other == "peer_fast" and v.n_pairs == len(SEEDS)
    assert v.median == 20.5 and v.other_median == 25.0
    assert v.reduction == pytest.approx(1 - 20.5 / 25)
    assert v.ci90[0] <= v.reduction <= v.ci90[1] and v.ci90[1] <= 1 - 20 / 25 + 1e-12
    assert v.p_fewer < 0.01  # fewer on every seed


def test_censored_runs_count_as_more_than_the_budget(table: pd.DataFrame) -> None:
    (sec,) = [s for s in sections(table) if s.pool]
    v = versus(sec, "random", "matloop", 0.8)
    assert v is not None and math.isinf(v.median) and v.reduction == -math.inf
    assert v.p_fewer > 0.5  # random never needs fewer


def test_never_worse_than_random(table: pd.DataFrame) -> None:
    checks = {c.problem: c for c in against_random(table, "matloop")}
    assert set(checks) == {"pool-a", "fn"}
    assert not checks["pool-a"].worse and checks["pool-a"].criterion.startswith("experiments")
    assert checks["fn"].worse and checks["fn"].p_worse < 0.05
    assert checks["fn"].median < checks["fn"].random_median


def test_nothing_to_compare() -> None:
    only = pd.concat([_pool("matloop", s, 20) for s in SEEDS], ignore_index=True)
    assert versus_best_peer(only, "matloop", ["peer_fast"]) == []
    assert against_random(only, "matloop") == []
