"""The reference robot server: the simulated lab (``SimFurnace``) behind the REST API that ``rest-robot`` speaks
with its default options, so that a campaign can run against a real HTTP service before a real robot exists.

Start it with ``matloop sim serve --port 8765`` (token in ``$MATLOOP_ROBOT_TOKEN``), or in-process with
``create_app(...)`` under uvicorn. Every request needs ``Authorization: Bearer <token>`` (401 otherwise); the token
comes from the environment variable named by ``token_env`` and is never logged. Lab time passes ``time_scale``
times faster than wall time. The furnace journals to ``workdir``: restarted on the same folder, the server still
knows every key it accepted; ``fresh=True`` (``--fresh``) archives the journal first and forgets them all.

Samples (``key``: the idempotency key; a key never makes two samples)::

    POST /samples            headers: Idempotency-Key: KEY
        body   {"key": KEY, "campaign": "name", "conditions": {"anneal_temperature": 900.0, "atmosphere": "argon"}}
        reply  201 (new) or 200 (known key, nothing made): the key's status record, below
               503 {"detail": why} when the furnace cannot take it now (busy, maintenance): retry later
               422 {"detail": why} when it never will (outside the furnace's hard limits), when the body is
                   malformed, or when the header and body keys differ
    GET /samples/{key}       200 status record | 404 {"detail": ...} for a key the lab does not know
        running  {"key", "state": "running", "conditions", "started_lab_time_s", "expected_duration_s", "lab_time_s"}
        done     {"key", "state": "done", "sample_id", "conditions", "duration_s", "attributes", "truth"}
        failed   {"key", "state": "failed", "reason", "code"}
    GET /samples/{key}/result   200 the done record (the sample, with its ground truth ``truth`` for sim-sem)
                                404 unknown key | 409 {"detail": ...} while running or when it failed
    GET /health              {"ok": true, "state": "idle"|"busy", "system", "in_flight", "lab_time_h", "time_scale"}

Approvals (people in the loop; in memory)::

    POST /approvals          body {"index": 3, "conditions": {...}, "generator": "Sobol",
                                   "predictions": {"name": [mean, sd]}, "acquisition_value": 0.12 | null,
                                   "campaign": "name"}
                             201 approval record
    GET /approvals?state=pending|decided|all    {"approvals": [approval record, ...]}
    GET /approvals/{id}      approval record (the agent polls until "state" is "decided") | 404
    POST /approvals/{id}/decision
                             body {"kind": "approve"|"veto"|"edit"|"stop", "who": "ana", "note": "",
                                   "conditions": {...} (edit only, required there)}
                             200 approval record | 409 already decided | 404 | 422 naming the bad field
    approval record: {"id": "ap-1", "state": "pending"|"decided", "created_at": ISO time,
                      "proposal": {index, conditions, generator, predictions, acquisition_value, campaign},
                      "decision": null | {kind, who, note, conditions, at}}

Fault injection and test hooks (same token)::

    POST /admin/faults       body {"rules": [FaultRule, ...]} (see ``server_faults``): spoil the next calls
    GET /admin/faults        {"pending": [...], "calls": {endpoint: n}, "injected": {mode: n}}
    DELETE /admin/faults     clear every rule
    POST /admin/restart      body {"forget": false}: power-cycle the lab (with ``forget``, lose its journal)
    GET /admin/stats         {"calls", "injected", "started": {key: n}, "made": {key: n}, "restarts", "lab_time_h"}
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from instruments.sim.lab import FurnaceOptions
from instruments.sim.server_approvals import ConditionValue, approvals_router
from instruments.sim.server_faults import FaultBook, FaultRule, deliver
from instruments.sim.server_lab import Busy, Refused, RobotLab
from instruments.sim.systems import get_system

log = logging.getLogger(__name__)
DEFAULT_TOKEN_ENV = "MATLOOP_ROBOT_TOKEN"


class ServerConfigError(ValueError):
    """The server cannot start as asked; the message names the option or environment variable."""


class SubmitBody(BaseModel):
    """``POST /samples`` body."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    key: str | None = Field(default=None, min_length=1, max_length=200)
    campaign: str = Field(default="", max_length=200)
    conditions: dict[str, ConditionValue] = Field(min_length=1)


class RestartBody(BaseModel):
    """``POST /admin/restart`` body."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    forget: bool = False


class FaultsBody(BaseModel):
    """``POST /admin/faults`` body."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    rules: list[FaultRule]


class ServerOptions(BaseModel):
    """What ``create_app`` and ``matloop sim serve`` take."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    workdir: Path
    system: str = "two_phase_alloy"
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    time_scale: float = Field(default=1.0, gt=0, description="lab seconds per wall second")
    token_env: str = DEFAULT_TOKEN_ENV
    fresh: bool = Field(default=False, description="archive the journal: forget every key from earlier runs")
    furnace: dict[str, Any] = Field(default_factory=dict, description="more SimFurnace options (faults, handling)")
    faults: tuple[FaultRule, ...] = ()

    @field_validator("system")
    @classmethod
    def _known(cls, name: str) -> str:
        get_system(name)
        return name

    @model_validator(mode="after")
    def _furnace(self) -> ServerOptions:
        try:
            FurnaceOptions.model_validate({**self.furnace, "system": self.system})
        except ValidationError as exc:
            problems = "; ".join(f"furnace.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ValueError(problems) from None
        return self


def create_app(
    *,
    workdir: str | Path,
    system: str = "two_phase_alloy",
    seed: int = 0,
    time_scale: float = 1.0,
    token_env: str = DEFAULT_TOKEN_ENV,
    fresh: bool = False,
    furnace: dict[str, Any] | None = None,
    faults: Sequence[FaultRule | dict[str, Any] | str] = (),
) -> FastAPI:
    """The server as an ASGI app. Raises ``ServerConfigError`` when ``token_env`` is unset or an option is bad."""
    try:
        rules = tuple(FaultRule.parse(r) if isinstance(r, str) else FaultRule.model_validate(r) for r in faults)
        opts = ServerOptions(
            workdir=Path(workdir),
            system=system,
            seed=seed,
            time_scale=time_scale,
            token_env=token_env,
            fresh=fresh,
            furnace=dict(furnace or {}),
            faults=rules,
        )
    except ValueError as exc:
        raise ServerConfigError(str(exc)) from exc
    token = os.environ.get(opts.token_env, "")
    if not token:
        raise ServerConfigError(
            f"environment variable {opts.token_env} is not set: put the bearer token that clients must send there "
            f"(or name another variable with --token-env)"
        )
    expected = token.encode()
    del token

    book = FaultBook(list(opts.faults))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        lab = RobotLab(
            workdir=opts.workdir,
            system=opts.system,
            seed=opts.seed,
            time_scale=opts.time_scale,
            furnace_options=opts.furnace,
            fresh=opts.fresh,
        )
        app.state.lab = lab
        log.info(
            "robot server: %s, seed %d, time scale %g, journal in %s",
            opts.system,
            opts.seed,
            opts.time_scale,
            opts.workdir,
        )
        try:
            yield
        finally:
            lab.close()

    app = FastAPI(
        title="matloop reference robot",
        description="The simulated lab behind the REST API that rest-robot speaks by default.",
        lifespan=lifespan,
    )
    app.add_middleware(BearerGate, expected=expected)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 naming each bad field, without echoing the input back (it may not even be valid JSON: NaN)."""
        errors = [{"loc": list(e["loc"]), "msg": str(e["msg"]), "type": str(e["type"])} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    app.state.faults = book
    app.state.options = opts

    def lab_of(request: Request) -> RobotLab:
        lab: RobotLab = request.app.state.lab
        return lab

    @app.get("/health")
    async def health(request: Request) -> Response:
        async def handle() -> Response:
            lab = lab_of(request)
            busy = lab.in_flight()
            return JSONResponse(
                {
                    "ok": True,
                    "state": "busy" if busy else "idle",
                    "system": opts.system,
                    "in_flight": busy,
                    "lab_time_h": lab.lab_time_s() / 3600.0,
                    "time_scale": opts.time_scale,
                }
            )

        return await deliver(book, "health", handle)

    @app.post("/samples")
    async def submit(
        request: Request, body: SubmitBody, idempotency_key: Annotated[str | None, Header()] = None
    ) -> Response:
        key = idempotency_key or body.key
        if not key:
            raise HTTPException(422, "Idempotency-Key: the header (or the body's key) is required")
        if body.key is not None and idempotency_key is not None and body.key != idempotency_key:
            raise HTTPException(422, f"key: the body's key {body.key!r} differs from the Idempotency-Key header")

        async def handle() -> Response:
            try:
                record, created = await lab_of(request).submit(key, body.conditions, body.campaign)
            except Busy as exc:
                return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})
            except Refused as exc:
                return JSONResponse({"detail": str(exc)}, status_code=422)
            if created:
                log.info("accepted %s", key)
            return JSONResponse(record.json(), status_code=201 if created else 200)

        return await deliver(book, "submit", handle)

    @app.get("/samples/{key}")
    async def status(request: Request, key: str) -> Response:
        async def handle() -> Response:
            record = await lab_of(request).status(key)
            if record is None:
                return JSONResponse({"detail": f"unknown key {key!r}"}, status_code=404)
            return JSONResponse(record.json())

        return await deliver(book, "status", handle)

    @app.get("/samples/{key}/result")
    async def result(request: Request, key: str) -> Response:
        async def handle() -> Response:
            record = await lab_of(request).status(key)
            if record is None:
                return JSONResponse({"detail": f"unknown key {key!r}"}, status_code=404)
            if record.state != "done":
                why = f": {record.data.get('reason')}" if record.state == "failed" else ""
                return JSONResponse({"detail": f"{key} is {record.state}{why}"}, status_code=409)
            return JSONResponse(record.json())

        return await deliver(book, "result", handle)

    app.include_router(approvals_router())

    @app.post("/admin/faults")
    async def add_faults(body: FaultsBody) -> dict[str, Any]:
        for rule in body.rules:
            book.add(rule)
        return {"pending": book.pending()}

    @app.get("/admin/faults")
    async def list_faults() -> dict[str, Any]:
        return {"pending": book.pending(), "calls": dict(book.calls), "injected": dict(book.injected)}

    @app.delete("/admin/faults")
    async def clear_faults() -> dict[str, Any]:
        book.clear()
        return {"pending": []}

    @app.post("/admin/restart")
    async def restart(request: Request, body: RestartBody) -> dict[str, Any]:
        lab = lab_of(request)
        lab.restart(forget=body.forget)
        log.info("lab restarted%s", " and forgot its journal" if body.forget else "")
        return {"restarts": lab.restarts, "forgot": body.forget}

    @app.get("/admin/stats")
    async def stats(request: Request) -> dict[str, Any]:
        lab = lab_of(request)
        return {
            "calls": dict(book.calls),
            "injected": dict(book.injected),
            **lab.journal_counts(),
            "restarts": lab.restarts,
            "lab_time_h": lab.lab_time_s() / 3600.0,
        }

    return app


class BearerGate:
    """ASGI middleware in front of everything (routes, 404s, the OpenAPI page): 401 unless the request carries
    ``Authorization: Bearer <token>``, compared in constant time. It never logs a header."""

    def __init__(self, app: ASGIApp, expected: bytes) -> None:
        self.app, self.expected = app, expected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = next((v for k, v in scope["headers"] if k.lower() == b"authorization"), b"")
            scheme, _, given = header.partition(b" ")
            if scheme.lower() != b"bearer" or not secrets.compare_digest(given.strip(), self.expected):
                refusal = JSONResponse(
                    {"detail": "missing or wrong bearer token"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
                )
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
