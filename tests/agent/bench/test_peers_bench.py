"""``matloop bench`` with the peers (surrogate.peers) in one sweep beside matloop's own GP: every strategy runs for
every seed, all start from the same initial pool points, and none proposes outside the pool or twice (the runner
checks); the shipped peer sweep files validate."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from agent.bench.spec import load_sweep
from agent.cli import app
from tests.agent.bench.conftest import SIMPLEX_SPACE, write_simplex_csv

SWEEPS = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_sweeps"
PEERS = ["botorch-logei", "botorch-ucb", "ax-pool", "baybe"]


def tiny_sweep(tmp_path: Path) -> Path:
    write_simplex_csv(tmp_path / "pool.csv", n=60, header=True)
    sweep = tmp_path / "peers.yaml"
    sweep.write_text(
        f"""
name: peers_tiny
problems:
  - name: simplex
    kind: pool
    data:
      path: pool.csv
      inputs: {{a: a, b: b, c: c}}
      objectives: [{{name: loss, column: loss, direction: minimize}}]
{SIMPLEX_SPACE}
strategies:
  - {{name: botorch, label: matloop_gp, pool_options: {{initial_points: 2, mc_samples: 32}}}}
  - {{name: botorch-logei}}
  - {{name: botorch-ucb}}
  - {{name: ax-pool, pool_options: {{initial_points: 0, initialize_with_center: false}}}}
  - {{name: baybe}}
seeds: [0, 1]
budgets: [5]
initial_points: 2
"""
    )
    return sweep


@pytest.mark.skipif(importlib.util.find_spec("baybe") is None, reason="pip install 'matloop[peers]'")
def test_peers_run_side_by_side_in_one_sweep(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["bench", str(tiny_sweep(tmp_path)), "--out", str(out), "--workers", "1"], env={"COLUMNS": "200"}
    )
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["failed"] == {}, meta["failed"]
    df = pd.read_parquet(out / "results.parquet")
    strategies = ["random", "sobol", "matloop_gp", *PEERS]
    assert sorted(df.strategy.unique()) == sorted(strategies)
    assert len(df) == len(strategies) * 2 * 5
    for (seed, strategy), run in df.groupby(["seed", "strategy"]):
        assert run.experiment.tolist() == [1, 2, 3, 4, 5], (seed, strategy)
        assert run.initial.tolist() == [True, True, False, False, False]
        assert run.conditions.is_unique, (seed, strategy)  # the runner also refuses repeats
        assert (run.n_pool == run.n_pool.iloc[0]).all()
    # the same initial points for every strategy of a seed, different between seeds
    first = df[df.initial].groupby(["seed", "strategy"]).conditions.apply(tuple).unstack()
    for seed in (0, 1):
        assert first.loc[seed].nunique() == 1, first.loc[seed]
    assert first.loc[0].iloc[0] != first.loc[1].iloc[0]


@pytest.mark.parametrize("name", ["peers_pool.yaml", "peers_continuous.yaml"])
def test_shipped_peer_sweeps_validate(name: str) -> None:
    path = SWEEPS / name
    data = Path("../shared/data/olympus")  # as the sweep files name it: from their folder, else the working folder
    if not ((SWEEPS / data).is_dir() or (Path.cwd() / data).is_dir()):
        pytest.skip("the Olympus datasets (../shared/data/olympus) are not here")
    spec = load_sweep(path)
    keys = [s.key for s in spec.strategy_list()]
    assert "matloop_gp" in keys and {"botorch-logei", "botorch-ucb", "baybe"} <= set(keys)
    assert ("ax-pool" if name == "peers_pool.yaml" else "ax") in keys
