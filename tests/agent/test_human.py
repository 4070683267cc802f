"""People in the loop: approve, veto, edit or stop each proposal (Python API and the terminal prompt of
``matloop run --approve``), and results entered by hand (``Campaign.record``, ``add_experiment``, ``matloop
record``). Every human action is an event with who did it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent import Campaign
from agent.assemble import build_strategy
from agent.cli import app
from agent.errors import ConfigError, IllegalTransition
from agent.human import Decision, InvalidEdit, ProposalInfo, ScriptedApprover, parse_values
from agent.lab import Lab
from agent.lifecycle import ExperimentState as S
from agent.loop import Agent
from agent.spec import parse_spec
from agent.store import MeasuredValue, Store
from agent.vclock import VirtualTimeLoop
from instruments.base import Sample, SynthesisRequest
from instruments.testing import FakeCharacterizer, FakeSynthesizer
from surrogate.base import Conditions, Observation, Proposal

from .simple import Recording, ceramic_campaign

runner = CliRunner()
WIDE = {"COLUMNS": "200"}

SPEC = """\
schema_version: 1
name: people
seed: 1
space:
  parameters:
    - {name: x, type: float, low: 0, high: 100, unit: K}
objectives:
  - {name: y, direction: maximize, unit: ""}
budget: {experiments: EXP, lanes: 1}
instruments:
  synthesizer: {type: fake}
"""


class Lowest:
    """Proposes the smallest integer x not pending nor told: it would propose a vetoed x again if the loop
    did not pass vetoed points as pending."""

    def __init__(self) -> None:
        self.told: list[Observation] = []
        self.pendings: list[list[float]] = []

    def ask(self, n: int, pending: Sequence[Conditions]) -> list[Proposal]:
        used = {float(p["x"]) for p in pending} | {float(o.conditions["x"]) for o in self.told}
        self.pendings.append(sorted(float(p["x"]) for p in pending))
        out: list[Proposal] = []
        x = 0.0
        while len(out) < n:
            if x not in used:
                out.append(Proposal({"x": x}, "lowest", predictions={"y": (x, 1.0)}, acquisition_value=0.5))
                used.add(x)
            x += 1
        return out

    def tell(self, results: Sequence[Observation]) -> None:
        self.told.extend(results)


def run_agent(store: Store, experiments: int, approver, synth=None, strategy=None):  # type: ignore[no-untyped-def]
    spec = parse_spec(SPEC.replace("EXP", str(experiments)))
    row = store.campaign(spec.name) or store.create_campaign(spec.name, "y", "h" * 64, spec.seed, "")
    lab = Lab(synthesizer=synth or FakeSynthesizer(), characterizer=FakeCharacterizer({"y": lambda c: c["x"]}))
    strategy = strategy or Lowest()
    agent = Agent(spec, store, row, lab, strategy, approver=approver)
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as r:
        return r.run(agent.run()), strategy


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path}/people.db", tmp_path / "files")
    yield s
    s.close()


def script(*decisions: Decision | None) -> ScriptedApprover:
    """Decisions in order; None (or running out) approves."""
    todo = list(decisions)

    def decide(p: ProposalInfo) -> Decision:
        d = todo.pop(0) if todo else None
        return d or Decision("approve", "alice")

    return ScriptedApprover(decide)


def test_approve_veto_edit_through_the_api(store: Store) -> None:
    approver = script(
        Decision("approve", "alice", note="looks fine"),
        Decision("veto", "bob", note="furnace cannot do it"),
        Decision("edit", "carol", note="hotter", conditions={"x": 99.0}),
    )
    result, strat = run_agent(store, 4, approver)
    assert result.stop_reason == "experiment budget of 4 reached"
    exps = store.experiments(1)
    # the veto gave the budget its experiment back: 4 ran, 1 was abandoned
    assert [(e.index, e.state, e.conditions["x"]) for e in exps] == [
        (1, S.COMPLETED, 0.0),
        (2, S.ABANDONED, 1.0),
        (3, S.COMPLETED, 99.0),
        (4, S.COMPLETED, 2.0),  # the edited-away proposal is neither pending nor told: free again
        (5, S.COMPLETED, 3.0),
    ]
    assert exps[1].failure_code == "vetoed" and exps[1].failure_reason == "furnace cannot do it"
    # the approver saw what the model believed
    assert approver.seen[0].predictions == {"y": (0.0, 1.0)} and approver.seen[0].acquisition_value == 0.5
    # vetoed x=1 is pending for every later ask, so it is never proposed again
    assert all(1.0 in p for p in strat.pendings[2:])
    assert sorted(float(o.conditions["x"]) for o in strat.told) == [0.0, 2.0, 3.0, 99.0]  # the edit was run
    human = [(e.kind, e.actor, e.experiment_id) for e in store.events(1) if e.actor != "agent"]
    assert ("approve", "alice", exps[0].id) in human
    assert ("transition", "bob", exps[1].id) in human
    assert ("edit", "carol", exps[2].id) in human
    edit = next(e for e in store.events(1) if e.kind == "edit")
    assert edit.payload == {"original": {"x": 2.0}, "edited": {"x": 99.0}, "note": "hotter"}


def test_bad_edit_raises_and_resume_asks_again(store: Store) -> None:
    with pytest.raises(InvalidEdit, match=r"x=500 outside \[0, 100\]"):
        run_agent(store, 2, script(Decision("edit", "alice", conditions={"x": 500.0})))
    row = store.campaign("people")
    assert row is not None and row.status == "interrupted" and "outside" in row.stop_reason
    assert [e.state for e in store.experiments(1)] == [S.PROPOSED]  # nothing was submitted
    approver = script()
    run_agent(store, 2, approver)
    assert approver.seen[0].index == 1  # the unreviewed proposal was reviewed on resume
    assert [e.state for e in store.experiments(1)] == [S.COMPLETED, S.COMPLETED]


def test_stop_decision_ends_the_campaign(store: Store) -> None:
    result, _ = run_agent(store, 5, script(None, Decision("stop", "alice", note="enough")))
    assert result.stop_reason == "stopped by alice: enough"
    assert [e.state for e in store.experiments(1)] == [S.COMPLETED, S.ABANDONED]


def test_decision_checks_itself() -> None:
    with pytest.raises(ValueError, match="edited conditions"):
        Decision("edit", "alice")
    with pytest.raises(ValueError, match="valid: approve"):
        Decision("maybe", "alice")  # type: ignore[arg-type]


def test_results_entered_while_the_agent_waits(store: Store) -> None:
    """A person finishes experiment 1 by hand while the furnace still has it, and adds a manual experiment."""

    class Slow(FakeSynthesizer):
        async def synthesize(self, request: SynthesisRequest) -> Sample:
            if request.key.endswith("00001"):
                eid = store.experiments(1)[0].id
                assert eid is not None
                store.enter_result(eid, [MeasuredValue("y", 42.0, 0.5, "")], who="dana", lab_time_s=0)
                store.add_manual_experiment(
                    1, "k", {"x": 50.0}, [MeasuredValue("y", 50.0, 0.1, "")], who="dana", lab_time_s=0
                )
            return await super().synthesize(request)

    _, strat = run_agent(store, 3, None, synth=Slow(duration_s=60))
    exps = store.experiments(1)
    assert [(e.state, e.generator) for e in exps] == [
        (S.COMPLETED, "lowest"),
        (S.COMPLETED, "manual"),
        (S.COMPLETED, "lowest"),
    ]
    assert len(exps) == 3  # the manual experiment counts against the budget
    assert store.measurements_of(exps[0].id or 0)[0].value == 42.0  # the person's value, not the instrument's
    told = {float(o.conditions["x"]): o.values["y"][0] for o in strat.told}
    assert told == {0.0: 42.0, 50.0: 50.0, 1.0: 1.0}


def test_parse_values() -> None:
    assert parse_values(["a=1.5±0.2", "b = 3", "c=4+-1", "d=-2e3+/-5"]) == {
        "a": (1.5, 0.2),
        "b": (3.0, 0.0),
        "c": (4.0, 1.0),
        "d": (-2000.0, 5.0),
    }
    with pytest.raises(ConfigError, match="valid: a, b"):
        parse_values(["z=1"], ["a", "b"])
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_values(["a:1"])
    with pytest.raises(ConfigError, match="σ finite and >= 0"):
        parse_values(["a=1±-1"])


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> list[Recording]:
    made: list[Recording] = []

    def build(spec):  # type: ignore[no-untyped-def]
        made.append(Recording(build_strategy(spec)))
        return made[-1]

    monkeypatch.setattr("agent.campaign.build_strategy", build)
    return made


def test_cli_prompt_approve_veto_edit(tmp_path: Path, recording: list[Recording]) -> None:
    path = ceramic_campaign(tmp_path, experiments=3)
    keep = "\n" * 4  # Enter keeps the other four inputs
    answers = (
        "a\nok\n"  # experiment 1: approve, with a note
        "v\ntoo hot\n"  # experiment 2: veto
        f"e\n2000\n{keep}"  # experiment 3: edit with a temperature the furnace cannot reach ...
        f"1300\n{keep}by hand\n"  # ... re-asked with the problem named; then a valid one and a note
        "x\na\n\n"  # experiment 4: an invalid choice is asked again, then approve
    )
    res = runner.invoke(app, ["run", str(path), "--approve", "--who", "erin"], input=answers, env=WIDE)
    assert res.exit_code == 0, res.output
    assert "sinter_temperature=2000 outside [1150, 1650]" in res.output
    assert "experiment 2 vetoed by erin: too hot" in res.output
    c = Campaign.from_yaml(path)
    exps = c.store.experiments(c._row_id())
    assert [e.state in (S.COMPLETED, S.FAILED) for e in exps] == [True, False, True, True]
    assert exps[1].state == S.ABANDONED and exps[1].failure_reason == "too hot"
    assert exps[2].conditions["sinter_temperature"] == 1300.0
    assert {e.actor for e in c.store.events(c._row_id()) if e.kind in ("approve", "edit")} == {"erin"}
    vetoed = exps[1].conditions
    assert all(vetoed in p for p in recording[0].pendings[2:])
    shown = runner.invoke(app, ["explain", str(path), "3"], env=WIDE)
    assert shown.exit_code == 0 and "erin: edit — by hand" in shown.output and "proposed" in shown.output
    c.close()


def test_cli_prompt_end_of_input_stops(tmp_path: Path) -> None:
    path = ceramic_campaign(tmp_path, experiments=3)
    res = runner.invoke(app, ["run", str(path), "--approve"], input="a\n\n", env=WIDE)
    assert res.exit_code == 0, res.output
    assert "stopped by" in res.output and "end of input" in res.output


def _waiting_campaign(tmp_path: Path) -> Path:
    """A campaign interrupted by a bad edit: experiment 1 completed, experiment 2 proposed and waiting."""
    path = ceramic_campaign(tmp_path, experiments=4)
    c = Campaign.from_yaml(path)
    with pytest.raises(InvalidEdit):
        c.run(approver=script(None, Decision("edit", "x", conditions={"pressure": 1.0})))
    c.close()
    return path


def test_record_by_hand_cli(tmp_path: Path, recording: list[Recording]) -> None:
    path = _waiting_campaign(tmp_path)
    ok = runner.invoke(
        app,
        ["record", str(path), "2", "--value", "flexural_strength=300±5", "-v", "thermal_conductivity=25",
         "--who", "frank", "--note", "measured on the old rig"],
        env=WIDE,
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "experiment 2: completed (entered by frank)" in ok.output
    again = runner.invoke(app, ["record", str(path), "2", "--failed", "oops"], env=WIDE)
    assert again.exit_code == 2 and "it is final" in again.output
    missing = runner.invoke(app, ["record", str(path), "new", "--set", "pressure=3", "-v", "flexural_strength=1"])
    assert missing.exit_code == 2 and "missing inputs" in missing.output
    cond = ["--set", "sinter_temperature=1400", "--set", "hold_time=2", "--set", "pressure=10"]
    cond += ["--set", "particle_size=1", "--set", "binder_fraction=0.02"]
    half = runner.invoke(app, ["record", str(path), "new", *cond, "-v", "flexural_strength=1"], env=WIDE)
    assert half.exit_code == 2 and "missing values for thermal_conductivity" in half.output
    unknown = runner.invoke(app, ["record", str(path), "new", *cond, "-v", "toughness=1"], env=WIDE)
    assert unknown.exit_code == 2 and "valid: flexural_strength, thermal_conductivity" in unknown.output
    new = runner.invoke(
        app,
        ["record", str(path), "new", *cond, "-v", "flexural_strength=410±9", "-v", "thermal_conductivity=31±1",
         "--who", "frank"],
        env=WIDE,
    )  # fmt: skip
    assert new.exit_code == 0 and "experiment 3: completed" in new.output
    c = Campaign.from_yaml(path)
    e2, e3 = c.experiment(2), c.experiment(3)
    assert e3.generator == "manual" and e3.conditions["hold_time"] == 2.0
    m = {x.name: (x.value, x.sigma, x.source) for x in c.store.measurements_of(e2.id or 0)}
    assert m["flexural_strength"] == (300.0, 5.0, "manual:frank") and m["thermal_conductivity"][:2] == (25.0, 0.0)
    manual = [e for e in c.store.events(c._row_id()) if e.payload.get("manual")]
    assert [(e.actor, e.to_state, e.payload["note"]) for e in manual] == [
        ("frank", "completed", "measured on the old rig"),
        ("frank", "completed", ""),
    ]
    # resuming: the strategy learns both hand-entered results, and they count against the budget of 4
    c.resume()
    told = {o.conditions["pressure"]: o.values.get("flexural_strength") for o in recording[-1].told}
    assert told[10.0] == (410.0, 9.0) and (300.0, 5.0) in told.values()
    assert len(c.store.experiments(c._row_id())) == 4
    shown = runner.invoke(app, ["explain", str(path), "2"], env=WIDE)
    assert "frank: result entered (completed) — measured on the old rig" in shown.output
    c.close()


def test_record_failure_and_api_errors(tmp_path: Path) -> None:
    path = _waiting_campaign(tmp_path)
    c = Campaign.from_yaml(path)
    with pytest.raises(ConfigError, match="not both or neither"):
        c.record(2, who="gus")
    exp = c.record(2, failed="sample cracked in the press", who="gus")
    assert exp.state == S.FAILED and exp.failure_code == "manual"
    with pytest.raises(IllegalTransition):
        c.record(1, {"flexural_strength": 1.0, "thermal_conductivity": 2.0}, who="gus")
    with pytest.raises(ConfigError, match="outside"):
        c.add_experiment({"sinter_temperature": 9000, "hold_time": 1, "pressure": 1, "particle_size": 1,
                          "binder_fraction": 0}, failed="no", who="gus")  # fmt: skip
    c.close()


def test_edit_problems_name_the_input() -> None:
    from agent.human import coerce_conditions, edit_problems

    space = parse_spec(SPEC.replace("EXP", "1")).space
    assert edit_problems(space, coerce_conditions(space, {"x": "abc"})) == ["x='abc' is not a number"]
    assert edit_problems(space, coerce_conditions(space, {"x": "5"})) == []
    assert edit_problems(space, {"x": 5.0, "z": 1.0}) == ["unknown inputs: ['z']"]
