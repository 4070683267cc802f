"""rest-robot against the real reference robot server on loopback: the round trip, idempotency, status for
resumes, hard limits, the token, options checked with the field named, and another robot's dialect."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from instruments.base import (
    Health,
    PermanentFault,
    RequestState,
    SynthesisRequest,
    Synthesizer,
    TransientFault,
)
from instruments.drivers.rest import RestRobot
from instruments.registry import InstrumentContext, InstrumentSpecError, load_instrument, validate_options
from instruments.safety import HardLimits, LimitViolation
from instruments.sim.microscope import SimSEM

from .conftest import CONDITIONS, TOKEN_ENV, RobotServer

LIMITS = {
    "limits": {
        "anneal_temperature": {"low": 600, "high": 1000, "unit": "degC"},
        "atmosphere": {"choices": ["argon", "vacuum"]},
    }
}


def req(key: str, **over: Any) -> SynthesisRequest:
    return SynthesisRequest(key=key, conditions={**CONDITIONS, **over}, campaign="test")


async def test_round_trip_submit_status_result(robot_server: RobotServer, tmp_path: Path) -> None:
    robot = robot_server.driver(tmp_path)
    assert isinstance(robot, Synthesizer) and RestRobot.simulated is False
    assert (await robot.status("k-never-sent")).state == RequestState.UNKNOWN
    sample = await robot.synthesize(req("k-1"))
    assert sample.key == "k-1" and sample.sample_id.startswith("two_phase_alloy-")
    assert dict(sample.conditions) == CONDITIONS
    assert sample.duration_s > 3600  # hours of lab time, passed in a fraction of a second at this time scale
    assert sample.attributes["system"] == "two_phase_alloy"
    assert sample.truth is not None and sample.truth["grain_size_um"] > 0
    st = await robot.status("k-1")
    assert st.state == RequestState.DONE and st.sample is not None
    assert st.sample.sample_id == sample.sample_id and st.sample.truth == sample.truth
    # a driver that never sent the key (a restarted agent) reads the conditions back from the robot
    fresh = robot_server.driver(tmp_path)
    again = await fresh.status("k-1")
    assert again.sample is not None and dict(again.sample.conditions) == CONDITIONS
    counts = robot_server.stats()
    assert counts["started"] == {"k-1": 1} and counts["made"] == {"k-1": 1}


async def test_status_running_then_known_key_returns_the_same_sample(serve: Any, tmp_path: Path) -> None:
    srv: RobotServer = serve(time_scale=1e4)  # about a second of wall time per sample: long enough to see it run
    robot = srv.driver(tmp_path)
    with srv.http() as c:
        r = c.post("/samples", json={"key": "k-run", "conditions": CONDITIONS}, headers={"Idempotency-Key": "k-run"})
    assert r.status_code == 201 and r.json()["state"] == "running"
    assert (await robot.status("k-run")).state == RequestState.RUNNING
    sample = await robot.synthesize(req("k-run"))  # the robot already has this key: it finishes that run
    st = await robot.status("k-run")
    assert st.state == RequestState.DONE and st.sample is not None and st.sample.sample_id == sample.sample_id
    assert srv.stats()["started"] == {"k-run": 1}


async def test_same_key_twice_and_at_once_makes_one_sample(robot_server: RobotServer, tmp_path: Path) -> None:
    robot = robot_server.driver(tmp_path)
    a, b = await asyncio.gather(robot.synthesize(req("k-dup")), robot.synthesize(req("k-dup")))
    c = await robot.synthesize(req("k-dup"))
    assert a.sample_id == b.sample_id == c.sample_id and a.truth == c.truth
    counts = robot_server.stats()
    assert counts["started"] == {"k-dup": 1} and counts["made"] == {"k-dup": 1}
    assert counts["calls"]["submit"] == 3


async def test_refused_and_failed_requests_are_permanent(serve: Any, tmp_path: Path) -> None:
    srv: RobotServer = serve(furnace={"faults": {"failure_probability": 1.0}})  # every run is ruined
    robot = srv.driver(tmp_path)
    with pytest.raises(PermanentFault) as refused:  # beyond the furnace's own limits: HTTP 422, never retried
        await robot.synthesize(req("k-hot", anneal_temperature=1500.0))
    assert refused.value.code == "http_422" and "HTTP 422" in refused.value.reason
    assert "anneal_temperature" in refused.value.reason
    assert (await robot.status("k-hot")).state == RequestState.UNKNOWN
    with pytest.raises(PermanentFault) as failed:  # accepted, run, and ruined: the robot's reason
        await robot.synthesize(req("k-ruined"))
    assert failed.value.code == "robot_failed" and "thermocouple" in failed.value.reason
    st = await robot.status("k-ruined")
    assert st.state == RequestState.FAILED and "thermocouple" in st.reason
    counts = srv.stats()
    assert counts["calls"]["submit"] == 2 and counts["started"] == {"k-ruined": 1} and counts["made"] == {}


async def test_hard_limits_are_checked_before_anything_is_sent(robot_server: RobotServer, tmp_path: Path) -> None:
    robot = robot_server.driver(tmp_path, hard_limits=LIMITS)
    assert isinstance(robot.hard_limits(), HardLimits) and "anneal_temperature" in robot.hard_limits().limits
    for over in ({"anneal_temperature": 1050.0}, {"atmosphere": "air"}):
        with pytest.raises(LimitViolation) as info:
            await robot.synthesize(req("k-hot", **over))
        assert next(iter(over)) in info.value.reason
        assert robot.hard_limits().problems(robot.wire_request(req("k-hot", **over))["json"]["conditions"])
    assert robot_server.stats()["calls"]["submit"] == 0  # nothing reached the robot
    sample = await robot.synthesize(req("k-ok"))
    assert sample.key == "k-ok" and robot_server.stats()["calls"]["submit"] == 1


async def test_wire_request_is_what_is_sent_with_the_token_redacted(
    robot_server: RobotServer, tmp_path: Path, token: str
) -> None:
    robot = robot_server.driver(tmp_path, fields={"rename": {"anneal_temperature": "T_anneal_C"}})
    wire = robot.wire_request(req("k-wire"))
    assert wire["method"] == "POST" and wire["url"] == robot_server.base_url + "/samples"
    assert wire["headers"]["Idempotency-Key"] == "k-wire"
    assert TOKEN_ENV in wire["headers"]["Authorization"] and token not in repr(wire)
    assert wire["json"]["key"] == "k-wire" and wire["json"]["campaign"] == "test"
    assert wire["json"]["conditions"]["T_anneal_C"] == 880.0 and "anneal_temperature" not in wire["json"]["conditions"]


async def test_missing_or_wrong_token(
    robot_server: RobotServer, tmp_path: Path, token: str, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    robot = robot_server.driver(tmp_path)
    monkeypatch.delenv(TOKEN_ENV)
    with pytest.raises(PermanentFault) as unset:
        await robot.synthesize(req("k-tok"))
    assert TOKEN_ENV in unset.value.reason and unset.value.code == "no_token"
    assert robot_server.stats()["calls"]["submit"] == 0  # refused before sending
    monkeypatch.setenv(TOKEN_ENV, "wrong-" + token[::-1])
    for call in (robot.synthesize(req("k-tok")), robot.status("k-tok")):
        with pytest.raises(PermanentFault) as wrong:
            await call
        assert wrong.value.code == "unauthorized" and "401" in wrong.value.reason and TOKEN_ENV in wrong.value.reason
        assert token not in wrong.value.reason and token[::-1] not in wrong.value.reason
    health = await robot.ping()
    assert not health.ok and health.state == "refused" and TOKEN_ENV in health.detail
    monkeypatch.setenv(TOKEN_ENV, token)
    await robot.synthesize(req("k-tok"))
    text = caplog.text + repr([r.args for r in caplog.records])
    assert "HTTP Request" in text  # the traffic was logged, and the token with it would show here
    assert token not in text and token[::-1] not in text
    assert "authorization" not in text.lower()


async def test_ping(robot_server: RobotServer, tmp_path: Path) -> None:
    health = await robot_server.driver(tmp_path).ping()
    assert isinstance(health, Health) and health.ok and health.state in ("idle", "busy")
    assert health.info["system"] == "two_phase_alloy"
    robot_server.stop()
    down = await robot_server.driver(tmp_path, retries={"max_attempts": 2, "backoff_s": 0.01}).ping()
    assert not down.ok and down.state == "unreachable" and "ConnectError" in down.detail


async def test_unreachable_robot_is_transient_after_the_retries(tmp_path: Path, token: str) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = InstrumentContext(seed=1, workdir=tmp_path)
    robot = RestRobot(
        context=ctx,
        base_url=f"http://127.0.0.1:{port}",
        hard_limits={"limits": {}},
        token_env=TOKEN_ENV,
        retries={"max_attempts": 3, "backoff_s": 0.01},
    )
    with pytest.raises(TransientFault) as info:
        await robot.synthesize(req("k-down"))
    assert "gave up after 3 attempts" in info.value.reason and "ConnectError" in info.value.reason


def test_sim_sem_images_a_sample_made_by_the_server(robot_server: RobotServer, tmp_path: Path) -> None:
    robot = robot_server.driver(tmp_path)
    sample = asyncio.run(robot.synthesize(req("k-sem")))
    sem = SimSEM(
        context=InstrumentContext(seed=7, workdir=tmp_path / "sem"),
        size_px=96,
        setup_time_s=0,
        field_time_s=0,
        focus_failure_probability=0,
    )
    (micrograph,) = asyncio.run(sem.acquire(sample))
    assert micrograph.path.exists() and micrograph.pixel_size_um is not None
    assert micrograph.truth is not None and micrograph.truth["mean_intercept_um"] > 0


# --- options -------------------------------------------------------------------------------------------------
BAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"hard_limits": {"limits": {}}}, "base_url"),
    ({"base_url": "http://127.0.0.1:1"}, "hard_limits"),
    ({"base_url": "ftp://robot"}, "base_url"),
    ({"base_url": "http://127.0.0.1:1", "timeouts": {"read_s": -1}}, "timeouts.read_s"),
    ({"base_url": "http://127.0.0.1:1", "retries": {"max_attempts": 0}}, "retries.max_attempts"),
    ({"base_url": "http://127.0.0.1:1", "endpoints": {"status": "/samples"}}, "endpoints.status"),
    ({"base_url": "http://127.0.0.1:1", "endpoints": {"result": "/r/{id}"}}, "endpoints.result"),
    ({"base_url": "http://127.0.0.1:1", "fields": {"states": {"ok": "finished"}}}, "fields.states.ok"),
    ({"base_url": "http://127.0.0.1:1", "tokn_env": "X"}, "tokn_env"),
    ({"base_url": "http://127.0.0.1:1", "token_env": "Bearer abc.def-123"}, "token_env"),
    ({"base_url": "http://127.0.0.1:1", "headers": {"Authorization": "Bearer x"}}, "headers"),
    ({"base_url": "http://robot.lab:80", "hard_limits": {"limits": {}}}, "plain http"),
    ({"base_url": "http://127.0.0.1:1", "hard_limits": {"limits": {"t": {"low": 1}}}}, "hard_limits.limits.t"),
    ({"base_url": "http://127.0.0.1:1", "poll_interval_s": 0}, "poll_interval_s"),
]


@pytest.mark.parametrize(("options", "field"), BAD_OPTIONS, ids=[f for _, f in BAD_OPTIONS])
def test_bad_options_name_the_field(options: dict[str, Any], field: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        RestRobot.validate_options(options)
    assert field in str(info.value)
    with pytest.raises(InstrumentSpecError) as spec_err:  # as `matloop validate` sees it
        validate_options("rest-robot", options)
    assert "rest-robot" in str(spec_err.value) and field in str(spec_err.value)
    ctx = InstrumentContext(seed=1, workdir=tmp_path)
    with pytest.raises(InstrumentSpecError):
        load_instrument("rest-robot", "synthesizer", options, ctx)


def test_good_options_load_through_the_registry(tmp_path: Path) -> None:
    ctx = InstrumentContext(seed=1, workdir=tmp_path)
    options = {"base_url": "https://robot.lab/api/v1/", "hard_limits": {"limits": {}}}
    robot = load_instrument("rest-robot", "synthesizer", options, ctx)
    assert isinstance(robot, RestRobot) and robot.options.base_url == "https://robot.lab/api/v1"
    assert robot.options.token_env == "MATLOOP_ROBOT_TOKEN" and robot.hard_limits() == HardLimits()


# --- another robot's dialect (a scripted robot over an injected transport) -----------------------------------
class DialectRobot:
    """A robot with its own words: conditions at top level under its names, job.status QUEUED/BUSY/COMPLETE/ERROR,
    the sample inside the status reply, and no result endpoint. It checks the idempotency key of every submit."""

    def __init__(self, fail_first_polls: int = 0) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self.submits = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"].startswith("Bearer ")
        if request.method == "POST":
            self.submits += 1
            body = request.read()
            import json

            data = json.loads(body)
            key = request.headers["idempotency-key"]
            assert data["job_id"] == key and "TempC" in data and "anneal_temperature" not in data
            self.jobs.setdefault(key, data)
            return httpx.Response(202, json={"accepted": True})
        key = request.url.path.rsplit("/", 1)[-1]
        if key not in self.jobs:
            return httpx.Response(404, json={"error": "no such job"})
        n = self.polls[key] = self.polls.get(key, 0) + 1
        if n < 3:
            return httpx.Response(200, json={"job": {"status": "QUEUED" if n == 1 else "BUSY"}})
        if self.jobs[key]["TempC"] > 950:
            return httpx.Response(200, json={"job": {"status": "ERROR", "message": "crucible cracked"}})
        return httpx.Response(
            200,
            json={"job": {"status": "COMPLETE"}, "out": {"id": 4711, "minutes": 90, "meta": {"furnace": "F2"}}},
        )


DIALECT: dict[str, Any] = {
    "base_url": "http://robot.test",
    "hard_limits": {"limits": {"anneal_temperature": {"low": 600, "high": 1100, "unit": "degC"}}},
    "token_env": TOKEN_ENV,
    "allow_plain_http": True,
    "poll_interval_s": 0.001,
    "endpoints": {"submit": "/jobs", "status": "/jobs/{key}", "result": None, "ping": None},
    "fields": {
        "conditions_object": None,
        "key_field": "job_id",
        "campaign_field": None,
        "rename": {"anneal_temperature": "TempC"},
        "state": "job.status",
        "reason": "job.message",
        "sample_id": "out.id",
        "duration_s": None,
        "attributes": "out.meta",
        "truth": None,
        "conditions": None,
        "states": {"QUEUED": "running", "BUSY": "running", "COMPLETE": "done", "ERROR": "failed"},
    },
}


async def test_another_robots_dialect_through_options_only(tmp_path: Path, token: str) -> None:
    fake = DialectRobot()
    robot = RestRobot(
        context=InstrumentContext(seed=1, workdir=tmp_path), transport=httpx.MockTransport(fake), **DIALECT
    )
    sample = await robot.synthesize(req("job-1"))
    assert sample.sample_id == "4711" and sample.attributes == {"furnace": "F2"} and sample.truth is None
    assert (await robot.status("job-1")).state == RequestState.DONE
    assert (await robot.status("job-2")).state == RequestState.UNKNOWN
    with pytest.raises(PermanentFault, match="crucible cracked"):
        await robot.synthesize(req("job-3", anneal_temperature=990.0))
    st = await robot.status("job-3")
    assert st.state == RequestState.FAILED and st.reason == "crucible cracked"
    assert (await robot.ping()).state == "unknown"  # no ping endpoint configured: nothing to ask


async def test_a_robot_that_echoes_the_token_does_not_leak_it(tmp_path: Path, token: str) -> None:
    def echo(request: httpx.Request) -> httpx.Response:  # a careless robot: quotes the header in its error
        return httpx.Response(400, json={"detail": f"bad request with {request.headers['authorization']}"})

    robot = RestRobot(
        context=InstrumentContext(seed=1, workdir=tmp_path), transport=httpx.MockTransport(echo), **DIALECT
    )
    with pytest.raises(PermanentFault) as info:
        await robot.synthesize(req("job-echo"))
    assert "HTTP 400" in info.value.reason and "<redacted>" in info.value.reason and token not in info.value.reason


async def test_the_default_options_speak_the_reference_server(
    robot_server: RobotServer, tmp_path: Path, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATLOOP_ROBOT_TOKEN", token)  # the default token_env, as `matloop sim serve` reads it
    made = await robot_server.driver(tmp_path).synthesize(req("k-default"))
    plain = RestRobot(
        context=InstrumentContext(seed=1, workdir=tmp_path), base_url=robot_server.base_url, hard_limits={"limits": {}}
    )
    assert (await plain.ping()).ok
    st = await plain.status("k-default")
    assert st.state == RequestState.DONE and st.sample is not None
    assert st.sample.sample_id == made.sample_id and st.sample.truth == made.truth
    assert dict(st.sample.conditions) == CONDITIONS and st.sample.duration_s == made.duration_s


async def test_an_in_process_twin_over_an_asgi_transport(tmp_path: Path, token: str) -> None:
    from instruments.sim.server import create_app

    app = create_app(workdir=tmp_path / "twin", seed=7, time_scale=2e5, token_env=TOKEN_ENV)
    async with app.router.lifespan_context(app):  # what a server would do at start and stop
        robot = RestRobot(
            context=InstrumentContext(seed=7, workdir=tmp_path),
            transport=httpx.ASGITransport(app=app),
            base_url="http://127.0.0.1",
            hard_limits={"limits": {}},
            token_env=TOKEN_ENV,
            poll_interval_s=0.01,
        )
        sample = await robot.synthesize(req("k-twin"))
        assert (await robot.status("k-twin")).state == RequestState.DONE and sample.truth is not None
        assert (await robot.synthesize(req("k-twin"))).sample_id == sample.sample_id
