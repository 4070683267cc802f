"""`matloop driver new`: the scaffolded package installs, its own tests pass, and a campaign finds it by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.scaffold import ScaffoldError, names

runner = CliRunner()

CAMPAIGN = """\
schema_version: 1
name: acme_trial
seed: 3
space:
  parameters:
    - {name: temperature, type: float, low: 200, high: 900, unit: degC}
objectives:
  - {name: hardness, direction: maximize, unit: HV}
budget: {experiments: 2, lanes: 2}
instruments:
  synthesizer:
    type: acme-furnace
    options:
      connection: {kind: twin, duration_s: 0.05}
      hard_limits: {limits: {temperature: {low: 20, high: HIGH, unit: degC}}}
strategy: {name: sobol}
"""


def test_names_and_bad_names() -> None:
    assert names("acme-furnace") == {
        "name": "acme-furnace",
        "dist": "matloop-acme-furnace",
        "module": "matloop_acme_furnace",
        "cls": "AcmeFurnace",
    }
    for bad in ("Acme", "acme_furnace", "-x", "x-", "a--b", "9lives", ""):
        with pytest.raises(ScaffoldError, match="lower-case letters"):
            names(bad)


def test_scaffold_refuses_installed_name_and_existing_folder(tmp_path: Path) -> None:
    taken = runner.invoke(app, ["driver", "new", "sim-furnace", "--out", str(tmp_path)])
    assert taken.exit_code == 2 and "already installed" in taken.output
    assert runner.invoke(app, ["driver", "new", "acme-furnace", "--out", str(tmp_path)]).exit_code == 0
    again = runner.invoke(app, ["driver", "new", "acme-furnace", "--out", str(tmp_path)])
    assert again.exit_code == 2 and "--force" in again.output


@pytest.mark.slow
def test_scaffolded_driver_installs_passes_its_tests_and_is_found_from_yaml(tmp_path: Path) -> None:
    made = runner.invoke(app, ["driver", "new", "acme-furnace", "--out", str(tmp_path)])
    assert made.exit_code == 0, made.output
    pkg = tmp_path / "matloop-acme-furnace"
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site)]
    subprocess.run([*pip, str(pkg)], check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(pkg / "tests")],
        cwd=pkg,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "4 passed" in tests.stdout

    matloop = [sys.executable, "-c", "from agent.cli import main; main()"]
    ok = tmp_path / "ok.yaml"
    ok.write_text(CAMPAIGN.replace("HIGH", "1000"))
    check = subprocess.run([*matloop, "driver", "check", str(ok)], env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "acme-furnace — ready, state idle" in check.stdout
    assert "temperature [20, 1000] degC" in check.stdout

    dry = subprocess.run([*matloop, "run", str(ok), "--dry-run"], env=env, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert dry.stdout.count('"cmd": "submit"') == 2

    past = tmp_path / "past.yaml"
    past.write_text(CAMPAIGN.replace("HIGH", "800"))
    refused = subprocess.run([*matloop, "driver", "check", str(past)], env=env, capture_output=True, text=True)
    assert refused.returncode == 2
    assert "temperature: the space goes up to 900 degC" in " ".join(refused.stderr.split())
