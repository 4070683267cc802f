"""Faults injected into the real reference robot server, and what rest-robot makes of them: every transient fault
is retried (or handed to the agent as a TransientFault), a 4xx is permanent, a restarted robot is reconciled, and
no fault ever makes a sample twice. Then a whole campaign runs against the server through injected faults."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agent.campaign import Campaign
from agent.lifecycle import ExperimentState as S
from instruments.base import PermanentFault, RequestState, SynthesisRequest, TransientFault

from .conftest import CONDITIONS, TOKEN_ENV, RobotServer


def req(key: str) -> SynthesisRequest:
    return SynthesisRequest(key=key, conditions=dict(CONDITIONS), campaign="test")


def assert_one_sample(srv: RobotServer, *keys: str) -> None:
    counts = srv.stats()
    assert counts["made"] == dict.fromkeys(keys, 1), counts
    assert counts["started"] == dict.fromkeys(keys, 1), counts


SPOILED = [
    ("submit", "garbage"),
    ("submit", "wrong_shape"),
    ("status", "garbage"),
    ("status", "wrong_shape"),
    ("result", "garbage"),
    ("result", "wrong_shape"),
    ("submit", "drop"),
    ("status", "drop"),
    ("result", "drop"),
    ("submit", "error_500"),
    ("submit", "error_503"),
    ("status", "error_429"),
    ("result", "error_503"),
]


@pytest.mark.parametrize(("endpoint", "mode"), SPOILED, ids=[f"{e}-{m}" for e, m in SPOILED])
async def test_transient_faults_are_retried_and_make_one_sample(
    robot_server: RobotServer, tmp_path: Path, endpoint: str, mode: str, caplog: Any
) -> None:
    robot_server.inject({"endpoint": endpoint, "mode": mode, "count": 2})
    robot = robot_server.driver(tmp_path)
    sample = await robot.synthesize(req("k-1"))
    assert sample.truth is not None and sample.sample_id
    assert robot_server.stats()["injected"] == {mode: 2}
    assert_one_sample(robot_server, "k-1")
    retried = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retried) == 2 and all(f"{endpoint} k-1" in m for m in retried)


@pytest.mark.parametrize("endpoint", ["submit", "status", "result"])
async def test_a_reply_slower_than_the_timeout_is_retried(
    robot_server: RobotServer, tmp_path: Path, endpoint: str
) -> None:
    # the server does the work, then answers after 1.2 s; the client waits 0.5 s for a reply
    robot_server.inject({"endpoint": endpoint, "mode": "slow", "delay_s": 1.2})
    robot = robot_server.driver(tmp_path)
    first = await robot.synthesize(req("k-slow"))
    again = await robot.synthesize(req("k-slow"))
    assert first.sample_id == again.sample_id
    assert robot_server.stats()["injected"] == {"slow": 1}
    assert_one_sample(robot_server, "k-slow")


async def test_the_same_answer_twice_is_one_sample(robot_server: RobotServer, tmp_path: Path) -> None:
    # the server handles each of these calls twice (a proxy that delivers twice); status stays DONE -> DONE
    for endpoint in ("submit", "status", "result"):
        robot_server.inject({"endpoint": endpoint, "mode": "duplicate", "count": 3})
    robot = robot_server.driver(tmp_path)
    sample = await robot.synthesize(req("k-twice"))
    statuses = [await robot.status("k-twice") for _ in range(3)]
    assert all(s.state == RequestState.DONE and s.sample == statuses[0].sample for s in statuses)
    assert statuses[0].sample is not None and statuses[0].sample.sample_id == sample.sample_id
    resent = await robot.synthesize(req("k-twice"))
    assert resent.sample_id == sample.sample_id and resent.truth == sample.truth
    assert robot_server.stats()["injected"]["duplicate"] >= 5
    assert_one_sample(robot_server, "k-twice")


async def test_retries_exhausted_is_transient_and_the_same_key_resumes(
    robot_server: RobotServer, tmp_path: Path
) -> None:
    robot_server.inject({"endpoint": "submit", "mode": "garbage", "count": 3})
    robot = robot_server.driver(tmp_path, retries={"max_attempts": 3, "backoff_s": 0.01})
    with pytest.raises(TransientFault) as info:
        await robot.synthesize(req("k-gone"))
    assert "submit k-gone: gave up after 3 attempts" in info.value.reason and "not JSON" in info.value.reason
    # the robot did take the request (only its replies were garbled); the agent's retry under the same key
    # finds it instead of making another sample
    assert (await robot.status("k-gone")).state in (RequestState.RUNNING, RequestState.DONE)
    sample = await robot.synthesize(req("k-gone"))
    assert sample.key == "k-gone"
    assert_one_sample(robot_server, "k-gone")


async def test_a_client_error_is_permanent_and_not_retried(
    robot_server: RobotServer, tmp_path: Path, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    robot = robot_server.driver(tmp_path, fields={"campaign_field": "project"})  # a body key the server rejects
    with pytest.raises(PermanentFault) as info:
        await robot.synthesize(req("k-422"))
    assert info.value.code == "http_422" and "HTTP 422" in info.value.reason and "project" in info.value.reason
    sent = [r.getMessage() for r in caplog.records if r.getMessage().startswith("HTTP Request: POST")]
    assert len(sent) == 1 and "422" in sent[0]  # sent once, not retried


async def test_restart_and_forget_mid_experiment(serve: Any, tmp_path: Path, caplog: Any) -> None:
    srv: RobotServer = serve(time_scale=5e3)  # a run takes a few seconds of wall time
    robot = srv.driver(tmp_path)
    task = asyncio.create_task(robot.synthesize(req("k-lost")))
    while srv.stats()["started"] != {"k-lost": 1}:
        await asyncio.sleep(0.02)
    srv.restart(forget=True)  # the robot loses the run in flight and its memory of the key
    sample = await task  # the driver saw the key unknown and sent it again, under the same key
    assert sample.key == "k-lost" and sample.truth is not None
    assert any("does not know request k-lost" in r.getMessage() for r in caplog.records)
    counts = srv.stats()
    assert counts["restarts"] == 1 and counts["made"] == {"k-lost": 1}
    assert counts["started"] == {"k-lost": 2}  # the first run was cut off by the restart, before it made anything
    # a robot that forgot a key says so to a resuming agent: status is UNKNOWN, and sending it makes it once
    with srv.http() as c:
        c.post("/samples", json={"conditions": CONDITIONS}, headers={"Idempotency-Key": "k-x"}).raise_for_status()
    srv.restart(forget=True)
    assert (await robot.status("k-x")).state == RequestState.UNKNOWN


async def test_a_restarted_server_remembers_its_journal_unless_fresh(serve: Any, tmp_path: Path) -> None:
    first: RobotServer = serve()
    robot = first.driver(tmp_path)
    made = await robot.synthesize(req("k-kept"))
    first.stop()
    second: RobotServer = serve()  # same workdir: the journal is read back
    robot = second.driver(tmp_path)
    st = await robot.status("k-kept")
    assert st.state == RequestState.DONE and st.sample is not None and st.sample.sample_id == made.sample_id
    assert (await robot.synthesize(req("k-kept"))).sample_id == made.sample_id
    assert_one_sample(second, "k-kept")
    second.stop()
    third: RobotServer = serve(fresh=True)  # the journal is archived: the robot forgot everything
    assert (await third.driver(tmp_path).status("k-kept")).state == RequestState.UNKNOWN


# --- the main proof: a campaign through rest-robot against the real server, with faults --------------------
CAMPAIGN = """\
schema_version: 1
name: rest_lab
seed: 11
space:
  parameters:
    - {{name: anneal_temperature, type: float, low: 650, high: 1050, unit: degC}}
    - {{name: anneal_time, type: float, low: 0.2, high: 12, unit: h, log_scale: true}}
    - {{name: cooling_rate, type: float, low: 0.5, high: 300, unit: K/s, log_scale: true}}
    - {{name: alloy_fraction, type: float, low: 0.0, high: 0.1, unit: "1"}}
    - {{name: atmosphere, type: categorical, choices: [argon, vacuum, air]}}
objectives:
  - {{name: strength_ductility, direction: maximize, unit: GPa*%}}
outcome_constraints:
  - {{name: grain_size_um, op: "<=", bound: 20, unit: um}}
budget: {{experiments: 6, lanes: 2}}
retries: {{max_attempts: 4, backoff_s: 0.05, backoff_factor: 2}}
instruments:
  synthesizer:
    type: rest-robot
    options:
      base_url: {base_url}
      token_env: {token_env}
      poll_interval_s: 0.05
      timeouts: {{connect_s: 2, read_s: 0.5}}
      retries: {{max_attempts: 4, backoff_s: 0.02, max_backoff_s: 0.2}}
      hard_limits:
        limits:
          anneal_temperature: {{low: 600, high: 1100, unit: degC}}
          atmosphere: {{choices: [argon, vacuum, air]}}
  imager:
    type: sim-sem
    options: {{system: two_phase_alloy, size_px: 160, setup_time_s: 0, field_time_s: 0}}
  characterizer:
    type: sim-tester
    options: {{system: two_phase_alloy, duration_h: 0}}
imaging: {{pipeline: classical, overlays: false}}
strategy: {{name: sobol}}
"""


def test_campaign_through_rest_robot_with_faults(serve: Any, tmp_path: Path, token: str, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    srv: RobotServer = serve(
        faults=[
            # ENDPOINT:MODE:COUNT:SKIP[:DELAY_S]; every experiment makes >= 1 submit, status and (done) result call
            "submit:garbage:1",  # the first reply is an HTML error page
            "status:drop:1:1",  # a connection dropped mid-experiment
            "result:slow:1:0:1.2",  # a reply slower than the 0.5 s read timeout
            "submit:duplicate:2:3",  # requests delivered twice
            "result:duplicate:1:2",  # the same result answered twice
            "status:error_503:1:3",
        ]
    )
    home = tmp_path / "campaign"
    home.mkdir()
    path = home / "rest_lab.yaml"
    path.write_text(textwrap.dedent(CAMPAIGN.format(base_url=srv.base_url, token_env=TOKEN_ENV)))
    campaign = Campaign.from_yaml(path)
    result = campaign.run()
    assert result.status == "completed" and result.lab_time_s > 0
    df = campaign.table()
    campaign.close()

    # every experiment accounted for: completed with its measurements, or failed with a reason
    assert len(df) == 6 and set(df["state"]) <= {S.COMPLETED, S.FAILED}, df[["state", "failure_reason"]]
    failed = df[df["state"] == S.FAILED]
    assert failed["failure_reason"].fillna("").str.len().gt(0).all()
    done = df[df["state"] == S.COMPLETED]
    assert len(done) >= 3 and done["y.grain_size_um"].gt(0).all() and done["y.strength_ductility"].notna().all()

    # the faults fired, and still the server made exactly one sample per key it was sent
    counts = srv.stats()
    assert set(counts["injected"]) == {"garbage", "drop", "slow", "duplicate", "error_503"}, counts["injected"]
    keys = set(df["key"])
    assert set(counts["started"]) == keys and all(n == 1 for n in counts["started"].values()), counts
    assert all(n == 1 for n in counts["made"].values()), counts
    assert set(done["key"]) <= set(counts["made"])  # each completed experiment is one of the robot's samples

    # the token is nowhere: not in the store, its event log, its files, nor the logs
    stored = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".db") for p in stored)
    for p in stored:
        assert token.encode() not in p.read_bytes(), p
    db = next(p for p in stored if p.name.endswith(".db"))
    with sqlite3.connect(db) as con:
        events = con.execute("SELECT * FROM event").fetchall()
    assert events and token not in repr(events)
    assert token not in caplog.text
