"""A tiny test-function sweep end to end: the tidy table, determinism by seed (serially and in a process
pool), and a sweep killed and resumed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from agent.bench.runner import COLUMNS
from agent.bench.spec import parse_sweep
from agent.bench.sweep import expand, part_path, run_sweep

BRANIN = """
name: tiny
problems:
  - {name: branin, kind: function, function: branin, noise_sigma: 0.5}
seeds: 2
budgets: [8]
initial_points: 2
"""

BOTORCH = """
name: tiny_bo
problems:
  - {name: branin, kind: function, function: branin}
strategies:
  - {name: botorch, label: bo, options: {initial_points: 2, num_restarts: 2, raw_samples: 32, mc_samples: 32}}
baselines: false
seeds: [3]
budgets: [5]
batch_sizes: [2]
initial_points: 2
"""


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.drop(columns="wall_s"), b.drop(columns="wall_s"))


def test_branin_sweep_end_to_end(tmp_path: Path) -> None:
    spec = parse_sweep(BRANIN)
    df = run_sweep(spec, tmp_path / "out", workers=1)
    assert list(df.columns) == list(COLUMNS)
    assert {k: str(t) for k, t in df.dtypes.items()} == COLUMNS
    assert len(df) == 2 * 2 * 8 and set(df.strategy) == {"random", "sobol"} and set(df.seed) == {0, 1}
    for _, run in df.groupby("run_id"):
        assert run.experiment.tolist() == list(range(1, 9))
        assert run.initial.tolist() == [True, True] + [False] * 6
        assert (run.best_so_far.diff().dropna() >= 0).all()
        assert run.lab_time_h.tolist() == [float(i) for i in range(1, 9)]
        assert (run.regret >= 0).all() and math.isclose(run.optimum.iloc[0], -0.397887)
        assert (run.score == -run.value).all() and run.top_frac.isna().all() and (run.n_pool == 0).all()
        assert set(json.loads(run.conditions.iloc[0])) == {"x1", "x2"}
    # the same seed gives the same initial points for every strategy
    first = df[df.initial].groupby(["seed", "strategy"]).conditions.apply(list).unstack()
    assert (first["random"] == first["sobol"]).all()
    assert (tmp_path / "out" / "results.parquet").is_file() and (tmp_path / "out" / "results.csv").is_file()
    meta = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert meta["runs"] == 4 and len(meta["executed"]) == 4 and meta["failed"] == {} and "botorch" in meta["versions"]
    _same(pd.read_parquet(tmp_path / "out" / "results.parquet"), df)

    # determinism: again in another folder, and in a pool of two processes
    _same(run_sweep(spec, tmp_path / "again", workers=1), df)
    _same(run_sweep(spec, tmp_path / "pool", workers=2), df)


def test_botorch_is_deterministic_by_seed(tmp_path: Path) -> None:
    spec = parse_sweep(BOTORCH)
    a = run_sweep(spec, tmp_path / "a", workers=1)
    b = run_sweep(spec, tmp_path / "b", workers=1)
    _same(a, b)
    assert len(a) == 5 and a.strategy.unique().tolist() == ["bo"] and a.batch_size.unique().tolist() == [2]


def test_killed_and_resumed(tmp_path: Path) -> None:
    spec = parse_sweep(BRANIN)
    out = tmp_path / "out"
    full = run_sweep(spec, out, workers=1)
    runs = expand(spec)
    victim = runs[1]
    part_path(out, victim).unlink()  # as if killed before this run finished
    (out / "runs" / f".{part_path(out, victim).name}.123.tmp").write_bytes(b"torn")  # a half-written part
    for name in ("results.parquet", "results.csv"):
        (out / name).unlink()
    executed: list[str] = []
    again = run_sweep(spec, out, workers=1, progress=lambda r, s: executed.append(r.run_id))
    assert executed == [victim.run_id] and again.attrs["executed"] == [victim.run_id]
    assert json.loads((out / "sweep.json").read_text())["skipped"] == len(runs) - 1
    _same(again, full)
    kept = full[full.run_id != victim.run_id]
    pd.testing.assert_frame_equal(
        again[again.run_id != victim.run_id].reset_index(drop=True), kept.reset_index(drop=True)
    )  # untouched parts are read back as they were
    # a corrupt part is run again
    part_path(out, runs[0]).write_bytes(b"not parquet")
    executed.clear()
    run_sweep(spec, out, workers=1, progress=lambda r, s: executed.append(r.run_id))
    assert executed == [runs[0].run_id]


def test_ray_gives_the_same_table(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="ray is not installed: the Ray backend is untested here")
    spec = parse_sweep(BRANIN)
    local = run_sweep(spec, tmp_path / "local", workers=1)
    assert not ray.is_initialized()
    _same(run_sweep(spec, tmp_path / "ray", workers=2, ray_address="local"), local)
