"""Simulated-lab problems run the full campaign loop (images included) on the virtual clock."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from agent.bench.spec import load_sweep
from agent.bench.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[3]


def _write(tmp: Path, problems: str, batch: str = "[1]") -> Path:
    path = tmp / "sweep.yaml"
    path.write_text(
        f"name: simlab\nproblems:\n{problems}seeds: [0]\nbudgets: [3]\nbatch_sizes: {batch}\ninitial_points: 1\n"
    )
    return path


def test_quickstart_with_images_end_to_end(tmp_path: Path) -> None:
    quick = ROOT / "campaigns" / "quickstart.yaml"
    spec = load_sweep(_write(tmp_path, f"  - {{name: quick, kind: sim, campaign: {quick}, image_size_px: 128}}\n"))
    df = run_sweep(spec, tmp_path / "out", workers=1)
    assert len(df) == 2 * 3 and set(df.problem_kind) == {"sim"} and set(df.strategy) == {"random", "sobol"}
    for _, run in df.groupby("run_id"):
        assert run.experiment.tolist() == [1, 2, 3] and run.initial.tolist() == [True, False, False]
        assert run.lab_time_h.is_monotonic_increasing and (run.lab_time_h > 0).all()  # virtual lab hours
        ok = run[~run.failed]
        # maximized; a sample outside the grain-size constraint keeps its value but scores NaN (it cannot be best)
        assert ok.value.notna().all() and (ok.score.isna() | (ok.score == ok.value)).all()
        assert run[run.failed].value.isna().all()
        assert set(json.loads(run.conditions.iloc[0])) == {
            "anneal_temperature",
            "anneal_time",
            "cooling_rate",
            "alloy_fraction",
            "atmosphere",
        }
    init = df[df.initial].set_index("strategy").conditions
    assert init["random"] == init["sobol"]  # the same initial point for every strategy of a seed
    first = df[df.initial].set_index("strategy").value
    assert first["random"] == first["sobol"]  # measured in the same simulated lab (same noise)


def test_two_objective_campaign_scores_hypervolume(tmp_path: Path) -> None:
    ceramic = ROOT / "campaigns" / "ceramic_pareto.yaml"
    spec = load_sweep(
        _write(tmp_path, f"  - {{name: cer, kind: sim, campaign: {ceramic}, imaging: false}}\n", batch="[2]")
    )
    df = run_sweep(spec, tmp_path / "a", workers=1)
    assert len(df) == 2 * 3 and (df.batch_size == 2).all()
    for _, run in df.groupby("run_id"):
        hv = run.value.ffill().fillna(0.0)
        assert (hv >= 0).all() and hv.is_monotonic_increasing  # hypervolume only grows
        assert run.regret.isna().all()
    again = run_sweep(spec, tmp_path / "b", workers=1)
    pd.testing.assert_frame_equal(df.drop(columns="wall_s"), again.drop(columns="wall_s"))
