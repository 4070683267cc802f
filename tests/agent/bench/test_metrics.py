"""The Liang et al. (2021) pool metrics and the seed aggregates, against hand-computed small cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from agent.bench.metrics import (
    acceleration_factor,
    best_so_far,
    bootstrap_median_ci,
    enhancement_factor,
    experiments_to,
    random_experiments_to,
    random_top_fraction,
    summarize,
    top_count,
    top_fraction_curve,
    top_set,
)


def test_top_set_is_the_ceil_5_percent_best() -> None:
    assert top_count(20) == 1 and top_count(21) == 2 and top_count(100) == 5 and top_count(0) == 0
    assert top_set([1.0, 5.0, 3.0, 5.0], fraction=0.5).tolist() == [1, 3]
    scores = np.arange(40.0)  # larger is better: 39 and 38 are the top 2 of 40
    assert top_set(scores).tolist() == [38, 39]


def test_top_fraction_curve_ef_and_af_by_hand() -> None:
    # N = 40, top set {1, 3}: experiments choose 5, 3, 7, 1
    curve = top_fraction_curve([5, 3, 7, 1], {3, 1})
    assert curve.tolist() == [0.0, 0.5, 0.5, 1.0]
    assert random_top_fraction([1, 2, 40, 80], 40).tolist() == [1 / 40, 2 / 40, 1.0, 1.0]
    ef = enhancement_factor(curve, 40)
    np.testing.assert_allclose(ef, [0.0, 0.5 / (2 / 40), 0.5 / (3 / 40), 1.0 / (4 / 40)])
    assert experiments_to(curve, 0.5) == 2 and experiments_to(curve, 1.0) == 4
    assert math.isnan(experiments_to([0.0, 0.5], 1.0))
    # random: E[Top%(i)] = i/N >= a  <=>  i >= a·N
    assert random_experiments_to(0.5, 40) == 20 and random_experiments_to(0.8, 40) == 32
    assert random_experiments_to(0.5, 41) == 21 and random_experiments_to(1.0, 40) == 40
    assert acceleration_factor(curve, 40, 0.5) == 10.0  # 20 / 2
    assert acceleration_factor(curve, 40, 0.8) == 8.0  # 32 / 4
    assert acceleration_factor(curve, 40, 1.0) == 10.0  # 40 / 4
    assert math.isnan(acceleration_factor([0.0, 0.5], 40, 1.0))


def test_best_so_far_skips_failures() -> None:
    out = best_so_far([math.nan, 1.0, 0.0, math.nan, 3.0])
    assert math.isnan(out[0]) and out[1:].tolist() == [1.0, 1.0, 1.0, 3.0]


def test_bootstrap_median_ci_is_seeded_and_brackets_the_median() -> None:
    vals = [1.0, 2.0, 3.0, 10.0, math.nan]
    med, lo, hi = bootstrap_median_ci(vals, level=0.9, seed=3)
    assert med == 2.5 and 1.0 <= lo <= med <= hi <= 10.0
    assert bootstrap_median_ci(vals, seed=3) == (med, lo, hi)
    assert bootstrap_median_ci([4.0]) == (4.0, 4.0, 4.0)
    assert all(math.isnan(v) for v in bootstrap_median_ci([math.nan]))


def _pool_runs() -> pd.DataFrame:
    rows = []
    for rid, curve in (("r1", [0.0, 0.5, 0.5, 1.0]), ("r2", [0.5, 0.5, 1.0, 1.0])):
        for i, t in enumerate(curve, start=1):
            rows.append(
                {
                    "problem": "p",
                    "problem_kind": "pool",
                    "strategy": "s",
                    "budget": 4,
                    "batch_size": 1,
                    "run_id": rid,
                    "experiment": i,
                    "best_so_far": float(i),
                    "regret": 4.0 - i,
                    "top_frac": t,
                    "n_pool": 40,
                    "lab_time_h": 2.0 * i,
                }
            )
    return pd.DataFrame(rows)


def test_summarize_by_hand() -> None:
    s = summarize(_pool_runs())

    def med(metric: str, experiment: int = 0) -> float:
        row = s[(s.metric == metric) & (s.experiment == experiment)]
        assert len(row) == 1, metric
        return float(row["median"].iloc[0])

    assert med("experiments_to_top_0.5") == 1.5  # runs reach 0.5 at experiments 2 and 1
    assert med("experiments_to_top_1") == 3.5  # at 4 and 3
    assert med("lab_time_h_to_top_1") == 7.0  # 2 h per experiment
    assert med("AF_0.5") == 15.0  # 20/2 and 20/1
    assert med("AF_0.8") == (8.0 + 32 / 3) / 2  # 32/4 and 32/3
    assert med("EF", 1) == 10.0  # 0 and 0.5 / (1/40)
    assert med("top_frac", 3) == 0.75
    assert med("best_so_far", 4) == 4.0 and med("final_regret") == 0.0
    row = s[(s.metric == "AF_0.5")].iloc[0]
    assert row["lo"] <= row["median"] <= row["hi"] and row["n"] == 2 and row["n_runs"] == 2


def test_experiments_and_lab_time_to_a_target() -> None:
    s = summarize(_pool_runs(), targets={"p": 2.5})  # best_so_far is 1, 2, 3, 4 in both runs
    row = s[s.metric == "experiments_to_target"].iloc[0]
    assert row["median"] == 3.0 and row["n"] == 2
    assert s[s.metric == "lab_time_h_to_target"]["median"].iloc[0] == 6.0
    never = summarize(_pool_runs(), targets={"p": 99.0})
    assert math.isnan(never[never.metric == "experiments_to_target"]["median"].iloc[0])
