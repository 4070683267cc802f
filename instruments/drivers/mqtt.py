"""``mqtt-robot``: a synthesis robot that listens and publishes on MQTT topics (options: ``mqtt_options``).

A request is published (QoS 1 by default) with its idempotency key; the robot must treat a repeated key as the
same request. Results are matched by key: a result for a key no one waits for, a second copy, or a payload that
is not what the mapping describes is logged and ignored. A running request fails as a ``TransientFault`` (the
agent retries with the same key, then reconciles by ``status``) when the robot publishes its last will, when it
has been silent for ``timeouts.silence_s``, or after ``timeouts.overall_s``. The broker connection is kept by
one paho network thread that reconnects with backoff; on reconnect waiting requests are published again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import uuid
import weakref
from collections.abc import Mapping
from typing import Any, ClassVar

from instruments.base import (
    Health,
    InstrumentError,
    PermanentFault,
    RequestStatus,
    Sample,
    SynthesisRequest,
    TransientFault,
)
from instruments.drivers.mqtt_inbox import Inbox, Pending
from instruments.drivers.mqtt_link import MqttLink
from instruments.drivers.mqtt_options import MqttOptions, dig, put
from instruments.drivers.mqtt_payload import key_body, request_body
from instruments.registry import InstrumentContext
from instruments.safety import HardLimits

log = logging.getLogger("instruments.drivers.mqtt")
NAME = "mqtt-robot"


class MqttRobot:
    """Synthesizer protocol over MQTT topics (plus ``ping``, ``hard_limits`` and ``wire_request``)."""

    simulated: ClassVar[bool] = False

    def __init__(self, *, context: InstrumentContext, **options: Any) -> None:
        self.options = MqttOptions(**options)
        self.context = context
        env = self.options.password_env
        if env and env not in os.environ:
            raise ValueError(f"password_env: the environment variable {env} is not set")
        o = self.options
        self.client_id = o.client_id or f"matloop-{uuid.uuid4().hex[:12]}"
        subs = [o.topic("result"), o.topic("status_reply"), o.topic("health")]
        if o.topics.online:
            subs.append(o.topic("online"))
        self._link = MqttLink(o, self.client_id, subs, self._on_message, self._on_ready, self._on_lost)
        self._closer = weakref.finalize(self, self._link.close)  # a driver no one holds lets go of the broker
        self._inbox = Inbox(o, self._send)
        self._pending = self._inbox.pending

    @property
    def robot_online(self) -> bool | None:
        """What the robot's retained birth / last-will message says (None: it has not said)."""
        return self._inbox.robot_online

    # --- what a campaign can check without building one -------------------------------------------
    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> None:
        MqttOptions.model_validate(dict(options))

    @classmethod
    def outputs(cls, options: Mapping[str, Any]) -> dict[str, str]:
        """A synthesis robot measures nothing."""
        cls.validate_options(options)
        return {}

    def hard_limits(self) -> HardLimits:
        return self.options.hard_limits

    def wire_request(self, request: SynthesisRequest) -> dict[str, Any]:
        """What ``synthesize`` would publish, and where (the password redacted)."""
        o = self.options
        return {
            "broker": self._link.where,
            "client_id": self.client_id,
            "username": o.username,
            "password": f"<redacted: from ${o.password_env}>" if o.password_env else None,
            "topic": o.topic("request", request.key),
            "qos": o.qos,
            "payload": request_body(self.options.fields, request),
        }

    def close(self) -> None:
        """Disconnects; waiting calls fail with a transient fault."""
        self._inbox.fail_all(TransientFault("the driver was closed", code="closed"))
        self._closer()

    async def aclose(self) -> None:
        await asyncio.to_thread(self._closer)
        self._inbox.fail_all(TransientFault("the driver was closed", code="closed"))

    # --- Synthesizer protocol ----------------------------------------------------------------------
    async def synthesize(self, request: SynthesisRequest) -> Sample:
        self.hard_limits().enforce(request.conditions, who=NAME)  # before anything goes on the wire
        key = request.key
        self._check_key(key)
        await self._ready()
        self._check_online()
        pending = self._pending.get(key)  # checked after the last await: no one can slip in between
        if pending is not None:  # the same key asked twice at once: one request, one answer
            return await asyncio.shield(pending.future)
        loop = asyncio.get_running_loop()
        now = loop.time()
        topic = self.options.topic("request", key)
        payload = json.dumps(request_body(self.options.fields, request)).encode()
        pending = Pending(request, topic, payload, loop.create_future(), now, now, now)
        self._pending[key] = pending
        outcome = "given up"
        try:
            self._send(pending)
            sample = await self._wait(pending)
            outcome = "done"
            return sample
        except BaseException as exc:
            if not pending.future.done():  # others waiting on the same key hear the same
                if isinstance(exc, InstrumentError):
                    pending.future.set_exception(exc)
                    pending.future.exception()
                else:
                    pending.future.cancel()
            raise
        finally:
            if self._pending.get(key) is pending:
                del self._pending[key]
            self._inbox.remember(key, outcome)

    async def status(self, key: str) -> RequestStatus:
        self._check_key(key)
        await self._ready()
        self._check_online()
        fut: asyncio.Future[RequestStatus] = asyncio.get_running_loop().create_future()
        self._inbox.status_waiters.setdefault(key, []).append(fut)
        try:
            o = self.options
            self._link.publish(o.topic("status_request", key), key_body(o.fields, key), o.qos)
            timeout = self.options.timeouts.status_s
            try:
                return await asyncio.wait_for(asyncio.shield(fut), timeout)
            except TimeoutError:
                raise TransientFault(f"no status reply about {key} within {timeout:g} s", code="timeout") from None
        finally:
            waiters = self._inbox.status_waiters.get(key, [])
            if fut in waiters:
                waiters.remove(fut)
            if not waiters:
                self._inbox.status_waiters.pop(key, None)

    async def ping(self) -> Health:
        """Reachable broker and a robot that answers on the health topic."""
        try:
            await self._ready()
        except TransientFault as fault:
            return Health(False, "unreachable", fault.reason)
        if self.robot_online is False:
            return Health(False, "offline", f"the robot's last will on {self.options.topic('online')} says offline")
        nonce = uuid.uuid4().hex
        fut: asyncio.Future[Mapping[str, Any]] = asyncio.get_running_loop().create_future()
        self._inbox.ping_waiters[nonce] = fut
        body: dict[str, Any] = {}
        put(body, self.options.fields.nonce, nonce)
        self._link.publish(self.options.topic("ping"), json.dumps(body).encode(), self.options.qos)
        timeout = self.options.timeouts.ping_s
        try:
            data = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return Health(False, "no_answer", f"no answer on {self.options.topic('health')} within {timeout:g} s")
        finally:
            self._inbox.ping_waiters.pop(nonce, None)
        f = self.options.fields
        ok = dig(data, f.health_ok) if f.health_ok else True
        state = dig(data, f.health_state)
        return Health(ok is not False, str(state) if state is not None else "online", "", dict(data))

    # --- internals ---------------------------------------------------------------------------------
    def _check_key(self, key: str) -> None:
        if not key or any(c in key for c in "/+#\x00"):
            raise PermanentFault(f"key {key!r} cannot be part of an MQTT topic (no / + # allowed)", code="bad_key")

    async def _ready(self) -> None:
        if not await self._link.ready(self.options.timeouts.connect_s):
            why = self._link.last_error or "no connection"
            raise TransientFault(
                f"cannot reach the MQTT broker at {self._link.where} within "
                f"{self.options.timeouts.connect_s:g} s ({why})",
                code="broker_unreachable",
            )

    def _check_online(self) -> None:
        if self.robot_online is False:
            raise TransientFault(
                f"the robot is offline (last will on {self.options.topic('online')})", code="robot_offline"
            )

    def _send(self, p: Pending) -> None:
        p.last_sent = asyncio.get_running_loop().time()
        self._link.publish(p.topic, p.payload, self.options.qos)

    async def _wait(self, p: Pending) -> Sample:
        t, r = self.options.timeouts, self.options.resend
        loop = asyncio.get_running_loop()
        next_poll = p.started + r.poll_status_s if r.poll_status_s else math.inf
        while True:
            resend_at = (
                p.last_sent + r.after_s
                if r.after_s is not None and not p.acknowledged and p.resends < r.max_times
                else math.inf
            )
            overall_at = p.started + t.overall_s if t.overall_s else math.inf
            wake = min(p.last_news + t.silence_s, overall_at, resend_at, next_poll)
            await asyncio.wait([p.future], timeout=max(0.0, wake - loop.time()))
            if p.future.done():
                return p.future.result()
            now = loop.time()
            key = p.request.key
            if now >= p.last_news + t.silence_s:
                raise TransientFault(f"no news from the robot about {key} for {t.silence_s:g} s", code="timeout")
            if now >= overall_at:
                raise TransientFault(f"{key} did not finish within {t.overall_s:g} s", code="overall_timeout")
            if now >= resend_at:
                p.resends += 1
                log.info("no acknowledgement of %s after %g s: publishing it again", key, r.after_s)
                self._send(p)
            if now >= next_poll and r.poll_status_s:
                next_poll = now + r.poll_status_s
                o = self.options
                self._link.publish(o.topic("status_request", key), key_body(o.fields, key), o.qos)

    # --- callbacks, in the event loop --------------------------------------------------------------
    def _on_ready(self, again: bool) -> None:
        if again and self._pending:
            log.info("reconnected to %s: publishing %d waiting request(s) again", self._link.where, len(self._pending))
            for p in self._pending.values():
                self._send(p)

    def _on_lost(self, reason: str) -> None:
        """Waiting requests keep waiting: paho reconnects, and ``_on_ready`` publishes them again."""

    def _on_message(self, topic: str, payload: bytes) -> None:
        self._inbox.on_message(topic, payload)
