"""``matloop bench`` with the peers (surrogate.peers) in one sweep beside matloop's own GP: every strategy runs for
every seed, all start from the same initial pool points, and none proposes outside the pool or twice (the runner
checks); the shipped peer sweep files validate; ``benchmarks/benchmarks_doc.py`` turns the results into the
benchmarks document."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
from typer.testing import CliRunner

from agent.bench.spec import load_sweep
from agent.cli import app
from tests.agent.bench.conftest import SIMPLEX_SPACE, write_simplex_csv

ROOT = Path(__file__).resolve().parents[3]
SWEEPS = ROOT / "benchmarks" / "bench_sweeps"
PEERS = ["botorch-logei", "botorch-ucb", "ax-pool", "baybe"]
BUDGET = 5


def benchmarks_doc() -> ModuleType:
    spec = importlib.util.spec_from_file_location("benchmarks_doc", ROOT / "benchmarks" / "benchmarks_doc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
  - {{name: botorch, label: matloop, pool_options: {{initial_points: 2, mc_samples: 32}}}}
  - {{name: botorch-logei}}
  - {{name: botorch-ucb}}
  - {{name: ax-pool, pool_options: {{initial_points: 0, initialize_with_center: false}}}}
  - {{name: baybe}}
seeds: [0, 1]
budgets: [BUDGET]
initial_points: 2
""".replace("BUDGET", str(BUDGET))
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
    strategies = ["random", "sobol", "matloop", *PEERS]
    assert sorted(df.strategy.unique()) == sorted(strategies)
    assert len(df) == len(strategies) * 2 * BUDGET
    for (seed, strategy), run in df.groupby(["seed", "strategy"]):
        assert run.experiment.tolist() == list(range(1, BUDGET + 1)), (seed, strategy)
        assert run.initial.tolist() == [True, True] + [False] * (BUDGET - 2)
        assert run.conditions.is_unique, (seed, strategy)  # the runner also refuses repeats
        assert (run.n_pool == run.n_pool.iloc[0]).all()
    # the same initial points for every strategy of a seed, different between seeds
    first = df[df.initial].groupby(["seed", "strategy"]).conditions.apply(tuple).unstack()
    for seed in (0, 1):
        assert first.loc[seed].nunique() == 1, first.loc[seed]
    assert first.loc[0].iloc[0] != first.loc[1].iloc[0]

    # the benchmarks document from these results, as `benchmarks_doc.py --report-only` writes it
    runs = tmp_path / "runs"
    shutil.copytree(out, runs / "peers_pool")
    doc = tmp_path / "docs" / "benchmarks.md"
    verdicts = benchmarks_doc().write_doc(runs, doc, ["peers_pool", "sim_lab"], "python benchmarks/benchmarks_doc.py")
    text = doc.read_text()
    (versus,) = verdicts["peers_pool"]["versus_best_peer"]
    assert versus["strategy"] == "matloop" and versus["other"] in [*PEERS, "sobol", "random"]
    assert re.search(rf"\| simplex \| {BUDGET} \| {re.escape(versus['other'])} \|", text)
    (check,) = verdicts["peers_pool"]["against_random"]
    assert check["n_pairs"] == 2 and check["p_worse"] > 0.05  # two seeds can never show "worse"
    assert "sim_lab" not in verdicts  # no runs there: left out, not an error
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links and all((doc.parent / link).is_file() for link in links)


@pytest.mark.parametrize("name", ["peers_pool.yaml", "peers_continuous.yaml"])
def test_shipped_peer_sweeps_validate(name: str) -> None:
    path = SWEEPS / name
    data = Path("../shared/data/olympus")  # as the sweep files name it: from their folder, else the working folder
    if not ((SWEEPS / data).is_dir() or (Path.cwd() / data).is_dir()):
        pytest.skip("the Olympus datasets (../shared/data/olympus) are not here")
    spec = load_sweep(path)
    keys = [s.key for s in spec.strategy_list()]
    assert benchmarks_doc().DEFAULT_LABELS[spec.name] in keys  # the document knows which one is the default
    assert {"botorch-logei", "botorch-ucb", "baybe"} <= set(keys)
    assert ("ax-pool" if name == "peers_pool.yaml" else "ax") in keys


def test_the_document_command_rewrites_sweeps_to_run_from_anywhere(tmp_path: Path) -> None:
    doc = benchmarks_doc()
    data = doc.derived_sweep(SWEEPS / "sim_lab.yaml", 3, ["botorch", "sobol"], [1])
    assert data["seeds"] == 3 and data["batch_sizes"] == [1]
    assert [s.get("label") or s["name"] for s in data["strategies"]] == ["ax", "random"]
    assert data["baselines"] is False
    for p in data["problems"]:
        assert Path(p["campaign"]).is_absolute() and Path(p["campaign"]).is_file()
