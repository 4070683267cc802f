"""End to end on the simulated lab: the quickstart campaign, determinism by seed, the CLI's exit codes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from agent import Campaign
from agent.lifecycle import ExperimentState as S

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "campaigns" / "quickstart.yaml"


def small_campaign(tmp: Path, *, name: str = "small", experiments: int = 6, strategy: str = "ax") -> Path:
    text = QUICKSTART.read_text()
    text = text.replace("name: quickstart", f"name: {name}").replace("experiments: 20", f"experiments: {experiments}")
    text = text.replace("options: {initial_points: 6}", "options: {initial_points: 3}")
    if strategy != "ax":
        text = text.replace("  name: ax\n  options: {initial_points: 3}", f"  name: {strategy}")
    text = text.replace("size_px: 384, images_per_sample: 2", "size_px: 256, images_per_sample: 1")
    path = tmp / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_quickstart_end_to_end(tmp_path: Path) -> None:
    path = tmp_path / "quickstart.yaml"
    shutil.copy(QUICKSTART, path)
    c = Campaign.from_yaml(path)
    result = c.run()
    assert result.status == "completed"
    df = c.table()
    budget = c.spec.budget.experiments
    assert 1 <= len(df) <= budget and set(df["state"]) <= {S.COMPLETED, S.FAILED, S.ABANDONED}
    done = df[df["state"] == S.COMPLETED]
    assert len(done) >= len(df) // 2
    # imaging closed the loop: every completed experiment has a grain size from its micrographs, with σ
    assert done["y.grain_size_um"].gt(0).all() and done["y.grain_size_um.sigma"].gt(0).all()
    assert done["y.strength_ductility"].gt(0).all()
    row = c.row
    assert row is not None and row.lab_time_s > 3600  # hours of lab time, seconds of wall time
    assert c.best(), "no feasible experiment found"
    # BO did better than the Sobol start on average
    gens = df["generator"].str.lower()
    assert gens.str.contains("sobol").any() and (~gens.str.contains("sobol")).any()
    c.close()


def test_same_yaml_and_seed_give_the_same_campaign(tmp_path: Path) -> None:
    tables = []
    for sub in ("a", "b"):
        d = tmp_path / sub
        d.mkdir()
        c = Campaign.from_yaml(small_campaign(d, experiments=5))
        c.run()
        df = c.table().drop(columns=["lab_time_start_h", "lab_time_end_h"])
        tables.append(df)
        c.close()
    pd.testing.assert_frame_equal(tables[0], tables[1])


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "matloop"
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_cli_validate_exit_codes(tmp_path: Path) -> None:
    ok = _cli("validate", str(QUICKSTART), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "strength_ductility" in ok.stdout and not list(tmp_path.iterdir())  # touched nothing
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        QUICKSTART.read_text()
        .replace("name: sim-tester", "name: sim-tester")
        .replace("type: sim-tester", "type: sim-tensile")
    )
    res = _cli("validate", str(bad), cwd=tmp_path)
    assert res.returncode == 2
    assert "bad.yaml:" in res.stderr and "instruments.characterizer.type" in res.stderr and "sim-tester" in res.stderr
    bad.write_text(QUICKSTART.read_text().replace("name: strength_ductility", "name: toughness"))
    res = _cli("validate", str(bad), cwd=tmp_path)
    assert res.returncode == 2 and "nothing measures 'toughness'" in res.stderr and "strength_ductility" in res.stderr
    assert _cli("validate", str(tmp_path / "missing.yaml"), cwd=tmp_path).returncode == 2


def test_cli_run_status_export(tmp_path: Path) -> None:
    path = small_campaign(tmp_path, experiments=4, strategy="sobol")
    run = _cli("run", str(path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr + run.stdout
    assert "best results" in run.stdout and "lab time" in run.stdout
    again = _cli("run", str(path), cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    st = _cli("status", str(path), cwd=tmp_path)
    assert st.returncode == 0 and "completed" in st.stdout
    for fmt in ("csv", "json", "parquet"):
        ex = _cli("export", str(path), "--format", fmt, "--out", str(tmp_path / f"o.{fmt}"), cwd=tmp_path)
        assert ex.returncode == 0, ex.stderr
    df = pd.read_parquet(tmp_path / "o.parquet")
    assert len(df) == 4 and "x.anneal_temperature" in df and "y.grain_size_um.sigma" in df
    assert len(pd.read_csv(tmp_path / "o.csv")) == 4
    assert _cli("export", str(path), "--format", "xlsx", cwd=tmp_path).returncode == 2
    first_done = int(df[df["state"] == "completed"]["experiment"].iloc[0])
    shown = _cli("show", str(path), str(first_done), "--out", str(tmp_path / "ov.png"), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert (tmp_path / "ov.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _cli("show", str(path), "99", cwd=tmp_path).returncode == 2


@pytest.mark.parametrize("path", sorted((ROOT / "campaigns").glob("*.yaml")), ids=lambda p: p.name)
def test_example_campaigns_validate(path: Path) -> None:
    from agent import validate

    spec, measured = validate(path)
    assert all(o.name in measured for o in spec.objectives)
