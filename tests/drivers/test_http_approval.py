"""People in the loop over HTTP: a campaign posts each proposal to the reference server's approvals queue and a
person (a thread speaking plain HTTP) approves, edits, vetoes; every decision is in the event log with who."""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.campaign import Campaign
from agent.errors import ConfigError
from agent.http_approver import ApprovalServiceError, HttpApprover
from agent.human import ProposalInfo
from agent.lifecycle import ExperimentState as S
from tests.drivers.conftest import TOKEN_ENV, RobotServer
from tests.drivers.test_rest_faults import CAMPAIGN


def person(srv: RobotServer, plan: list[dict[str, Any]], stop: threading.Event, seen: list[dict[str, Any]]) -> None:
    """Decides pending approvals in order, one per entry of ``plan`` (then approves), until ``stop``."""
    i = 0
    with srv.http() as http:
        while not stop.is_set():
            pending = http.get("/approvals", params={"state": "pending"}).json()["approvals"]
            for a in pending:
                decision = plan[i] if i < len(plan) else {"kind": "approve", "who": "ana"}
                if decision["kind"] == "edit":
                    edited = dict(a["proposal"]["conditions"], anneal_temperature=901.0)
                    decision = {**decision, "conditions": edited}
                r = http.post(f"/approvals/{a['id']}/decision", json=decision)
                assert r.status_code == 200, r.text
                seen.append(a)
                i += 1
            time.sleep(0.02)


def test_campaign_waits_for_decisions_made_over_http(serve: Any, tmp_path: Path, token: str) -> None:
    srv: RobotServer = serve()
    home = tmp_path / "campaign"
    home.mkdir()
    path = home / "rest_lab.yaml"
    text = CAMPAIGN.format(base_url=srv.base_url, token_env=TOKEN_ENV).replace("experiments: 6", "experiments: 4")
    path.write_text(textwrap.dedent(text))
    plan = [
        {"kind": "approve", "who": "ana", "note": "looks fine"},
        {"kind": "edit", "who": "ben", "note": "901 is our calibrated set point"},
        {"kind": "veto", "who": "ana", "note": "air anneal clogs the furnace"},
    ]
    stop, seen = threading.Event(), []
    t = threading.Thread(target=person, args=(srv, plan, stop, seen), daemon=True)
    t.start()
    campaign = Campaign.from_yaml(path)
    try:
        approver = HttpApprover(srv.base_url, token_env=TOKEN_ENV, campaign="rest_lab", poll_s=0.02)
        result = campaign.run(approver=approver)
    finally:
        stop.set()
        t.join(timeout=10)
    assert result.status == "completed"
    df = campaign.table().set_index("experiment")
    events = campaign.store.events(campaign.row.id)  # type: ignore[union-attr]
    campaign.close()

    # the veto returned its experiment to the budget: 4 submitted, 1 abandoned, 5 proposals reviewed
    assert len(seen) == 5 and (df["state"] == S.ABANDONED).sum() == 1
    assert ((df["state"] == S.COMPLETED) | (df["state"] == S.FAILED)).sum() == 4
    assert df.loc[2, "x.anneal_temperature"] == 901.0  # the edit is what the robot was sent
    assert srv.stats()["started"].get(df.loc[2, "key"]) == 1
    assert df.loc[3, "key"] not in srv.stats()["started"]  # the vetoed proposal never reached the robot
    by_kind = {(e.kind, e.actor) for e in events}
    assert {("approve", "ana"), ("edit", "ben")} <= by_kind
    assert any(e.kind == "transition" and e.actor == "ana" and "air anneal" in str(e.payload) for e in events)
    assert seen[0]["proposal"]["campaign"] == "rest_lab" and seen[0]["proposal"]["index"] == 1


def test_approver_needs_its_token_and_names_a_refusal(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    srv: RobotServer = serve()
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="NO_SUCH_TOKEN"):
        HttpApprover(srv.base_url, token_env="NO_SUCH_TOKEN")
    monkeypatch.setenv("WRONG_TOKEN", "not-the-token")
    wrong = HttpApprover(srv.base_url, token_env="WRONG_TOKEN", poll_s=0.01)
    with pytest.raises(ApprovalServiceError, match="refused the token") as err:
        wrong.review(ProposalInfo(index=1, conditions={"x": 1.0}, generator="test"))
    assert "not-the-token" not in str(err.value)


def test_approver_rides_out_a_restart_of_the_service(serve: Any) -> None:
    """Transient failures (here: a 503 on the next two polls) are retried until a person decides."""
    srv: RobotServer = serve(faults=["approvals:error_503:2"])
    approver = HttpApprover(srv.base_url, token_env=TOKEN_ENV, poll_s=0.01)
    decided = threading.Event()

    def decide() -> None:
        with srv.http() as http:
            while not decided.is_set():
                for a in http.get("/approvals", params={"state": "pending"}).json().get("approvals", []):
                    http.post(f"/approvals/{a['id']}/decision", json={"kind": "stop", "who": "cy", "note": "enough"})
                    decided.set()
                time.sleep(0.01)

    t = threading.Thread(target=decide, daemon=True)
    t.start()
    try:
        d = approver.review(ProposalInfo(index=7, conditions={"anneal_temperature": 800.0}, generator="test"))
    except httpx.HTTPError:  # pragma: no cover - the approver must not leak transport errors
        raise
    finally:
        decided.set()
        t.join(timeout=5)
    assert d.kind == "stop" and d.who == "cy" and d.note == "enough"


def test_cli_refuses_two_approvers_and_a_missing_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from agent.cli import app

    path = tmp_path / "rest_lab.yaml"
    path.write_text(textwrap.dedent(CAMPAIGN.format(base_url="http://127.0.0.1:9", token_env=TOKEN_ENV)))
    runner = CliRunner()
    both = runner.invoke(app, ["run", str(path), "--approve", "--approve-url", "http://127.0.0.1:9"])
    assert both.exit_code == 2 and "not both" in both.output
    monkeypatch.delenv("APPROVALS_TOKEN", raising=False)
    no_token = runner.invoke(
        app, ["run", str(path), "--approve-url", "http://127.0.0.1:9", "--token-env", "APPROVALS_TOKEN"]
    )
    assert no_token.exit_code == 2 and "APPROVALS_TOKEN" in no_token.output
    assert not (tmp_path / "matloop.db").exists() or "rest_lab" not in (tmp_path / "matloop.db").read_bytes().decode(
        "latin-1"
    )
