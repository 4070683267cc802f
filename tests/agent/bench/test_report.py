"""The benchmark report from synthetic tidy tables (no harness needed)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from agent.bench.report import write_report

STRATEGIES = ("alpha", "beta", "gamma")
SEEDS = range(5)
N_POOL, N_TOP = 200, 10


def _run(
    problem: str,
    kind: str,
    strategy: str,
    seed: int,
    scores: np.ndarray,
    *,
    top: np.ndarray | None = None,
    optimum: float = math.nan,
    budget: int | None = None,
    batch: int = 1,
    failed: np.ndarray | None = None,
) -> pd.DataFrame:
    n = len(scores)
    failed = np.zeros(n, bool) if failed is None else failed
    s = np.where(failed, np.nan, scores)
    best = pd.Series(s).cummax().ffill().to_numpy()
    return pd.DataFrame(
        {
            "sweep": "synthetic",
            "problem": problem,
            "problem_kind": kind,
            "strategy": strategy,
            "seed": seed,
            "budget": budget or n,
            "batch_size": batch,
            "run_id": f"{problem}-{strategy}-{seed}-{budget or n}-{batch}",
            "experiment": np.arange(1, n + 1),
            "initial": np.arange(n) < 2,
            "failed": failed,
            "value": -s,
            "score": s,
            "best_so_far": best,
            "optimum": optimum,
            "regret": optimum - best,
            "n_pool": N_POOL if kind == "pool" else 0,
            "n_top": N_TOP if kind == "pool" else 0,
            "top_found": np.nan if top is None else np.round(top * N_TOP),
            "top_frac": np.nan if top is None else top,
            "lab_time_h": np.cumsum(np.full(n, 1.5 + 0.1 * seed)),
            "wall_s": np.cumsum(np.full(n, 0.01)),
            "conditions": "{}",
        }
    )


def _function_run(strategy: str, seed: int, budget: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(seed)  # alpha and beta see the same numbers: identical strategies
    scale = {"alpha": 1.0, "beta": 1.0, "gamma": 4.0}[strategy]
    regret = scale * np.exp(-np.arange(budget) / 6) * (1 + rng.random(budget))
    return _run("branin", "function", strategy, seed, -regret, optimum=0.0)


def _pool_run(strategy: str, seed: int, budget: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(100 + seed + 7 * STRATEGIES.index(strategy))
    # the experiment at which each of the 10 top points is found
    span = {"alpha": 20, "beta": 60, "gamma": 150}[strategy]
    hits = np.sort(rng.choice(np.arange(1, span + 1), N_TOP, replace=False))
    i = np.arange(1, budget + 1)
    top = (hits[None, :] <= i[:, None]).sum(axis=1) / N_TOP
    scores = rng.random(budget) + top
    return _run("pool-a", "pool", strategy, seed, scores, top=top)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    parts = [f(s, seed) for f in (_function_run, _pool_run) for s in STRATEGIES for seed in SEEDS]
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def report(table: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(table, tmp_path_factory.mktemp("report"), title="synthetic")


def _section(md: str, heading: str) -> str:
    start = md.index(f"## {heading}")
    end = md.find("\n## ", start + 1)
    return md[start : end if end >= 0 else None]


def test_writes_readable_pngs(report: Path) -> None:
    out = report.parent
    names = {p.name for p in out.glob("*.png")}
    assert {
        "branin_b30_q1_regret.png",
        "branin_b30_q1_regret_vs_time.png",
        "pool-a_b40_q1_best.png",
        "pool-a_b40_q1_best_vs_time.png",
        "pool-a_b40_q1_top.png",
        "pool-a_b40_q1_ef_af.png",
        "ranking.png",
    } <= names
    assert "branin_b30_q1_top.png" not in names  # no Top% for a function problem
    for name in names:
        with Image.open(out / name) as im:
            im.verify()
            assert im.size[0] > 100 and im.size[1] > 100
    md = report.read_text()
    for name in names:
        assert f"]({name})" in md


def test_winners_and_significance(report: Path) -> None:
    md = report.read_text()
    assert md.startswith("# synthetic")
    assert "Wilcoxon signed-rank" in md  # the test used is named
    pool = _section(md, "pool-a — budget 40, batch 1")
    assert "**Winner: alpha**, ahead of beta" in pool
    assert "is significant" in pool and "not significant" not in pool
    fn = _section(md, "branin — budget 30, batch 1")
    # alpha and beta are identical: the winner is one of them, and the lead is not significant
    assert "**Winner: alpha** by the median, ahead of the runner-up beta" in fn
    assert "**not significant**" in fn and "identical on all 5 paired seeds" in fn
    assert "final regret" in fn and "AF(0.5)" not in fn
    for col in ("n to Top% 50 %", "n to Top% 80 %", "n to Top% 100 %", "AF(0.5)", "AF(0.8)", "EF(4)", "EF(40)"):
        assert col in pool
    report_json = json.loads((report.parent / "report.json").read_text())
    winners = {s["problem"]: (s["winner"], s["significant"]) for s in report_json["sections"]}
    assert winners == {"branin": ("alpha", False), "pool-a": ("alpha", True)}
    ranks = pd.read_csv(report.parent / "ranking.csv")
    assert ranks.loc[ranks["problem"] == "branin", "strategy"].tolist() == ["alpha", "beta", "gamma"]


def test_deterministic(table: pd.DataFrame, report: Path, tmp_path: Path) -> None:
    again = write_report(table, tmp_path, title="synthetic")
    assert again.read_text() == report.read_text()


def test_single_seed_failures_missing_strategy_and_sections(table: pd.DataFrame, tmp_path: Path) -> None:
    one = table[(table["seed"] == 0) & (table["problem"] == "branin")].copy()
    # gamma fails every experiment of its run; delta only runs on a second budget × batch section
    one.loc[one["strategy"] == "gamma", ["failed"]] = True
    one.loc[one["strategy"] == "gamma", ["score", "best_so_far", "regret", "value"]] = np.nan
    extra = _run("branin", "function", "delta", 0, -np.linspace(3, 1, 8), optimum=0.0, budget=10, batch=2)
    df = pd.concat([one, extra], ignore_index=True)
    md = write_report(df, tmp_path).read_text()
    assert "## branin — budget 30, batch 1" in md and "## branin — budget 10, batch 2" in md
    main = _section(md, "branin — budget 30, batch 1")
    assert "only one seed per strategy: no intervals" in main
    assert "not run on this problem: delta" in main
    assert "runs with no successful experiment" in main and "gamma (1 of 1)" in main
    assert "could not be tested" in main
    side = _section(md, "branin — budget 10, batch 2")
    assert "**Winner: delta** (the only strategy run on this problem)" in side
    assert (tmp_path / "branin_b10_q2_regret.png").is_file()


def test_bad_table(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lacks the column"):
        write_report(pd.DataFrame({"problem": ["x"]}), tmp_path)


def test_wilcoxon_with_enough_seeds(tmp_path: Path) -> None:
    df = pd.concat([_function_run(s, seed) for s in ("alpha", "gamma") for seed in range(8)], ignore_index=True)
    md = write_report(df, tmp_path).read_text()
    assert "**Winner: alpha**, ahead of gamma" in md
    assert "is significant (Wilcoxon signed-rank test paired by seed, n = 8, p = 0.00781)" in md


def test_no_winner_when_every_run_failed(tmp_path: Path) -> None:
    dead = np.ones(10, bool)
    df = pd.concat(
        [_run("dead", "function", s, 0, -np.ones(10), optimum=0.0, failed=dead) for s in ("alpha", "beta")],
        ignore_index=True,
    )
    md = write_report(df, tmp_path).read_text()
    assert "**No winner**: no strategy has a run with a successful experiment." in md
    assert json.loads((tmp_path / "report.json").read_text())["sections"][0]["winner"] is None
