"""The reference robot server itself: bearer-token auth on every endpoint, no token in its logs, refusing to start
without its token, binding loopback by default, fault rules, and the approvals queue for people in the loop."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from instruments.sim.cli import app as sim_cli
from instruments.sim.server import ServerConfigError, create_app, is_loopback
from instruments.sim.server_faults import FaultRule

from .conftest import CONDITIONS, TOKEN_ENV, RobotServer

ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/health", None),
    ("POST", "/samples", {"key": "k", "conditions": CONDITIONS}),
    ("GET", "/samples/k", None),
    ("GET", "/samples/k/result", None),
    ("GET", "/approvals?state=pending", None),
    ("POST", "/approvals", {"index": 1, "conditions": {"x": 1.0}}),
    ("GET", "/approvals/ap-1", None),
    ("POST", "/approvals/ap-1/decision", {"kind": "approve", "who": "ana"}),
    ("GET", "/admin/stats", None),
    ("POST", "/admin/faults", {"rules": []}),
    ("POST", "/admin/restart", {"forget": True}),
    ("GET", "/openapi.json", None),
    ("GET", "/no/such/route", None),
]


def test_every_endpoint_refuses_a_missing_or_wrong_token(robot_server: RobotServer, token: str, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    for bad in ("", "not-the-token", token[:-1], token + "x"):
        with robot_server.http(token=bad) as c:
            for method, url, body in ROUTES:
                r = c.request(method, url, json=body)
                assert r.status_code == 401, (bad, method, url, r.text)
                assert r.headers["www-authenticate"] == "Bearer" and token not in r.text
    with httpx.Client(base_url=robot_server.base_url) as c:  # another scheme is no bearer token either
        assert c.get("/health", headers={"Authorization": f"Basic {token}"}).status_code == 401
    counts = robot_server.stats()
    assert counts["calls"]["submit"] == 0 and counts["started"] == {} and counts["restarts"] == 0
    with robot_server.http() as c:
        assert c.get("/health").json()["ok"] is True
        r = c.post("/samples", json={"conditions": CONDITIONS}, headers={"Idempotency-Key": "k-ok"})
        assert r.status_code == 201
    assert token not in caplog.text and "authorization" not in caplog.text.lower()


def test_submit_needs_an_idempotency_key_that_agrees(robot_server: RobotServer) -> None:
    with robot_server.http() as c:
        r = c.post("/samples", json={"conditions": CONDITIONS})
        assert r.status_code == 422 and "Idempotency-Key" in r.text
        r = c.post("/samples", json={"key": "a", "conditions": CONDITIONS}, headers={"Idempotency-Key": "b"})
        assert r.status_code == 422 and "differs" in r.text
        r = c.post("/samples", json={"conditions": CONDITIONS, "colour": "red"}, headers={"Idempotency-Key": "c"})
        assert r.status_code == 422 and "colour" in r.text
        first = c.post("/samples", json={"conditions": CONDITIONS}, headers={"Idempotency-Key": "d"})
        second = c.post("/samples", json={"conditions": CONDITIONS}, headers={"Idempotency-Key": "d"})
        assert (first.status_code, second.status_code) == (201, 200)
        assert c.get("/samples/nope").status_code == 404 and c.get("/samples/nope/result").status_code == 404
    assert robot_server.stats()["started"] == {"d": 1}


def test_the_server_refuses_to_start_without_its_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MATLOOP_UNSET_TOKEN", raising=False)
    with pytest.raises(ServerConfigError, match="MATLOOP_UNSET_TOKEN"):
        create_app(workdir=tmp_path, token_env="MATLOOP_UNSET_TOKEN")
    res = CliRunner().invoke(sim_cli, ["serve", "--port", "1", "--token-env", "MATLOOP_UNSET_TOKEN"])
    assert res.exit_code == 2 and "MATLOOP_UNSET_TOKEN is not set" in res.output
    res = CliRunner().invoke(
        sim_cli, ["serve", "--port", "1", "--host", "0.0.0.0", "--token-env", "MATLOOP_UNSET_TOKEN"]
    )
    assert res.exit_code == 2 and "WARNING: binding 0.0.0.0" in res.output  # warned before anything else
    monkeypatch.setenv("MATLOOP_SET_TOKEN", "t")
    with pytest.raises(ServerConfigError, match="system"):
        create_app(workdir=tmp_path, system="unobtainium", token_env="MATLOOP_SET_TOKEN")
    with pytest.raises(ServerConfigError, match=r"furnace\.faults\.failure_probability"):
        create_app(workdir=tmp_path, token_env="MATLOOP_SET_TOKEN", furnace={"faults": {"failure_probability": 2}})
    with pytest.raises(ServerConfigError, match="time_scale"):
        create_app(workdir=tmp_path, time_scale=0, token_env="MATLOOP_SET_TOKEN")
    res = CliRunner().invoke(
        sim_cli, ["serve", "--port", "1", "--token-env", "MATLOOP_SET_TOKEN", "--fault", "status:explode"]
    )
    assert res.exit_code == 2 and "mode" in res.output and "explode" in res.output


def test_loopback_hosts() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.10", "robot.lab"))


def test_cli_serve_binds_loopback_by_default(tmp_path: Path, token: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).parent / "matloop"
    args = [str(exe), "sim", "serve", "--port", str(port), "--workdir", str(tmp_path / "w"), "--token-env", TOKEN_ENV]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "NO_COLOR": "1"}
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", headers={"Authorization": f"Bearer {token}"})
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        assert r.status_code == 200 and r.json()["state"] == "idle"
        assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 401
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"Uvicorn running on http://127.0.0.1:{port}" in out
    assert "WARNING: binding" not in out and token not in out


def test_fault_rules_parse_and_count(robot_server: RobotServer) -> None:
    rule = FaultRule.parse("status:slow:2:1:0.5")
    assert (rule.endpoint, rule.mode, rule.count, rule.skip, rule.delay_s) == ("status", "slow", 2, 1, 0.5)
    with pytest.raises(ValueError, match="mode"):
        FaultRule.parse("status:explode")
    robot_server.inject({"endpoint": "health", "mode": "error_500", "count": 1, "skip": 1})
    with robot_server.http() as c:
        codes = [c.get("/health").status_code for _ in range(3)]
        assert codes == [200, 500, 200]
        assert c.get("/admin/faults").json()["pending"] == []
        r = c.post("/admin/faults", json={"rules": [{"endpoint": "health", "mode": "teleport"}]})
        assert r.status_code == 422 and "mode" in r.text


# --- approvals ------------------------------------------------------------------------------------------------
PROPOSAL = {
    "index": 3,
    "conditions": {"anneal_temperature": 900.0, "atmosphere": "argon"},
    "generator": "Sobol",
    "predictions": {"strength_ductility": [9.5, 1.2]},
    "acquisition_value": 0.12,
    "campaign": "quickstart",
}


def test_approvals_queue(robot_server: RobotServer) -> None:
    with robot_server.http() as c:
        a = c.post("/approvals", json=PROPOSAL)
        b = c.post("/approvals", json={**PROPOSAL, "index": 4})
        assert a.status_code == b.status_code == 201
        aid, bid = a.json()["id"], b.json()["id"]
        assert a.json()["state"] == "pending" and a.json()["decision"] is None
        assert a.json()["proposal"]["predictions"] == {"strength_ductility": [9.5, 1.2]}
        pending = c.get("/approvals", params={"state": "pending"}).json()["approvals"]
        assert [p["id"] for p in pending] == [aid, bid]

        edited = {"anneal_temperature": 850.0, "atmosphere": "vacuum"}
        r = c.post(
            f"/approvals/{aid}/decision", json={"kind": "edit", "who": "ana", "note": "cooler", "conditions": edited}
        )
        assert r.status_code == 200 and r.json()["state"] == "decided"
        polled = c.get(f"/approvals/{aid}").json()  # what the agent sees when it polls
        assert polled["decision"]["kind"] == "edit" and polled["decision"]["conditions"] == edited
        assert polled["decision"]["who"] == "ana" and polled["decision"]["at"]
        again = c.post(f"/approvals/{aid}/decision", json={"kind": "veto", "who": "bo"})
        assert again.status_code == 409 and "already decided" in again.text and "ana" in again.text
        assert [p["id"] for p in c.get("/approvals?state=pending").json()["approvals"]] == [bid]
        assert [p["id"] for p in c.get("/approvals?state=decided").json()["approvals"]] == [aid]
        assert c.get("/approvals/ap-99").status_code == 404
        assert c.post("/approvals/ap-99/decision", json={"kind": "approve", "who": "x"}).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "edit", "who": "ana"}, "conditions"),
        ({"kind": "approve", "who": "ana", "conditions": {"x": 1}}, "conditions"),
        ({"kind": "maybe", "who": "ana"}, "kind"),
        ({"kind": "approve"}, "who"),
        ({"kind": "approve", "who": "  "}, "who"),
        ({"kind": "approve", "who": "ana", "mood": "good"}, "mood"),
    ],
)
def test_a_bad_decision_is_422_naming_the_field(robot_server: RobotServer, body: dict[str, Any], field: str) -> None:
    with robot_server.http() as c:
        aid = c.post("/approvals", json=PROPOSAL).json()["id"]
        r = c.post(f"/approvals/{aid}/decision", json=body)
        assert r.status_code == 422
        assert any(field in [str(x) for x in d["loc"]] or field in d["msg"] for d in r.json()["detail"]), r.json()
        assert c.get(f"/approvals/{aid}").json()["state"] == "pending"  # nothing was decided
        bad = c.post("/approvals", json={**PROPOSAL, "index": 0})
        assert bad.status_code == 422 and "index" in bad.text
        assert c.get("/approvals", params={"state": "someday"}).status_code == 422


def test_non_finite_numbers_are_refused_not_stored(robot_server: RobotServer) -> None:
    body = '{"index": 1, "conditions": {"x": 1.0}, "acquisition_value": NaN}'  # Python's json writes NaN
    with robot_server.http() as c:
        r = c.post("/approvals", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and "acquisition_value" in r.text
        assert c.get("/approvals").json()["approvals"] == []
