"""Dataset-backed problems: pool mode (grouping, each point once, never outside the pool, the top-set
metrics) and emulator mode (answers anywhere in the space, reports its cross-validated error)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent.bench import runner
from agent.bench.datasets import group_pool, read_table, space_of
from agent.bench.metrics import top_set
from agent.bench.runner import BenchError, RunSpec, run_one
from agent.bench.spec import load_sweep
from agent.bench.sweep import run_sweep
from surrogate.base import Conditions, Proposal
from surrogate.encoding import canonical_key

from .conftest import SIMPLEX_SPACE, RandomPool, write_simplex_csv


def _sweep(
    tmp: Path, kind: str, *, header: bool, extra: str = "", strategies: str = "", runs: str = "seeds: 2\nbudgets: [20]"
) -> Path:
    write_simplex_csv(tmp / "data.csv", header=header)
    cols = "{a: a, b: b, c: c}" if header else "{a: 0, b: 1, c: 2}"
    obj = "loss" if header else 3
    text = f"""
name: ds
problems:
  - name: mix
    kind: {kind}
    data:
      path: data.csv
      header: {str(header).lower()}
      inputs: {cols}
      objectives: [{{name: loss, column: {obj}, direction: minimize, unit: "1"}}]
{SIMPLEX_SPACE}{extra}
{strategies}
{runs}
initial_points: 2
"""
    path = tmp / "sweep.yaml"
    path.write_text(text)
    return path


@pytest.mark.usefixtures("pool_factory")
@pytest.mark.parametrize("header", [False, True])
def test_pool_never_repeats_nor_leaves_the_pool(tmp_path: Path, header: bool) -> None:
    spec = load_sweep(_sweep(tmp_path, "pool", header=header))
    p = spec.problems[0]
    table = read_table(p.data)  # type: ignore[union-attr]
    pool = group_pool(table, space_of(p, table))  # type: ignore[arg-type]
    assert len(table.values) == 45 and len(pool) == 40 and pool.counts.max() == 2
    np.testing.assert_allclose(pool.values[0], table.values[[0, 40]].mean())  # duplicates averaged
    df = run_sweep(spec, tmp_path / "out", workers=1)
    assert set(df.problem_kind) == {"pool"} and (df.n_pool == 40).all() and (df.n_top == 2).all()
    scores = -pool.values
    best = set(top_set(scores).tolist())
    for _, run in df.groupby("run_id"):
        chosen = [pool.find(json.loads(c)) for c in run.conditions]
        assert None not in chosen and len(set(chosen)) == len(chosen) == 20
        hits = np.cumsum([c in best for c in chosen])
        assert run.top_found.tolist() == hits.tolist()
        np.testing.assert_allclose(run.top_frac, hits / 2)
        assert math.isclose(run.optimum.iloc[0], scores.max())
        np.testing.assert_allclose(run.regret, scores.max() - run.best_so_far)
    # same initial pool points for both strategies of a seed
    init = df[df.initial].groupby(["seed", "strategy"]).conditions.apply(list).unstack()
    assert (init["random"] == init["sobol"]).all()


class _Rogue(RandomPool):
    """Proposes a point outside the pool on its second ask, or a told point again."""

    mode = "outside"

    def ask(self, n: int, pending: Sequence[Conditions]) -> list[Proposal]:
        out = super().ask(n, pending)
        if self.used:
            if self.mode == "outside":
                return [Proposal(conditions={"a": 0.5, "b": 0.25, "c": 0.25}, generator="rogue")]
            told = next(c for c in self.candidates if canonical_key(c) in self.used)
            return [Proposal(conditions=dict(told), generator="rogue")]
        return out


@pytest.mark.parametrize("mode", ["outside", "twice"])
def test_the_runner_rejects_points_outside_the_pool_or_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setattr(_Rogue, "mode", mode)
    monkeypatch.setattr(runner, "pool_factory", _Rogue)
    spec = load_sweep(_sweep(tmp_path, "pool", header=False))
    run = RunSpec("ds", spec.problems[0], spec.strategy_list()[0], 0, 10, 1, 2, 1.0)
    with pytest.raises(BenchError, match="not in the pool" if mode == "outside" else "a second time"):
        run_one(run)


def test_emulator_reports_its_fit_error(tmp_path: Path) -> None:
    spec = load_sweep(_sweep(tmp_path, "emulator", header=True, extra="    emulator: {cv_folds: 3}\n"))
    df = run_sweep(spec, tmp_path / "out", workers=1)
    report = json.loads((tmp_path / "out" / "emulators.json").read_text())["mix"]
    assert report["n"] == 40 and report["cv_folds"] == 3 and report["model"] == "gp"
    assert 0 < report["rmse"] < 0.2 and 0.5 < report["r2"] <= 1.0  # a smooth bowl: the GP fits it well
    assert set(df.problem_kind) == {"emulator"} and len(df) == 2 * 2 * 20 and df.optimum.isna().all()
    assert df.value.notna().all() and (df.n_pool == 0).all()


def test_real_pool_strategies_choose_each_point_once(tmp_path: Path) -> None:
    pytest.importorskip("surrogate.pool", reason="surrogate.pool is not installed")
    strategies = "strategies:\n  - {name: botorch, label: bo, pool_options: {initial_points: 2, mc_samples: 32}}\n"
    spec = load_sweep(_sweep(tmp_path, "pool", header=False, strategies=strategies, runs="seeds: 1\nbudgets: [8]"))
    df = run_sweep(spec, tmp_path / "out", workers=1)
    assert set(df.strategy) == {"random", "sobol", "bo"} and len(df) == 3 * 8
    p = spec.problems[0]
    table = read_table(p.data)  # type: ignore[union-attr]
    pool = group_pool(table, space_of(p, table))  # type: ignore[arg-type]
    for _, run in df.groupby("run_id"):
        chosen = [pool.find(json.loads(c)) for c in run.conditions]
        assert None not in chosen and len(set(chosen)) == 8
    again = run_sweep(spec, tmp_path / "again", workers=1)
    pd.testing.assert_frame_equal(df.drop(columns="wall_s"), again.drop(columns="wall_s"))


def test_forest_emulator(tmp_path: Path) -> None:
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (the forest emulator needs it)")
    extra = "    emulator: {model: forest, cv_folds: 4, noise_sigma: 0.01}\n"
    spec = load_sweep(_sweep(tmp_path, "emulator", header=False, extra=extra, runs="seeds: 1\nbudgets: [6]"))
    df = run_sweep(spec, tmp_path / "out", workers=1)
    report = json.loads((tmp_path / "out" / "emulators.json").read_text())["mix"]
    assert report["model"] == "forest" and report["n"] == 40 and math.isfinite(report["rmse"])
    assert len(df) == 2 * 6 and df.value.notna().all()
