"""``matloop bench``: clean errors, --report-only, and one tiny real sweep."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from agent.cli import app

runner = CliRunner()
WIDE = {"COLUMNS": "200"}

TINY = """\
name: tiny
problems:
  - {name: branin, kind: function, function: branin}
seeds: [0, 1]
budgets: [6]
"""


def _clean_error(res: object, *needles: str) -> None:
    assert res.exit_code == 2, res.output  # type: ignore[attr-defined]
    out = res.output  # type: ignore[attr-defined]
    assert "error:" in out and "Traceback" not in out
    for n in needles:
        assert n in out, out


def test_missing_file(tmp_path: Path) -> None:
    res = runner.invoke(app, ["bench", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")], env=WIDE)
    _clean_error(res, "no such sweep file")


def test_bad_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nproblems: [ {name: a, kind: function\n")
    res = runner.invoke(app, ["bench", str(bad), "--out", str(tmp_path / "o")], env=WIDE)
    _clean_error(res)
    assert not (tmp_path / "o" / "results.parquet").exists()


def test_invalid_sweep(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.replace("budgets: [6]", "budgets: [0]"))
    res = runner.invoke(app, ["bench", str(bad), "--out", str(tmp_path / "o")], env=WIDE)
    _clean_error(res, "budgets")


def test_report_only_without_results(tmp_path: Path) -> None:
    sweep = tmp_path / "s.yaml"
    sweep.write_text(TINY)
    res = runner.invoke(app, ["bench", str(sweep), "--out", str(tmp_path), "--report-only"], env=WIDE)
    _clean_error(res, "no results.parquet or results.csv")


def test_report_only(tmp_path: Path) -> None:
    rows = []
    for strategy, scale in (("good", 1.0), ("bad", 5.0)):
        for seed in range(3):
            regret = scale * np.exp(-np.arange(10) / 3) * (1 + 0.1 * seed)
            best = -np.minimum.accumulate(regret)
            for i in range(10):
                rows.append(
                    {
                        "sweep": "s",
                        "problem": "f",
                        "problem_kind": "function",
                        "strategy": strategy,
                        "seed": seed,
                        "budget": 10,
                        "batch_size": 1,
                        "run_id": f"{strategy}{seed}",
                        "experiment": i + 1,
                        "failed": False,
                        "score": -regret[i],
                        "best_so_far": best[i],
                        "optimum": 0.0,
                        "regret": -best[i],
                        "lab_time_h": i + 1.0,
                    }
                )
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    sweep = tmp_path / "s.yaml"
    sweep.write_text("this is not even read")
    res = runner.invoke(app, ["bench", str(sweep), "--out", str(tmp_path), "--report-only"], env=WIDE)
    assert res.exit_code == 0, res.output
    assert "good" in res.output and "not significant" in res.output  # 3 seeds: too few to call it
    md = (tmp_path / "report.md").read_text()
    assert "**Winner: good**" in md
    assert (tmp_path / "f_b10_q1_regret.png").is_file()


@pytest.mark.skipif(
    importlib.util.find_spec("agent.bench.sweep") is None, reason="the benchmark harness (agent.bench.sweep) is absent"
)
def test_tiny_branin_sweep(tmp_path: Path) -> None:
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(TINY)
    out = tmp_path / "out"
    res = runner.invoke(app, ["bench", str(sweep), "--out", str(out), "--workers", "1"], env=WIDE)
    assert res.exit_code == 0, res.output
    assert "branin" in res.output and "winner" in res.output
    df = pd.read_parquet(out / "results.parquet")
    assert set(df["strategy"]) == {"random", "sobol"} and df["run_id"].nunique() == 4
    md = (out / "report.md").read_text()
    assert md.startswith("# Benchmark report: tiny")
    assert "## branin — budget 6, batch 1" in md
    sections = json.loads((out / "report.json").read_text())["sections"]
    assert [s["problem"] for s in sections] == ["branin"]
    assert sections[0]["winner"] in {"random", "sobol"}
    # a second call resumes (nothing to run) and reports the same
    again = runner.invoke(app, ["bench", str(sweep), "--out", str(out), "--workers", "1"], env=WIDE)
    assert again.exit_code == 0, again.output
    assert (out / "report.md").read_text() == md


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="ray is installed")
def test_ray_not_installed(tmp_path: Path) -> None:
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(TINY)
    res = runner.invoke(app, ["bench", str(sweep), "--out", str(tmp_path / "o"), "--ray", "local"], env=WIDE)
    _clean_error(res, "ray is not installed")
