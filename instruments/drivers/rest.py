"""``rest-robot``: a Synthesizer for any synthesis robot with a JSON-over-HTTP API, configured in the campaign YAML.

A request is submitted once (``POST`` with an ``Idempotency-Key`` header equal to ``request.key``), then its status
is polled until the robot says done or failed, and the sample is read from the result endpoint. Transient faults
(refused or reset connections, timeouts, 5xx, 408, 429, replies that do not parse) are retried with exponential
backoff and jitter; after ``retries.max_attempts`` the agent gets a ``TransientFault`` and retries the whole request
under the same key, which the robot must answer with the same sample. Other 4xx replies are ``PermanentFault``s
naming the status and the robot's message. A robot that forgets a request (restarted without its memory) is sent
it again under the same key. Hard limits are checked before anything is sent. The bearer token is read from the
environment variable named by ``token_env`` at each call and never logged, raised or described.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import httpx

from instruments.base import (
    ConditionValue,
    Health,
    PermanentFault,
    RequestState,
    RequestStatus,
    Sample,
    SynthesisRequest,
    TransientFault,
)
from instruments.drivers.rest_config import RestRobotOptions
from instruments.drivers.rest_wire import (
    BorrowedTransport,
    Garbled,
    Reply,
    Retryable,
    as_mapping,
    dig,
    get_path,
    json_object,
    plain,
    retry_after,
    server_message,
    short,
)
from instruments.registry import InstrumentContext
from instruments.safety import HardLimits

log = logging.getLogger(__name__)
T = TypeVar("T")
_REDACTED = "<redacted>"


class RestRobot:
    """Synthesizer protocol over a robot's REST API (options: ``RestRobotOptions``)."""

    simulated: ClassVar[bool] = False

    def __init__(
        self, *, context: InstrumentContext, transport: httpx.AsyncBaseTransport | None = None, **options: Any
    ) -> None:
        self.options = RestRobotOptions(**options)
        self.context = context
        self._transport = transport
        self._jitter = random.Random(context.seed)
        self._sent: dict[str, dict[str, ConditionValue]] = {}  # conditions by key, for samples read back by status

    # --- what a campaign can check without building one -------------------------------------------
    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> None:
        RestRobotOptions.model_validate(dict(options))

    def hard_limits(self) -> HardLimits:
        return self.options.hard_limits

    # --- Synthesizer protocol ----------------------------------------------------------------------
    async def synthesize(self, request: SynthesisRequest) -> Sample:
        key = request.key
        self.hard_limits().enforce(request.conditions, who=f"rest-robot at {self.options.base_url}")
        headers = {**self._headers(), "Idempotency-Key": key}  # a missing token fails before anything is sent
        body = self._body(request)
        self._sent[key] = dict(request.conditions)
        opts = self.options
        deadline = None if opts.max_wait_h is None else time.monotonic() + opts.max_wait_h * 3600.0
        submit_url = self._url(opts.endpoints.submit, key)
        async with self._client() as client:

            async def submit() -> Reply:
                parse = self._submitted(key)
                got = await self._call(client, "submit", key, "POST", submit_url, headers, body, parse)
                assert got is not None
                return got

            reply = await submit()
            forgotten = 0
            while True:
                if reply.phase == "done":
                    return reply.sample or await self._result(client, key)
                if reply.phase == "failed":
                    raise PermanentFault(reply.reason, code="robot_failed")
                if deadline is not None and time.monotonic() > deadline:
                    raise TransientFault(f"{key}: not done after max_wait_h={opts.max_wait_h:g} h", code="max_wait")
                await asyncio.sleep(opts.poll_interval_s)
                polled = await self._status_reply(client, key)
                if polled is None:  # the robot forgot the key (restarted without its memory): send it again
                    forgotten += 1
                    if forgotten >= opts.retries.max_attempts:
                        raise TransientFault(
                            f"the robot forgot request {key} {forgotten} times after accepting it", code="forgotten"
                        )
                    log.warning("rest-robot: the robot does not know request %s any more; submitting it again", key)
                    reply = await submit()
                else:
                    reply = polled

    async def status(self, key: str) -> RequestStatus:
        async with self._client() as client:
            reply = await self._status_reply(client, key)
            if reply is None:
                return RequestStatus(key, RequestState.UNKNOWN)
            if reply.phase == "running":
                return RequestStatus(key, RequestState.RUNNING)
            if reply.phase == "failed":
                return RequestStatus(key, RequestState.FAILED, reason=reply.reason)
            sample = reply.sample or await self._result(client, key)
            return RequestStatus(key, RequestState.DONE, sample=sample)

    # --- first contact and dry runs ----------------------------------------------------------------
    async def ping(self) -> Health:
        """Reachable, token accepted, and ready by the robot's own health endpoint; one attempt, never raises."""
        path = self.options.endpoints.ping
        if path is None:
            return Health(ok=True, state="unknown", detail="no ping endpoint configured")
        try:
            headers = self._headers()
            async with self._client() as client:
                url = self._url(path, "")
                reply = await self._call(client, "ping", "", "GET", url, headers, None, as_mapping, attempts=1)
        except (PermanentFault, TransientFault) as fault:
            return Health(ok=False, state="unreachable" if fault.transient else "refused", detail=fault.reason)
        assert reply is not None
        f = self.options.fields
        ok = bool(get_path(reply, f.health_ok, True))
        state = str(get_path(reply, f.health_state, "ready" if ok else "not ready"))
        return Health(ok=ok, state=state, detail=f"{self.options.base_url}", info=dict(reply))

    def wire_request(self, request: SynthesisRequest) -> Mapping[str, Any]:
        """The submit request this driver would send for ``request``, token redacted. It describes and never
        refuses: whether the hard limits allow it is ``hard_limits().problems(...)`` (``synthesize`` enforces them)."""
        headers = {"Content-Type": "application/json", **self.options.headers, "Idempotency-Key": request.key}
        if self.options.token_env is not None:
            headers["Authorization"] = f"Bearer {_REDACTED} (from ${self.options.token_env})"
        return {
            "method": "POST",
            "url": self._url(self.options.endpoints.submit, request.key),
            "headers": headers,
            "json": self._body(request),
        }

    # --- requests ----------------------------------------------------------------------------------
    def _client(self) -> httpx.AsyncClient:
        t = self.options.timeouts
        timeout = httpx.Timeout(connect=t.connect_s, read=t.read_s, write=t.write_s, pool=t.connect_s)
        transport = BorrowedTransport(self._transport) if self._transport is not None else None
        return httpx.AsyncClient(timeout=timeout, transport=transport, verify=self.options.verify_tls)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", **self.options.headers}
        name = self.options.token_env
        if name is not None:
            token = os.environ.get(name, "")
            if not token:
                raise PermanentFault(
                    f"environment variable {name} (token_env) is not set: the robot's bearer token must be there",
                    code="no_token",
                )
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _scrub(self, text: str) -> str:
        """``text`` with the token blanked out, should a robot echo it back in an error message."""
        token = os.environ.get(self.options.token_env, "") if self.options.token_env else ""
        return text.replace(token, _REDACTED) if len(token) >= 4 else text

    def _url(self, path: str, key: str) -> str:
        return self.options.base_url + path.format(key=quote(key, safe=""))

    def _body(self, request: SynthesisRequest) -> dict[str, Any]:
        f = self.options.fields
        conditions = {f.rename.get(k, k): plain(v) for k, v in request.conditions.items()}
        body: dict[str, Any] = {f.conditions_object: conditions} if f.conditions_object else dict(conditions)
        if f.key_field:
            body[f.key_field] = request.key
        if f.campaign_field:
            body[f.campaign_field] = request.campaign or self.context.campaign
        return body

    async def _status_reply(self, client: httpx.AsyncClient, key: str) -> Reply | None:
        """What the robot says of ``key``, or None when it does not know it (404)."""
        url = self._url(self.options.endpoints.status, key)
        parse: Callable[[Mapping[str, Any]], Reply] = lambda r: self._read(key, r)  # noqa: E731
        return await self._call(client, "status", key, "GET", url, self._headers(), None, parse, unknown_ok=True)

    async def _result(self, client: httpx.AsyncClient, key: str) -> Sample:
        """The sample of a request the robot reported done."""
        path = self.options.endpoints.result
        if path is None:  # the status reply carries the sample
            reply = await self._status_reply(client, key)
            if reply is None or reply.sample is None:
                raise TransientFault(f"request {key}: the robot said done, then did not", code="flapping")
            return reply.sample
        url = self._url(path, key)
        parse: Callable[[Mapping[str, Any]], Sample] = lambda r: self._sample(key, r)  # noqa: E731
        sample = await self._call(client, "result", key, "GET", url, self._headers(), None, parse, unknown_ok=True)
        if sample is None:  # done a moment ago, unknown now: the robot restarted; the agent's retry resubmits
            raise TransientFault(f"request {key}: the robot said done, then did not know the key", code="flapping")
        return sample

    async def _call(
        self,
        client: httpx.AsyncClient,
        what: str,
        key: str,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Mapping[str, Any] | None,
        parse: Callable[[Mapping[str, Any]], T],
        *,
        unknown_ok: bool = False,
        attempts: int | None = None,
    ) -> T | None:
        """One HTTP exchange with retries (``attempts``, default the policy's); the parsed reply, or None for a 404
        when ``unknown_ok``."""
        policy = self.options.retries
        most = attempts or policy.max_attempts
        label = f"{what} {key}".strip()
        attempt = 0
        while True:
            attempt += 1
            wait_hint: float | None = None
            try:
                resp = await client.request(method, url, headers=headers, json=body)
                if unknown_ok and resp.status_code == 404:
                    return None
                self._check_status(resp, what)
                return parse(json_object(resp))
            except httpx.TimeoutException as exc:
                problem = f"no reply within the timeout ({type(exc).__name__})"
            except httpx.TransportError as exc:
                problem = f"connection problem: {type(exc).__name__}: {self._scrub(short(str(exc)))}"
            except Garbled as exc:
                problem = f"unparsable reply: {self._scrub(str(exc))}"
            except Retryable as exc:
                problem, wait_hint = exc.reason, exc.wait_s
            if attempt >= most:
                raise TransientFault(
                    f"rest-robot {label}: gave up after {attempt} attempts; last: {problem}", code="robot_unreachable"
                )
            delay = self._backoff(attempt, wait_hint)
            log.warning(
                "rest-robot %s: attempt %d/%d failed (%s); retrying in %.2f s", label, attempt, most, problem, delay
            )
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int, hint: float | None) -> float:
        p = self.options.retries
        delay = min(p.max_backoff_s, p.backoff_s * p.backoff_factor ** (attempt - 1))
        delay *= 1.0 + p.jitter * (2.0 * self._jitter.random() - 1.0)
        if hint is not None:
            delay = max(delay, min(hint, p.max_backoff_s))
        return max(0.0, delay)

    def _check_status(self, resp: httpx.Response, what: str) -> None:
        code = resp.status_code
        if code < 400:
            return
        message = self._scrub(server_message(resp))
        if code in (408, 429) or code >= 500:
            raise Retryable(f"HTTP {code} from the robot: {message}", retry_after(resp))
        if code in (401, 403) and self.options.token_env is None:
            raise PermanentFault(
                f"rest-robot {what}: the robot at {self.options.base_url} wants a bearer token "
                f"(HTTP {code}: {message}); set token_env to the NAME of the environment variable holding it",
                code="unauthorized",
            )
        if code in (401, 403):
            raise PermanentFault(
                f"rest-robot {what}: the robot at {self.options.base_url} refused the bearer token from environment "
                f"variable {self.options.token_env} (HTTP {code}: {message})",
                code="unauthorized",
            )
        raise PermanentFault(f"rest-robot {what}: HTTP {code} from the robot: {message}", code=f"http_{code}")

    # --- reading replies -----------------------------------------------------------------------------
    def _submitted(self, key: str) -> Callable[[Mapping[str, Any]], Reply]:
        """Reads a submit reply: its state when it has one, else running (accepted)."""

        def parse(reply: Mapping[str, Any]) -> Reply:
            return self._read(key, reply) if self._has(reply, self.options.fields.state) else Reply("running")

        return parse

    def _read(self, key: str, reply: Mapping[str, Any]) -> Reply:
        """Phase (and failure reason, and the sample when no result endpoint is configured) of a status reply."""
        f = self.options.fields
        try:
            word = dig(reply, f.state)
        except KeyError:
            raise Garbled(f"no state at {f.state!r}") from None
        phase = f.states.get(str(word))
        if phase is None:
            raise Garbled(f"state {word!r} at {f.state!r} is not one of fields.states {sorted(f.states)}")
        if phase == "failed":
            said = str(get_path(reply, f.reason, ""))
            reason = self._scrub(said) or "the robot reports the request failed (no reason given)"
            return Reply("failed", reason=reason)
        if phase == "done" and self.options.endpoints.result is None:
            return Reply("done", sample=self._sample(key, reply))
        return Reply(phase)

    @staticmethod
    def _has(reply: Mapping[str, Any], path: str) -> bool:
        try:
            dig(reply, path)
        except KeyError:
            return False
        return True

    def _sample(self, key: str, reply: Mapping[str, Any]) -> Sample:
        f = self.options.fields
        try:
            sample_id = dig(reply, f.sample_id)
        except KeyError:
            raise Garbled(f"no sample id at {f.sample_id!r}") from None
        if not isinstance(sample_id, (str, int)) or isinstance(sample_id, bool) or str(sample_id) == "":
            raise Garbled(f"sample id at {f.sample_id!r} is {sample_id!r}, not a string or integer")
        duration = get_path(reply, f.duration_s, 0.0)
        attributes = get_path(reply, f.attributes, {})
        truth = get_path(reply, f.truth, None)
        reported = get_path(reply, f.conditions, None)
        if not isinstance(duration, (int, float)) or isinstance(duration, bool) or duration < 0:
            raise Garbled(f"duration at {f.duration_s!r} is {duration!r}, not a number >= 0")
        for name, value in ((f.attributes, attributes), (f.truth, truth), (f.conditions, reported)):
            if value is not None and not isinstance(value, Mapping):
                raise Garbled(f"{name!r} is {type(value).__name__}, not a mapping")
        conditions = self._sent.get(key)
        if conditions is None:
            back = {v: k for k, v in f.rename.items()}
            conditions = {back.get(k, k): v for k, v in (reported or {}).items()}
        return Sample(
            sample_id=str(sample_id),
            key=key,
            conditions=conditions,
            duration_s=float(duration),
            attributes=dict(attributes),
            truth=dict(truth) if truth is not None else None,
        )


__all__ = ["RestRobot", "RestRobotOptions", "dig"]
