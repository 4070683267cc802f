"""Fixtures for the MQTT driver tests: a unique topic prefix per test on the real broker, the simulated twin,
drivers that are closed afterwards, and a spy client that records everything published under the prefix."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from instruments.drivers.mqtt import MqttRobot
from instruments.registry import InstrumentContext
from instruments.sim.mqtt_robot import MqttRobotTwin, TwinFaults

HOST, PORT = "127.0.0.1", 1883
FAST = {"silence_s": 3.0, "connect_s": 5.0, "status_s": 3.0, "ping_s": 2.0}


def _broker_up() -> bool:
    try:
        with socket.create_connection((HOST, PORT), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session", autouse=True)
def _need_broker() -> None:
    if not _broker_up():
        pytest.fail(f"these tests need the Mosquitto broker on {HOST}:{PORT}")


def clear_retained(prefix: str) -> None:
    """Removes the retained birth/last-will message a test left under its prefix."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"clean-{uuid.uuid4().hex[:8]}")
    c.connect(HOST, PORT)
    c.loop_start()
    c.publish(f"{prefix}/online", b"", qos=1, retain=True).wait_for_publish(5.0)
    c.disconnect()
    c.loop_stop()


@pytest.fixture
def prefix() -> Iterator[str]:
    p = f"matloop-test/{uuid.uuid4().hex[:12]}"
    yield p
    clear_retained(p)


@pytest.fixture
def make_twin(prefix: str, tmp_path: Path) -> Iterator[Callable[..., MqttRobotTwin]]:
    twins: list[MqttRobotTwin] = []

    def make(faults: TwinFaults | None = None, **kw: Any) -> MqttRobotTwin:
        kw.setdefault("time_scale", 200_000.0)  # 14 lab hours in a quarter of a second
        kw.setdefault("heartbeat_s", 0.2)
        twin = MqttRobotTwin(prefix=prefix, workdir=tmp_path / "twin", faults=faults, **kw)
        twins.append(twin)
        return twin.start()

    yield make
    for t in twins:
        t.stop()


@pytest.fixture
async def make_robot(prefix: str, tmp_path: Path) -> AsyncIterator[Callable[..., MqttRobot]]:
    robots: list[MqttRobot] = []

    def make(**options: Any) -> MqttRobot:
        options.setdefault("host", HOST)
        options.setdefault("port", PORT)
        options.setdefault("prefix", prefix)
        options.setdefault("hard_limits", {"limits": {}})
        options["timeouts"] = {**FAST, **options.get("timeouts", {})}
        robot = MqttRobot(context=InstrumentContext(seed=0, workdir=tmp_path / "driver"), **options)
        robots.append(robot)
        return robot

    yield make
    for r in robots:
        await r.aclose()


class Spy:
    """Records (topic, payload) of everything published under a prefix."""

    def __init__(self, prefix: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"spy-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.connect(HOST, PORT)
        self.client.loop_start()
        self.client.subscribe(f"{prefix}/#", qos=1)
        assert self._subscribed.wait(5.0), "the spy could not subscribe"

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def topics(self) -> list[str]:
        with self._lock:
            return [t for t, _ in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def spy(prefix: str) -> Iterator[Spy]:
    s = Spy(prefix)
    yield s
    s.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(cond: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()
