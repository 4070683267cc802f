"""Fault injection for the reference robot server: how the next calls to an endpoint go wrong.

A rule says which endpoint, what goes wrong, on how many calls, and after how many good ones. Except for the
``error_*`` modes (the robot refused before doing anything), the server first does what the call asks and then
spoils the reply, as a real network does: a submit whose reply is lost has still made its sample, and only the
``Idempotency-Key`` keeps the retry from making another.

Modes: ``garbage`` (200 with an HTML error page, not JSON), ``wrong_shape`` (200 with a JSON list instead of an
object), ``slow`` (the reply comes after ``delay_s``, past the client's read timeout), ``drop`` (the connection is
closed halfway through the reply body), ``duplicate`` (the request is handled twice, as a retrying proxy would
deliver it, and the second answer is sent), ``error_500``, ``error_503``, ``error_429`` (that status, nothing done).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

Endpoint = Literal["submit", "status", "result", "health", "approvals"]
FaultMode = Literal["garbage", "wrong_shape", "slow", "drop", "duplicate", "error_500", "error_503", "error_429"]
ENDPOINTS: tuple[str, ...] = ("submit", "status", "result", "health", "approvals")
MODES: tuple[str, ...] = ("garbage", "wrong_shape", "slow", "drop", "duplicate", "error_500", "error_503", "error_429")


class FaultRule(BaseModel):
    """Calls ``skip + 1`` to ``skip + count`` to ``endpoint`` (counted from when the rule is added) go wrong."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    endpoint: Endpoint
    mode: FaultMode
    count: int = Field(default=1, ge=1, description="how many calls in a row go wrong")
    skip: int = Field(default=0, ge=0, description="good calls first")
    delay_s: float = Field(default=2.0, gt=0, le=60, description="how late a 'slow' reply comes")

    @classmethod
    def parse(cls, text: str) -> FaultRule:
        """From ``ENDPOINT:MODE[:COUNT[:SKIP[:DELAY_S]]]`` (the CLI's ``--fault``)."""
        parts = text.split(":")
        if not 2 <= len(parts) <= 5:
            raise ValueError(f"fault {text!r}: expected ENDPOINT:MODE[:COUNT[:SKIP[:DELAY_S]]]")
        names = ("endpoint", "mode", "count", "skip", "delay_s")
        return cls.model_validate(dict(zip(names, parts, strict=False)))


class FaultBook:
    """The rules in force and the calls counted per endpoint. Used from the server's event loop only."""

    def __init__(self, rules: list[FaultRule] | None = None) -> None:
        self.calls: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
        self.injected: dict[str, int] = {}
        self._rules: list[tuple[int, FaultRule]] = []
        for rule in rules or []:
            self.add(rule)

    def add(self, rule: FaultRule) -> None:
        self._rules.append((self.calls[rule.endpoint] + rule.skip, rule))

    def clear(self) -> None:
        self._rules.clear()

    def pending(self) -> list[dict[str, Any]]:
        """Rules that have calls left to spoil, with how many."""
        out = []
        for start, rule in self._rules:
            left = start + rule.count - self.calls[rule.endpoint]
            if left > 0:
                out.append({**rule.model_dump(), "calls_left": min(left, rule.count)})
        return out

    def take(self, endpoint: str) -> FaultRule | None:
        """Counts one call to ``endpoint``; the rule that spoils it, if any."""
        self.calls[endpoint] += 1
        n = self.calls[endpoint]
        for start, rule in self._rules:
            if rule.endpoint == endpoint and start < n <= start + rule.count:
                self.injected[rule.mode] = self.injected.get(rule.mode, 0) + 1
                return rule
        return None


class DroppedResponse(Response):
    """Announces a body, sends part of it, and returns: the server closes the connection mid-reply."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"key": "', "more_body": True})


async def deliver(book: FaultBook, endpoint: str, handle: Callable[[], Awaitable[Response]]) -> Response:
    """Runs ``handle`` for one call to ``endpoint`` and delivers its reply, spoiled if a rule says so."""
    rule = book.take(endpoint)
    if rule is None:
        return await handle()
    if rule.mode.startswith("error_"):
        code = int(rule.mode.removeprefix("error_"))
        headers = {"Retry-After": "0"} if code in (429, 503) else None
        return JSONResponse({"detail": f"injected fault: HTTP {code}"}, status_code=code, headers=headers)
    if rule.mode == "duplicate":
        await handle()
    reply = await handle()
    if rule.mode == "duplicate":
        return reply
    if rule.mode == "slow":
        await asyncio.sleep(rule.delay_s)
        return reply
    if rule.mode == "garbage":
        return PlainTextResponse("<html><body><h1>502 Bad Gateway</h1>nginx</body></html>", status_code=200)
    if rule.mode == "wrong_shape":
        return JSONResponse([{"unexpected": "shape"}])
    return DroppedResponse()
