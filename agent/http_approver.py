"""The HTTP approver behind ``matloop run --approve-url URL``: each proposal is posted to an approvals queue (the
reference robot server's ``/approvals``, or any service speaking the same JSON) and the loop waits, without
blocking running experiments, until a person decides there.

Wire: ``POST /approvals`` {index, conditions, generator, predictions, acquisition_value, campaign} → {id, ...};
``GET /approvals/{id}`` → {state: pending|decided, decision: {kind, who, note, conditions} | null}. The bearer
token is read from an environment variable; it is never logged or recorded.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from typing import Any

import httpx

from agent.errors import ConfigError
from agent.human import ApprovalError, Decision, ProposalInfo

log = logging.getLogger("matloop.approve")


class ApprovalServiceError(ApprovalError):
    """The approvals service refused or garbled a request for good (auth, bad payload, unknown approval)."""


class HttpApprover:
    """Posts proposals and polls for decisions. Transient faults (connection, 5xx, timeouts) are retried for as
    long as the person may take; ``timeout_s`` (None: wait for ever) turns a wait that long into a ``stop``."""

    def __init__(
        self,
        url: str,
        *,
        token_env: str = "MATLOOP_ROBOT_TOKEN",
        campaign: str = "",
        poll_s: float = 2.0,
        timeout_s: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        token = os.environ.get(token_env)
        if not token:
            raise ConfigError([f"--approve-url: the environment variable {token_env} holding the token is not set"])
        self.url = url.rstrip("/")
        self.campaign = campaign
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {token}"}
        self._transport = transport

    def review(self, proposal: ProposalInfo) -> Decision:
        """For callers without an event loop."""
        return asyncio.run(self.areview(proposal))

    async def areview(self, proposal: ProposalInfo) -> Decision:
        body = {
            "index": proposal.index,
            "conditions": dict(proposal.conditions),
            "generator": proposal.generator,
            "predictions": {k: [m, s] for k, (m, s) in proposal.predictions.items() if math.isfinite(m + s)},
            "acquisition_value": proposal.acquisition_value,
            "campaign": self.campaign,
        }
        async with httpx.AsyncClient(headers=self._headers, transport=self._transport, timeout=30.0) as client:
            record = await self._call(client, "POST", "/approvals", body)
            aid = str(record["id"])
            log.info("experiment %d waits for approval %s at %s/approvals/%s", proposal.index, aid, self.url, aid)
            loop = asyncio.get_running_loop()
            start = loop.time()
            while record.get("state") != "decided":
                if self.timeout_s is not None and loop.time() - start > self.timeout_s:
                    return Decision("stop", "matloop", note=f"no decision on approval {aid} in {self.timeout_s:g} s")
                await asyncio.sleep(self.poll_s)
                record = await self._call(client, "GET", f"/approvals/{aid}")
        return _decision(record, aid)

    async def _call(self, client: httpx.AsyncClient, method: str, path: str, body: Any = None) -> dict[str, Any]:
        delay = 1.0
        while True:
            try:
                r = await client.request(method, self.url + path, json=body)
                if r.status_code < 500 and r.status_code != 429:
                    break
                reason = f"HTTP {r.status_code}"
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}"
            log.warning("approvals service %s %s: %s; retrying in %.0f s", method, path, reason, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
        if r.status_code == 401:
            raise ApprovalServiceError(f"{self.url}{path}: the approvals service refused the token (HTTP 401)")
        if r.status_code >= 400:
            raise ApprovalServiceError(f"{method} {self.url}{path}: HTTP {r.status_code}: {r.text[:300]}")
        try:
            data = r.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or "id" not in data:
            raise ApprovalServiceError(f"{method} {self.url}{path}: not an approval record: {r.text[:200]}")
        return data


def _decision(record: dict[str, Any], aid: str) -> Decision:
    d = record.get("decision")
    if not isinstance(d, dict):
        raise ApprovalServiceError(f"approval {aid} is marked decided but carries no decision: {record}")
    try:
        return Decision(str(d["kind"]), str(d["who"]), str(d.get("note") or ""), d.get("conditions"))  # type: ignore[arg-type]
    except (KeyError, ValueError) as exc:
        raise ApprovalServiceError(f"approval {aid}: the decision is not valid: {exc}") from exc
