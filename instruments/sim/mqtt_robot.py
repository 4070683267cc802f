"""The simulated twin of an MQTT synthesis robot: ``SimFurnace`` served behind the topics and payloads that the
``mqtt-robot`` driver's default mapping speaks, with a time scale and fault injection.

The twin runs in a background thread with its own event loop, whose clock runs ``time_scale`` times faster than
the wall clock (``ScaledTimeLoop``): the furnace's ``asyncio.sleep`` of lab hours passes in wall seconds and
its ``loop.time()`` is lab time, without touching the furnace. paho's network thread hands each message to that
loop. Faults are injected by the ordinal of the request message (1-based, counting repeats).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from pydantic import BaseModel, ConfigDict, Field

from instruments.base import PermanentFault, SynthesisRequest, TransientFault
from instruments.drivers.mqtt_options import Topics
from instruments.registry import InstrumentContext
from instruments.sim.journal import DONE
from instruments.sim.lab import SimFurnace
from instruments.sim.scaled_time import ScaledTimeLoop

log = logging.getLogger("instruments.sim.mqtt_robot")


class TwinFaults(BaseModel):
    """Which request messages (1-based ordinals) the twin mishandles, and how."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    garbage: frozenset[int] = Field(default=frozenset(), description="publish garbage before answering these")
    duplicate: frozenset[int] = Field(default=frozenset(), description="publish the result of these twice")
    offline: frozenset[int] = Field(default=frozenset(), description="drop off the broker after accepting these")
    offline_for_s: float = Field(default=1.0, ge=0, description="wall seconds away before coming back")
    silent: frozenset[int] = Field(default=frozenset(), description="never answer these (the message is lost)")


class MqttRobotTwin:
    """A simulated furnace on MQTT. ``start()`` connects and announces itself (retained birth, last will offline);
    ``stop()`` leaves. While a request runs it says so every ``heartbeat_s`` wall seconds (None: never).
    ``received`` counts request messages by key; ``samples_made()`` counts journaled samples."""

    def __init__(
        self,
        *,
        prefix: str,
        workdir: Path,
        seed: int = 0,
        furnace: Mapping[str, Any] | None = None,
        time_scale: float = 3600.0,
        heartbeat_s: float | None = 0.2,
        faults: TwinFaults | None = None,
        host: str = "127.0.0.1",
        port: int = 1883,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.prefix, self.host, self.port = prefix, host, port
        self.username, self._password = username, password
        self.time_scale, self.heartbeat_s = time_scale, heartbeat_s
        self.faults = faults or TwinFaults()
        self.topics = Topics()  # the driver's default topics; the payloads below are its default mapping
        self.furnace = SimFurnace(context=InstrumentContext(seed=seed, workdir=workdir), **dict(furnace or {}))
        self.received: Counter[str] = Counter()
        self.requests = 0
        self._serving: set[str] = set()
        self._loop: ScaledTimeLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self._online = threading.Event()
        self._stopping = False
        self._tasks: set[asyncio.Future[None]] = set()

    # --- public ------------------------------------------------------------------------------------
    def topic(self, name: str, key: str = "+") -> str:
        return str(getattr(self.topics, name)).format(prefix=self.prefix, key=key)

    def start(self, timeout_s: float = 10.0) -> MqttRobotTwin:
        """Starts the loop thread and connects; returns once the robot is subscribed and has said it is online."""
        self._loop = ScaledTimeLoop(self.time_scale)
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"twin-{self.prefix}", daemon=True)
        self._thread.start()
        self._loop.call_soon_threadsafe(self._connect)
        if not self._online.wait(timeout_s):
            self.stop()
            raise RuntimeError(f"the twin could not connect to {self.host}:{self.port} within {timeout_s:g} s")
        return self

    def wait_online(self, timeout_s: float = 10.0) -> bool:
        return self._online.wait(timeout_s)

    @property
    def online(self) -> bool:
        return self._online.is_set()

    def stop(self, *, clear_retained: bool = True) -> None:
        """Leaves cleanly (says offline, or clears its retained message) and stops the thread."""
        self._stopping = True
        client, self._client = self._client, None
        self._online.clear()
        if client is not None:
            payload = b"" if clear_retained else b"offline"
            with contextlib.suppress(Exception):
                client.publish(self.topic("online"), payload, qos=1, retain=True).wait_for_publish(2.0)
            client.disconnect()
            client.loop_stop()
        loop = self._loop
        if loop is not None and self._thread is not None:

            def _halt() -> None:
                for task in asyncio.all_tasks(loop):
                    task.cancel()
                loop.call_later(0.0, loop.stop)  # let the cancellations run first

            loop.call_soon_threadsafe(_halt)
            self._thread.join(10.0)
            if not self._thread.is_alive():
                loop.close()
        self._loop = self._thread = None

    def samples_made(self, key: str | None = None) -> int:
        """Samples the furnace finished (journal records), for one key or all."""
        return sum(1 for rec in self.furnace.journal.lines(key) if rec.get("event") == DONE)

    def __enter__(self) -> MqttRobotTwin:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- connection, in the twin's loop ------------------------------------------------------------
    def _connect(self) -> None:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"twin-{uuid.uuid4().hex[:10]}",
            clean_session=True,
            reconnect_on_failure=False,
        )
        if self.username:
            client.username_pw_set(self.username, self._password)
        client.will_set(self.topic("online"), b"offline", qos=1, retain=True)
        loop = self._loop
        assert loop is not None

        def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
            if not reason.is_failure:
                subs = [self.topic("request"), self.topic("status_request"), self.topic("ping")]
                c.subscribe([(t, 1) for t in subs])

        def on_subscribe(c: mqtt.Client, _u: Any, _m: int, _codes: Any, _p: Any = None) -> None:
            c.publish(self.topic("online"), b"online", qos=1, retain=True)
            self._online.set()

        def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._on_message, msg.topic, bytes(msg.payload))

        def on_disconnect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
            if c is self._client and not self._stopping:  # not a drop we made: come back
                self._online.clear()
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(loop.call_later, 0.5 * self.time_scale, self._connect)

        client.on_connect, client.on_subscribe = on_connect, on_subscribe
        client.on_message, client.on_disconnect = on_message, on_disconnect
        self._client = client
        try:
            client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            log.warning("twin cannot reach the broker: %s; trying again", exc)
            loop.call_later(0.5 * self.time_scale, self._connect)
            return
        client.loop_start()

    def _drop(self) -> None:
        """Falls off the broker without a clean disconnect: the broker publishes the last will."""
        client, self._client = self._client, None
        self._online.clear()
        if client is None:
            return
        sock = client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        log.info("twin %s dropped off the broker", self.prefix)

        def _reap() -> None:
            client.loop_stop()  # its network thread ends on the broken socket

        threading.Thread(target=_reap, daemon=True).start()

    def _publish(self, topic: str, body: Mapping[str, Any] | bytes) -> None:
        client = self._client
        if client is None or not self._online.is_set():
            log.info("twin %s is offline: not published on %s", self.prefix, topic)
            return
        payload = body if isinstance(body, bytes) else json.dumps(body, default=str).encode()
        client.publish(topic, payload, qos=1)

    # --- requests, in the twin's loop --------------------------------------------------------------
    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            data = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            data = None
        if not isinstance(data, dict):
            log.warning("twin ignored a payload on %s that is not a JSON object", topic)
            return
        if mqtt.topic_matches_sub(self.topic("ping"), topic):
            self._publish(self.topic("health"), self._health(data))
        elif mqtt.topic_matches_sub(self.topic("status_request"), topic):
            self._spawn(self._status(data))
        elif mqtt.topic_matches_sub(self.topic("request"), topic):
            self._spawn(self._serve(data))

    def _spawn(self, coro: Any) -> None:
        self._tasks.add(task := asyncio.ensure_future(coro))  # held until done (the loop keeps only weak refs)
        task.add_done_callback(self._tasks.discard)

    def _health(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "nonce": data.get("nonce"),
            "ok": True,
            "state": "busy" if self._serving else "idle",
            "running": sorted(self._serving),
            "lab_time_h": asyncio.get_running_loop().time() / 3600.0,
            "system": self.furnace.system.name,
        }

    async def _status(self, data: Mapping[str, Any]) -> None:
        key = data.get("key")
        if not isinstance(key, str):
            return
        if key in self._serving:  # accepted, and the furnace may not have started it yet
            self._publish(self.topic("status_reply", key), {"key": key, "state": "running"})
            return
        st = await self.furnace.status(key)
        body: dict[str, Any] = {"key": key, "state": str(st.state), "reason": st.reason}
        if st.sample is not None:
            body.update(_sample_body(st.sample))
        self._publish(self.topic("status_reply", key), body)

    async def _serve(self, data: Mapping[str, Any]) -> None:
        key, conditions = data.get("key"), data.get("conditions")
        if not isinstance(key, str) or not isinstance(conditions, dict):
            log.warning("twin ignored a request without a key or conditions")
            return
        self.requests += 1
        n = self.requests
        self.received[key] += 1
        faults = self.faults
        if n in faults.silent:
            log.info("twin: request %d (%s) is lost", n, key)
            return
        result_topic = self.topic("result", key)
        self._publish(result_topic, {"key": key, "state": "accepted"})
        if key in self._serving:  # the same key again while it runs: the running one will answer
            return
        if n in faults.offline:
            self._drop()
            asyncio.get_running_loop().call_later(faults.offline_for_s * self.time_scale, self._connect)
        self._serving.add(key)
        try:
            run = asyncio.ensure_future(
                self.furnace.synthesize(SynthesisRequest(key, conditions, str(data.get("campaign", ""))))
            )
            while not run.done():
                await asyncio.wait([run], timeout=self.heartbeat_s * self.time_scale if self.heartbeat_s else None)
                if not run.done():
                    self._publish(result_topic, {"key": key, "state": "running"})
            try:
                body = {"key": key, "state": "done", **_sample_body(run.result())}
            except PermanentFault as fault:
                body = {"key": key, "state": "failed", "reason": fault.reason, "code": fault.code}
            except TransientFault as fault:
                body = {"key": key, "state": "rejected", "reason": fault.reason, "code": fault.code}
        finally:
            self._serving.discard(key)
        if n in faults.garbage:
            for junk in _garbage(key):
                self._publish(result_topic, junk)
            self._publish(self.topic("health"), b"\xff\xfe not json")
        self._publish(result_topic, body)
        if n in faults.duplicate:
            self._publish(result_topic, body)


def _sample_body(sample: Any) -> dict[str, Any]:
    return {
        "sample_id": sample.sample_id,
        "duration_s": sample.duration_s,
        "conditions": dict(sample.conditions),
        "attributes": dict(sample.attributes),
        "truth": dict(sample.truth) if sample.truth is not None else None,
    }


def _garbage(key: str) -> list[bytes | dict[str, Any]]:
    """Payloads a confused robot might send: not JSON, not an object, unknown state, a 'done' without a sample,
    a result for a key no one asked for."""
    return [
        b"\x00\x01 garbled",
        b"[1, 2, 3]",
        {"key": key, "state": "melted"},
        {"key": key, "state": "done"},
        {"key": key, "state": "done", "sample_id": "X", "duration_s": "soon"},
        {"state": "done", "sample_id": "no-key"},
        {"key": f"{key}-stranger", "state": "done", "sample_id": "S-x", "duration_s": 1.0},
    ]
