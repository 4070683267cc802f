"""Hard limits from the agent's side: a space past a driver's limits is refused before anything is recorded, a
request outside them is never sent, and an edit into them is refused; `--dry-run` and `driver check`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from agent.cli import app
from agent.errors import ConfigError
from agent.human import Decision, InvalidEdit, ScriptedApprover
from agent.lab import Lab
from agent.lifecycle import ExperimentState as S
from agent.loop import Agent
from agent.safety import space_problems
from agent.spec import parse_spec
from agent.store import Store
from agent.vclock import VirtualTimeLoop
from instruments.safety import HardLimit, HardLimits
from instruments.testing import FakeCharacterizer, FakeSynthesizer
from surrogate.testing import CountingStrategy
from tests.agent.simple import ROOT
from tests.agent.test_loop import make_spec

runner = CliRunner()
LIMITS = HardLimits(limits={"x": HardLimit(low=0, high=60, unit="K")})


class LimitedFake(FakeSynthesizer):
    """A fake synthesizer that declares limits but (like a buggy driver) does not check them itself."""

    def hard_limits(self) -> HardLimits:
        return LIMITS


def _agent(store: Store, synth: FakeSynthesizer, approver: ScriptedApprover | None = None) -> tuple[Agent, object]:
    spec = make_spec(experiments=6)
    row = store.create_campaign(spec.name, "y", "h" * 64, spec.seed, "")
    lab = Lab(synthesizer=synth, characterizer=FakeCharacterizer({"y": lambda c: float(c["x"])}, sigma=0.1))
    return Agent(
        spec, store, row, lab, CountingStrategy(lambda i: {"x": float((i * 37) % 100)}), approver=approver
    ), row


def _run(agent: Agent) -> object:
    import asyncio

    with asyncio.Runner(loop_factory=VirtualTimeLoop) as r:
        return r.run(agent.run())


def test_request_outside_limits_is_never_sent(tmp_path: Path) -> None:
    """The space (0..100 K) reaches past the driver's 60 K: proposals above it fail without reaching the driver."""
    store = Store(f"sqlite:///{tmp_path}/s.db", tmp_path / "files")
    synth = LimitedFake()
    agent, row = _agent(store, synth)
    _run(agent)
    exps = store.experiments(row.id)  # type: ignore[attr-defined]
    refused = [e for e in exps if e.state == S.FAILED]
    assert refused and all(float(e.conditions["x"]) > 60 for e in refused)
    assert all(e.failure_code == "outside_hard_limits" for e in refused)
    assert "outside the hard limit [0, 60] K" in (refused[0].failure_reason or "")
    sent = [dict(s.conditions) for s in synth.made.values()]
    assert sent and all(float(c["x"]) <= 60 for c in sent)
    assert not any(e.kind == "submitted" for e in store.experiment_events(refused[0].id))  # type: ignore[arg-type]
    store.close()


def test_edit_outside_limits_is_refused(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/s.db", tmp_path / "files")
    approver = ScriptedApprover(lambda p: Decision("edit", "ana", conditions={"x": 90.0}))
    agent, _ = _agent(store, LimitedFake(), approver)
    with pytest.raises(InvalidEdit, match="outside the hard limit"):
        _run(agent)
    store.close()


def test_space_problems_name_input_unit_and_choices() -> None:
    spec = parse_spec(
        (ROOT / "campaigns" / "quickstart.yaml").read_text().replace("low: 650, high: 1050", "low: 650, high: 1200")
    )
    limits = HardLimits(
        limits={
            "anneal_temperature": HardLimit(low=600, high=1100, unit="°C"),
            "anneal_time": HardLimit(low=0, high=12, unit="s"),
            "atmosphere": HardLimit(choices=("argon", "vacuum")),
        }
    )
    problems = space_problems(spec.space, limits)
    assert any(
        "anneal_temperature: the space goes up to 1200 degC, above the limit [600, 1100] °C" in p for p in problems
    )
    assert any("anneal_time: the space is in 'h', the driver's hard limit in 's'" in p for p in problems)
    assert any("atmosphere: choices ['air'] are not allowed" in p for p in problems)
    assert (
        space_problems(spec.space, HardLimits(limits={"anneal_temperature": HardLimit(low=0, high=2000, unit="degC")}))
        == []
    )


@given(low=st.floats(-1e3, 1e3), width=st.floats(0, 1e3), x=st.floats(-3e3, 3e3))
def test_limit_accepts_exactly_its_range(low: float, width: float, x: float) -> None:
    lim = HardLimits(limits={"x": HardLimit(low=low, high=low + width, unit="K")})
    assert (lim.problems({"x": x}) == []) == (low <= x <= low + width)


def _strict_quickstart(tmp_path: Path, high: float) -> Path:
    text = (ROOT / "campaigns" / "quickstart.yaml").read_text()
    text = text.replace(
        "      system: two_phase_alloy\n      faults:",
        "      system: two_phase_alloy\n"
        f"      hard_limits: {{limits: {{anneal_temperature: {{low: 600, high: {high}, unit: degC}}}}}}\n"
        "      faults:",
    )
    text = re.sub(r"pipeline: unet.*\n  options: .*\n", "pipeline: classical\n", text)
    path = tmp_path / "strict.yaml"
    path.write_text(text)
    return path


def _recorded(path: Path) -> object:
    """The campaign's row in its own store (None when nothing was recorded)."""
    from agent.campaign import Campaign

    c = Campaign.from_yaml(path)
    try:
        assert c.location.url.endswith("quickstart.matloop.db"), c.location.url
        return c.row
    finally:
        c.close()


def test_space_past_furnace_limit_is_refused_before_anything_is_recorded(tmp_path: Path) -> None:
    path = _strict_quickstart(tmp_path, 1000)
    result = runner.invoke(app, ["run", str(path), "-q"])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "anneal_temperature: the space goes up to 1050 degC, above the limit [600, 1000] degC" in text
    assert _recorded(path) is None
    with pytest.raises(ConfigError):
        from agent.campaign import Campaign

        Campaign.from_yaml(path).run()


def test_dry_run_sends_and_records_nothing(tmp_path: Path) -> None:
    path = _strict_quickstart(tmp_path, 1100)
    result = runner.invoke(app, ["run", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "nothing sent, nothing recorded" in result.output
    assert result.output.count("would send") == 2  # one per lane
    start = result.output.index("{")
    first = json.loads(result.output[start : result.output.index("\n}", start) + 2])
    assert set(first["conditions"]) == {
        "anneal_temperature",
        "anneal_time",
        "cooling_rate",
        "alloy_fraction",
        "atmosphere",
    }
    assert _recorded(path) is None
    assert not list(tmp_path.rglob("sim_furnace_journal.jsonl")) or all(
        p.read_text() == "" for p in tmp_path.rglob("sim_furnace_journal.jsonl")
    )


def test_driver_check_reports_state_and_limits(tmp_path: Path) -> None:
    path = _strict_quickstart(tmp_path, 1100)
    result = runner.invoke(app, ["driver", "check", str(path)], terminal_width=250)
    assert result.exit_code == 0, result.output
    assert "sim-furnace" in result.output and "idle" in result.output
    assert "anneal_temperature [600, 1100] degC" in result.output
    assert "the driver has no ping" in result.output  # sim-sem and sim-tester: honest about it
    listing = runner.invoke(app, ["driver", "list"])
    assert "sim-furnace" in listing.output


def test_first_contact_must_pass_before_anything_is_recorded(tmp_path: Path) -> None:
    """A furnace down for maintenance at the start: the run is refused (exit 1) naming it, nothing is recorded;
    --no-check starts anyway."""
    path = _strict_quickstart(tmp_path, 1100)
    text = path.read_text().replace(
        "faults: {transient_fault_probability: 0.05}",
        "faults: {transient_fault_probability: 0.05, down_windows: [[0, 0.5]]}",
    )
    text = text.replace("experiments: 20", "experiments: 2")
    path.write_text(text)
    refused = runner.invoke(app, ["run", str(path), "-q"])
    assert refused.exit_code == 1, refused.output
    said = " ".join(refused.output.split())
    assert "first contact failed" in said and "synthesizer sim-furnace: maintenance" in said
    assert _recorded(path) is None
    started = runner.invoke(app, ["run", str(path), "-q", "--no-check"])
    assert started.exit_code == 0, started.output
