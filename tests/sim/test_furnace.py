"""SimFurnace: idempotency by key, its journal, crash recovery, validation, timing and injected faults."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest

from instruments.base import ConditionValue, PermanentFault, RequestState, SynthesisRequest, Synthesizer, TransientFault
from instruments.registry import InstrumentContext
from instruments.sim.journal import RECEIVED
from instruments.sim.lab import JOURNAL_NAME, SimFurnace
from tests.sim.conftest import vrun

SAFE: dict[str, ConditionValue] = {
    "anneal_temperature": 800.0,
    "anneal_time": 1.0,
    "cooling_rate": 1.0,
    "alloy_fraction": 0.0,
    "atmosphere": "argon",
}


def furnace(ctx: InstrumentContext, **options: Any) -> SimFurnace:
    return SimFurnace(context=ctx, **options)


def test_speaks_the_protocol_and_declares_its_inputs(ctx: InstrumentContext) -> None:
    assert isinstance(furnace(ctx), Synthesizer)
    inputs = SimFurnace.inputs({"system": "two_phase_alloy"})
    assert inputs["anneal_temperature"] == {
        "unit": "degC",
        "low": 600.0,
        "high": 1100.0,
        "log_scale": False,
        "doc": "annealing (soak) temperature",
    }
    assert inputs["cooling_rate"]["log_scale"] is True
    assert inputs["atmosphere"]["choices"] == ["argon", "vacuum", "air"]
    assert set(SimFurnace.inputs({"system": "porous_ceramic"})) == {
        "sinter_temperature",
        "hold_time",
        "pressure",
        "particle_size",
        "binder_fraction",
    }
    assert SimFurnace.outputs({}) == {}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"system": "unobtainium"}, "valid systems: two_phase_alloy, porous_ceramic"),
        ({"sytem": "two_phase_alloy"}, "sytem"),
        ({"faults": {"down_windows": [[3, 1]]}}, "start_h < end_h"),
        ({"faults": {"lost_sample_probability": 1.5}}, "less than or equal to 1"),
    ],
)
def test_bad_options_are_clear_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimFurnace.validate_options(options)


def test_same_key_makes_one_sample(ctx: InstrumentContext) -> None:
    async def go() -> None:
        f = furnace(ctx)
        req = SynthesisRequest("k1", SAFE)
        first = await f.synthesize(req)
        t_after_first = asyncio.get_running_loop().time()
        second = await f.synthesize(req)
        assert second == first
        assert asyncio.get_running_loop().time() == t_after_first  # answered from the journal, no new run
        concurrent = await asyncio.gather(
            f.synthesize(SynthesisRequest("k2", SAFE)), f.synthesize(SynthesisRequest("k2", SAFE))
        )
        assert concurrent[0] == concurrent[1]
        records = f.journal.lines("k1")
        assert [r["event"] for r in records] == ["received", "done"]  # one entry for the key
        assert len(f.journal.lines("k2")) == 2

    vrun(go())


def test_duration_is_ramp_soak_cooling_and_handling(ctx: InstrumentContext) -> None:
    async def go() -> float:
        sample = await furnace(ctx, handling_time_h=0.5).synthesize(SynthesisRequest("k", SAFE))
        assert asyncio.get_running_loop().time() == pytest.approx(sample.duration_s)
        return sample.duration_s

    expected = (800 - 25) / 10 * 60 + 3600 + (800 - 25) / 1.0 + 1800
    assert vrun(go()) == pytest.approx(expected)


def test_status_unknown_done_failed(ctx: InstrumentContext) -> None:
    async def go() -> None:
        f = furnace(ctx)
        assert (await f.status("never")).state == RequestState.UNKNOWN
        sample = await f.synthesize(SynthesisRequest("ok", SAFE))
        done = await f.status("ok")
        assert done.state == RequestState.DONE and done.sample == sample
        molten = dict(SAFE, anneal_temperature=1100.0, alloy_fraction=0.12)
        with pytest.raises(PermanentFault) as err:
            await f.synthesize(SynthesisRequest("hot", molten))
        assert err.value.code == "melted" and "solidus" in err.value.reason
        failed = await f.status("hot")
        assert failed.state == RequestState.FAILED and "solidus" in failed.reason
        with pytest.raises(PermanentFault, match="solidus"):  # the same key fails the same way
            await f.synthesize(SynthesisRequest("hot", molten))

    vrun(go())


def test_status_while_running(ctx: InstrumentContext) -> None:
    async def go() -> None:
        f = furnace(ctx)
        task = asyncio.create_task(f.synthesize(SynthesisRequest("k", SAFE)))
        await asyncio.sleep(60)
        assert (await f.status("k")).state == RequestState.RUNNING
        await task
        assert (await f.status("k")).state == RequestState.DONE

    vrun(go())


def test_a_key_received_before_a_crash_counts_as_done(ctx: InstrumentContext, tmp_path: Any) -> None:
    async def reference() -> Any:
        other = InstrumentContext(seed=ctx.seed, workdir=tmp_path / "other")
        return await furnace(other).synthesize(SynthesisRequest("k", SAFE))

    expected = vrun(reference())

    async def crashed() -> None:
        f = furnace(ctx)
        task = asyncio.create_task(f.synthesize(SynthesisRequest("k", SAFE)))
        await asyncio.sleep(10)
        task.cancel()  # the agent dies mid-run; the journal holds only the receipt

    vrun(crashed())
    assert [json.loads(x)["event"] for x in (ctx.workdir / JOURNAL_NAME).read_text().splitlines()] == [RECEIVED]

    async def resumed() -> None:
        f = furnace(ctx)
        status = await f.status("k")
        assert status.state == RequestState.DONE and status.sample is not None
        assert status.sample.sample_id == expected.sample_id and status.sample.truth == expected.truth
        again = await f.synthesize(SynthesisRequest("k", SAFE))
        assert again.sample_id == expected.sample_id

    vrun(resumed())


def test_torn_journal_line_is_ignored(ctx: InstrumentContext) -> None:
    vrun(furnace(ctx).synthesize(SynthesisRequest("k", SAFE)))
    with open(ctx.workdir / JOURNAL_NAME, "a") as fh:
        fh.write('{"key": "half", "ev')
    f = furnace(ctx)
    assert f.journal.get("half") is None and f.journal.get("k") is not None
    vrun(f.synthesize(SynthesisRequest("k2", SAFE)))
    assert furnace(ctx).journal.get("k2") is not None


@pytest.mark.parametrize(
    ("change", "code", "fragment"),
    [
        ({"anneal_temperature": 1500.0}, "outside_hard_limits", "anneal_temperature=1500 degC is outside the hard"),
        ({"atmosphere": "nitrogen"}, "outside_hard_limits", "not one of ['argon', 'vacuum', 'air']"),
        ({"pressure": 3.0}, "invalid_conditions", "unknown input 'pressure'"),
        ({"anneal_time": "long"}, "outside_hard_limits", "is not a number"),
    ],
)
def test_invalid_conditions(ctx: InstrumentContext, change: dict[str, Any], code: str, fragment: str) -> None:
    """Conditions outside the furnace's hard limits are refused before anything is journaled; other invalid
    requests are journaled as failed."""
    f = furnace(ctx)
    with pytest.raises(PermanentFault) as err:
        vrun(f.synthesize(SynthesisRequest("bad", {**SAFE, **change})))
    assert err.value.code == code
    assert fragment in err.value.reason
    assert (f.journal.get("bad") is None) == (code == "outside_hard_limits")
    missing = {k: v for k, v in SAFE.items() if k != "cooling_rate"}
    with pytest.raises(PermanentFault, match="missing input 'cooling_rate'"):
        vrun(furnace(ctx).synthesize(SynthesisRequest("bad2", missing)))


def test_deterministic_by_seed_key_and_conditions(tmp_path: Any) -> None:
    def make(seed: int, where: str, key: str = "k", **change: Any) -> Any:
        ctx = InstrumentContext(seed=seed, workdir=tmp_path / where)
        return vrun(furnace(ctx).synthesize(SynthesisRequest(key, {**SAFE, **change})))

    a, b = make(1, "a"), make(1, "b")
    assert a.truth == b.truth and a.sample_id == b.sample_id
    assert make(2, "c").truth != a.truth
    assert make(1, "d", key="other").truth != a.truth
    assert make(1, "e", anneal_time=1.5).truth != a.truth


def _outcomes(ctx: InstrumentContext, n: int, **faults: Any) -> Counter[str]:
    async def go() -> Counter[str]:
        f = furnace(ctx, faults=faults)
        seen: Counter[str] = Counter()
        for i in range(n):
            try:
                await f.synthesize(SynthesisRequest(f"k{i}", SAFE))
                seen["ok"] += 1
            except TransientFault as exc:
                seen[f"transient:{exc.code}"] += 1
            except PermanentFault as exc:
                seen[f"permanent:{exc.code}"] += 1
        return seen

    return vrun(go())


@pytest.mark.parametrize(
    ("fault", "label"),
    [
        ("transient_fault_probability", "transient:busy"),
        ("timeout_probability", "transient:timeout"),
        ("lost_sample_probability", "permanent:lost"),
        ("failure_probability", "permanent:furnace_failure"),
    ],
)
def test_injected_faults_at_their_rate(ctx: InstrumentContext, fault: str, label: str) -> None:
    n, p = 150, 0.3
    seen = _outcomes(ctx, n, **{fault: p})
    assert set(seen) == {"ok", label}
    assert abs(seen[label] - n * p) < 4 * (n * p * (1 - p)) ** 0.5, seen


def test_timeout_then_retry_returns_the_finished_sample(ctx: InstrumentContext) -> None:
    async def go() -> None:
        f = furnace(ctx, faults={"timeout_probability": 0.5})
        for i in range(20):
            req = SynthesisRequest(f"k{i}", SAFE)
            try:
                await f.synthesize(req)
            except TransientFault as exc:
                assert exc.code == "timeout"
                t0 = asyncio.get_running_loop().time()
                while True:  # the run finished: a retry answers at once from the journal
                    try:
                        sample = await f.synthesize(req)
                        break
                    except TransientFault:
                        continue
                assert asyncio.get_running_loop().time() == t0
                assert (await f.status(req.key)).sample == sample
                return
        pytest.fail("no timeout in 20 tries at p = 0.5")

    vrun(go())


def test_down_windows(ctx: InstrumentContext) -> None:
    async def go() -> None:
        f = furnace(ctx, faults={"down_windows": [(0.0, 2.0), (30.0, 31.0)]})
        with pytest.raises(TransientFault) as err:
            await f.synthesize(SynthesisRequest("k", SAFE))
        assert err.value.code == "down" and "0 h to 2 h" in err.value.reason
        assert (await f.status("k")).state == RequestState.UNKNOWN  # not accepted
        await asyncio.sleep(2 * 3600)
        sample = await f.synthesize(SynthesisRequest("k", SAFE))
        assert sample.attributes["started_lab_time_s"] == 2 * 3600

    vrun(go())


def test_samples_carry_truth_and_attributes(ctx: InstrumentContext) -> None:
    sample = vrun(
        furnace(ctx, system="porous_ceramic").synthesize(
            SynthesisRequest(
                "c",
                {
                    "sinter_temperature": 1300.0,
                    "hold_time": 1.0,
                    "pressure": 20.0,
                    "particle_size": 0.5,
                    "binder_fraction": 0.03,
                },
            )
        )
    )
    assert sample.attributes["system"] == "porous_ceramic"
    assert sample.truth is not None
    assert 0.9 < sample.truth["relative_density"] <= 1.0
    json.dumps(sample.truth)  # plain JSON for the store


def test_numbers_are_one_request_whatever_their_type(ctx: InstrumentContext) -> None:
    import numpy as np

    async def go() -> None:
        f = furnace(ctx)
        a = await f.synthesize(SynthesisRequest("a", {**SAFE, "anneal_temperature": 800}))
        b = await f.synthesize(SynthesisRequest("a", {**SAFE, "anneal_temperature": np.float32(800.0)}))  # type: ignore[dict-item]
        assert a == b and a.conditions["anneal_temperature"] == 800.0

    vrun(go())
