"""The agent loop with fake instruments: lanes, joint asks, faults as values, stop rules, resume."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.lab import Lab
from agent.lifecycle import ExperimentState as S
from agent.loop import Agent
from agent.spec import parse_spec
from agent.store import Store
from agent.vclock import VirtualTimeLoop
from instruments.base import PermanentFault, TransientFault
from instruments.testing import FakeCharacterizer, FakeSynthesizer
from surrogate.testing import CountingStrategy

SPEC = """\
schema_version: 1
name: loop
seed: 1
space:
  parameters:
    - {name: x, type: float, low: 0, high: 100, unit: K}
objectives:
  - {name: y, direction: maximize, unit: ""}
budget: {experiments: EXP, lanes: LANES}
instruments:
  synthesizer: {type: fake}
retries: {max_attempts: 3, backoff_s: 60}
EXTRA
"""


def make_spec(experiments: int = 6, lanes: int = 1, extra: str = ""):
    return parse_spec(SPEC.replace("EXP", str(experiments)).replace("LANES", str(lanes)).replace("EXTRA", extra))


def run_agent(spec, store: Store, synth: FakeSynthesizer, strategy: CountingStrategy, f=lambda c: float(c["x"])):
    row = store.campaign(spec.name) or store.create_campaign(spec.name, "y", "h" * 64, spec.seed, "")
    lab = Lab(synthesizer=synth, characterizer=FakeCharacterizer({"y": f}, sigma=0.1))
    agent = Agent(spec, store, row, lab, strategy)
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(agent.run()), agent


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path}/loop.db", tmp_path / "files")
    yield s
    s.close()


def test_runs_budget_in_lab_time(store: Store) -> None:
    spec = make_spec(experiments=6, lanes=3)
    synth = FakeSynthesizer(duration_s=3600)
    strat = CountingStrategy(lambda i: {"x": float(i)})
    result, _ = run_agent(spec, store, synth, strat)
    exps = store.experiments(1)
    assert [e.state for e in exps] == [S.COMPLETED] * 6
    assert result.lab_time_s == pytest.approx(2 * 3600)  # 6 experiments of 1 h on 3 robots
    # three robots free at once (at the start, and again after 1 h): one joint ask each time
    assert strat.asks == [(3, 0), (3, 0)]
    assert len(strat.told) == 6


def test_transient_faults_retry_permanent_ones_fail(store: Store) -> None:
    spec = make_spec(experiments=3)
    synth = FakeSynthesizer(
        duration_s=600,
        faults={1: TransientFault("furnace busy", code="busy"), 3: PermanentFault("sample melted", code="melted")},
    )
    strat = CountingStrategy(lambda i: {"x": float(i)})
    run_agent(spec, store, synth, strat)
    exps = store.experiments(1)
    assert [e.state for e in exps] == [S.COMPLETED, S.FAILED, S.COMPLETED]
    assert exps[0].attempt == 2 and exps[1].failure_code == "melted"
    assert [o.failed for o in strat.told] == [False, True, False]
    retries = [e for e in store.events(1) if e.kind == "retry"]
    assert len(retries) == 1 and retries[0].payload["code"] == "busy"


def test_retries_exhausted_fail_the_experiment_not_the_run(store: Store) -> None:
    spec = make_spec(experiments=2)
    synth = FakeSynthesizer(faults={i: TransientFault("down") for i in (1, 2, 3)})
    run_agent(spec, store, synth, CountingStrategy(lambda i: {"x": float(i)}))
    exps = store.experiments(1)
    assert [e.state for e in exps] == [S.FAILED, S.COMPLETED]
    assert exps[0].failure_code == "retries_exhausted" and "3 attempts" in exps[0].failure_reason


def test_driver_bug_is_a_failed_experiment(store: Store) -> None:
    class Buggy(FakeSynthesizer):
        async def synthesize(self, request):  # type: ignore[override]
            raise ZeroDivisionError("oops")

    run_agent(make_spec(experiments=2), store, Buggy(), CountingStrategy(lambda i: {"x": float(i)}))
    assert {e.failure_code for e in store.experiments(1)} == {"instrument_error"}


def test_target_stops_early(store: Store) -> None:
    spec = make_spec(experiments=20, extra="stopping: {target: {y: 4}}")
    result, _ = run_agent(spec, store, FakeSynthesizer(), CountingStrategy(lambda i: {"x": float(i)}))
    assert result.stop_reason == "target reached"
    assert len(store.experiments(1)) == 5


def test_no_improvement_stops(store: Store) -> None:
    spec = make_spec(experiments=30, extra="stopping: {no_improvement: {experiments: 4}}")
    strat = CountingStrategy(lambda i: {"x": 50.0 if i == 0 else float(i)})
    result, _ = run_agent(spec, store, FakeSynthesizer(), strat, f=lambda c: -abs(float(c["x"]) - 50))
    assert result.stop_reason == "no improvement in 4 experiments"
    assert len(store.experiments(1)) == 5


def test_resume_reconciles_in_flight_experiments(store: Store) -> None:
    """Experiments left proposed/submitted/synthesized by a dead agent are finished, none made twice."""
    spec = make_spec(experiments=5)
    row = store.create_campaign(spec.name, "y", "h" * 64, spec.seed, "")
    synth = FakeSynthesizer()
    # a dead agent left: #1 proposed, #2 submitted and never received, #3 submitted and made, #4 synthesized
    ids = [
        store.propose(row.id, "k", {"x": float(i)}, generator="g", model_state={}, lab_time_s=0).id for i in range(4)
    ]
    for eid in ids[1:]:
        store.transition(eid, S.SUBMITTED, lab_time_s=0)
    made = asyncio.run(synth.synthesize(__import__("instruments").SynthesisRequest("k-00003", {"x": 2.0})))
    asyncio.run(synth.synthesize(__import__("instruments").SynthesisRequest("k-00004", {"x": 3.0})))
    store.record_sample(ids[3], sample_id="S-2", duration_s=0, attributes={}, truth=None, lab_time_s=0)
    strat = CountingStrategy(lambda i: {"x": 50.0 + i})
    run_agent(spec, store, synth, strat)
    exps = store.experiments(row.id)
    assert [e.state for e in exps] == [S.COMPLETED] * 5
    assert len(synth.made) == 5 and synth.made["k-00003"] == made
    recon = [e.payload["instrument_state"] for e in store.events(row.id) if e.kind == "reconcile"]
    assert sorted(recon) == ["done", "unknown"]
    assert strat.asks == [(1, 0)]  # only the fifth experiment was new


def test_same_spec_same_campaign(tmp_path: Path) -> None:
    def once(d: Path) -> list:
        s = Store(f"sqlite:///{d}/a.db", d)
        run_agent(
            make_spec(experiments=8, lanes=3),
            s,
            FakeSynthesizer(duration_s=1800),
            CountingStrategy(lambda i: {"x": float((i * 37) % 100)}),
        )
        out = [(e.index, e.conditions, e.state, e.lab_time_end_s) for e in s.experiments(1)]
        s.close()
        return out

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert once(tmp_path / "a") == once(tmp_path / "b")


def test_lab_closes_its_instruments_and_survives_a_bad_close() -> None:
    closed: list[str] = []

    class AsyncClosing(FakeSynthesizer):
        async def aclose(self) -> None:
            closed.append("synth")

    class Closing(FakeCharacterizer):
        def close(self) -> None:
            closed.append("char")

    class Broken:
        async def acquire(self, sample):  # type: ignore[no-untyped-def]
            return []

        def close(self) -> None:
            raise OSError("socket already gone")

    lab = Lab(synthesizer=AsyncClosing(), imager=Broken(), characterizer=Closing({"y": lambda c: 1.0}))
    asyncio.run(lab.aclose())
    assert closed == ["synth", "char"]
