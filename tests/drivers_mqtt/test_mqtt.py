"""The ``mqtt-robot`` driver against the real Mosquitto broker and the simulated twin behind MQTT topics."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import yaml
from pydantic import ValidationError

from instruments.base import (
    PermanentFault,
    Pingable,
    RequestState,
    SynthesisRequest,
    Synthesizer,
    TransientFault,
    WireDescriber,
)
from instruments.drivers import mqtt_options
from instruments.drivers.mqtt import MqttRobot
from instruments.registry import InstrumentContext, InstrumentSpecError, validate_options
from instruments.safety import Limited, LimitViolation
from instruments.sim.mqtt_robot import TwinFaults

from .conftest import HOST, Spy, free_port

T = TypeVar("T")
ALLOY = {
    "anneal_temperature": 850.0,
    "anneal_time": 2.0,
    "cooling_rate": 10.0,
    "alloy_fraction": 0.05,
    "atmosphere": "argon",
}


def req(key: str, **changes: Any) -> SynthesisRequest:
    conditions: dict[str, Any] = {**ALLOY, **changes}
    return SynthesisRequest(key=key, conditions=conditions, campaign="mqtt_test")


async def until(cond: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while loop.time() < end and not cond():
        await asyncio.sleep(0.02)
    return cond()


async def retrying(call: Callable[[], Awaitable[T]], attempts: int = 10, delay_s: float = 0.3) -> T:
    """Like the agent: transient faults are retried with the same request."""
    for _ in range(attempts - 1):
        try:
            return await call()
        except TransientFault:
            await asyncio.sleep(delay_s)
    return await call()


async def test_round_trip_status_and_ping(make_twin: Any, make_robot: Any) -> None:
    twin = make_twin()
    robot = make_robot()
    assert isinstance(robot, Synthesizer) and not MqttRobot.simulated
    assert isinstance(robot, Pingable) and isinstance(robot, WireDescriber) and isinstance(robot, Limited)
    sample = await robot.synthesize(req("k-1"))
    assert sample.key == "k-1" and sample.conditions == ALLOY
    assert sample.duration_s > 2 * 3600  # lab time: the 2 h soak plus ramp and cooling
    assert sample.truth is not None and sample.attributes["system"] == "two_phase_alloy"
    journal = twin.furnace.journal.get("k-1")
    assert journal is not None and journal.data["sample"]["sample_id"] == sample.sample_id
    done = await robot.status("k-1")
    assert done.state == RequestState.DONE and done.sample is not None
    assert done.sample.sample_id == sample.sample_id and done.sample.conditions == ALLOY
    assert (await robot.status("never-sent")).state == RequestState.UNKNOWN
    health = await robot.ping()
    assert health.ok and health.state == "idle" and health.info["system"] == "two_phase_alloy"


async def test_same_key_makes_one_sample(make_twin: Any, make_robot: Any) -> None:
    twin = make_twin()
    robot = make_robot()
    first = await robot.synthesize(req("k-1"))
    again = await robot.synthesize(req("k-1"))
    both = await asyncio.gather(robot.synthesize(req("k-2")), robot.synthesize(req("k-2")))
    assert again.sample_id == first.sample_id and both[0].sample_id == both[1].sample_id
    assert twin.received["k-1"] == 2  # the robot heard the repeat and answered from its journal
    assert twin.received["k-2"] == 1  # concurrent calls with one key: one request on the wire
    assert twin.samples_made("k-1") == 1 and twin.samples_made() == 2


async def test_hard_limits_checked_before_anything_is_published(make_robot: Any, spy: Spy) -> None:
    limits = {"limits": {"anneal_temperature": {"low": 600, "high": 900, "unit": "degC"}}}
    robot = make_robot(hard_limits=limits)
    assert robot.hard_limits().limits["anneal_temperature"].high == 900
    with pytest.raises(LimitViolation, match="anneal_temperature=1000"):
        await robot.synthesize(req("hot", anneal_temperature=1000.0))
    await asyncio.sleep(0.5)
    assert spy.topics() == []


async def test_ping_live_absent_offline_and_no_broker(make_twin: Any, make_robot: Any, prefix: str) -> None:
    absent = make_robot(prefix=f"{prefix}/nobody", timeouts={"ping_s": 0.5})
    assert (await absent.ping()).state == "no_answer"
    no_broker = make_robot(port=free_port(), timeouts={"connect_s": 0.5})
    health = await no_broker.ping()
    assert not health.ok and health.state == "unreachable" and "cannot reach the MQTT broker" in health.detail
    twin = make_twin()
    robot = make_robot()
    assert (await robot.ping()).ok
    twin.stop(clear_retained=False)  # a clean leave says offline (retained)
    assert await until(lambda: robot.robot_online is False)
    health = await robot.ping()
    assert not health.ok and health.state == "offline"
    with pytest.raises(TransientFault, match="offline"):
        await robot.synthesize(req("k-1"))


async def test_garbage_is_logged_and_ignored(make_twin: Any, make_robot: Any, caplog: Any) -> None:
    twin = make_twin(TwinFaults(garbage=frozenset({1})))
    robot = make_robot()
    with caplog.at_level(logging.INFO, logger="instruments.drivers.mqtt"):
        sample = await robot.synthesize(req("k-1"))
        assert await until(lambda: "not a JSON object" in caplog.text and "stranger" in caplog.text)
    assert twin.furnace.journal.get("k-1").data["sample"]["sample_id"] == sample.sample_id  # type: ignore[union-attr]
    text = caplog.text
    for why in ("unknown state 'melted'", "no sample id", "no duration in seconds", "without a key"):
        assert why in text, why
    assert "a key this driver is not waiting for" in text
    assert (await robot.ping()).ok  # still working after the garbage


async def test_duplicate_result_is_recorded_once(make_twin: Any, make_robot: Any, caplog: Any) -> None:
    twin = make_twin(TwinFaults(duplicate=frozenset({1})))
    robot = make_robot()
    with caplog.at_level(logging.INFO, logger="instruments.drivers.mqtt"):
        sample = await robot.synthesize(req("k-1"))
        assert await until(lambda: "ignored a result for k-1: its request is already" in caplog.text)
    other = await robot.synthesize(req("k-2", anneal_time=1.0))
    assert other.sample_id != sample.sample_id and other.key == "k-2"
    assert twin.samples_made() == 2


async def test_robot_offline_mid_request_then_retry_gets_the_one_sample(make_twin: Any, make_robot: Any) -> None:
    twin = make_twin(TwinFaults(offline=frozenset({1}), offline_for_s=0.5))
    robot = make_robot()
    with pytest.raises(TransientFault) as fault:
        await robot.synthesize(req("k-1"))
    assert fault.value.code == "robot_offline"
    sample = await retrying(lambda: robot.synthesize(req("k-1")))
    assert twin.online and twin.samples_made("k-1") == 1 and twin.received["k-1"] == 2
    assert twin.furnace.journal.get("k-1").data["sample"]["sample_id"] == sample.sample_id  # type: ignore[union-attr]
    status = await robot.status("k-1")
    assert status.state == RequestState.DONE and status.sample is not None
    assert status.sample.sample_id == sample.sample_id


async def test_no_answer_is_a_transient_fault_after_the_silence_timeout(make_twin: Any, make_robot: Any) -> None:
    twin = make_twin(TwinFaults(silent=frozenset({1})))
    robot = make_robot(timeouts={"silence_s": 1.0}, resend={"after_s": None})
    with pytest.raises(TransientFault) as fault:
        await robot.synthesize(req("k-1"))
    assert fault.value.code == "timeout" and "no news" in fault.value.reason
    sample = await robot.synthesize(req("k-1"))  # the agent's retry: same key
    assert sample.key == "k-1" and twin.samples_made() == 1


async def test_unacknowledged_request_is_published_again(make_twin: Any, make_robot: Any) -> None:
    twin = make_twin(TwinFaults(silent=frozenset({1})))
    robot = make_robot(resend={"after_s": 0.3, "max_times": 2})
    sample = await robot.synthesize(req("k-1"))
    assert twin.received["k-1"] >= 2 and twin.samples_made("k-1") == 1 and sample.key == "k-1"


async def test_status_polls_keep_a_quiet_long_request_alive(make_twin: Any, make_robot: Any) -> None:
    twin = make_twin(time_scale=10_000.0, heartbeat_s=None)  # about 2 s of wall time, and no progress messages
    robot = make_robot(timeouts={"silence_s": 1.0}, resend={"poll_status_s": 0.3})
    sample = await robot.synthesize(req("k-1", anneal_time=4.0))
    assert sample.key == "k-1" and twin.samples_made("k-1") == 1 and twin.received["k-1"] == 1


async def test_a_lost_request_is_sent_again_when_status_says_unknown(make_twin: Any, make_robot: Any) -> None:
    twin = make_twin(TwinFaults(silent=frozenset({1})))
    robot = make_robot(timeouts={"silence_s": 2.0}, resend={"after_s": None, "poll_status_s": 0.3})
    sample = await robot.synthesize(req("k-1"))
    assert sample.key == "k-1" and twin.received["k-1"] == 2 and twin.samples_made("k-1") == 1


async def test_broker_connection_drop_reconnects_and_resubscribes(make_twin: Any, make_robot: Any) -> None:
    twin = make_twin(time_scale=20_000.0)  # about 0.6 s for this sample
    robot = make_robot(timeouts={"reconnect_min_s": 0.1, "reconnect_max_s": 0.5})
    assert (await robot.ping()).ok
    task = asyncio.ensure_future(robot.synthesize(req("k-1", anneal_time=3.0)))
    assert await until(lambda: twin.received["k-1"] == 1)
    assert (await robot.status("k-1")).state == RequestState.RUNNING
    sock = robot._link._client.socket()  # type: ignore[union-attr]
    assert isinstance(sock, socket.socket)
    sock.shutdown(socket.SHUT_RDWR)  # the broker connection dies under the driver
    sample = await task
    assert sample.key == "k-1" and twin.samples_made("k-1") == 1
    assert twin.received["k-1"] >= 2  # published again after the reconnect
    assert (await robot.ping()).ok  # subscriptions were renewed


async def test_robot_failure_is_permanent(make_twin: Any, make_robot: Any) -> None:
    make_twin()
    robot = make_robot()
    with pytest.raises(PermanentFault) as fault:  # above the solidus of this alloy: the sample melts
        await robot.synthesize(req("k-1", anneal_temperature=1080.0, alloy_fraction=0.12))
    assert fault.value.code == "melted" and "solidus" in fault.value.reason  # the robot's own code and reason
    assert not isinstance(fault.value, TransientFault)
    status = await robot.status("k-1")
    assert status.state == RequestState.FAILED and "solidus" in status.reason


async def test_password_never_in_logs_or_wire_request(
    make_twin: Any, make_robot: Any, monkeypatch: Any, caplog: Any
) -> None:
    secret = "s3cr3t-pw-never-shown"
    monkeypatch.setenv("MATLOOP_TEST_MQTT_PW", secret)
    make_twin()
    with caplog.at_level(logging.DEBUG):
        robot = make_robot(username="matloop", password_env="MATLOOP_TEST_MQTT_PW")
        sample = await robot.synthesize(req("k-1"))
        wire = robot.wire_request(req("k-2"))
    assert sample.key == "k-1"
    assert wire["password"] == "<redacted: from $MATLOOP_TEST_MQTT_PW>" and wire["username"] == "matloop"
    assert wire["topic"].endswith("/request") and wire["qos"] == 1
    assert wire["payload"]["key"] == "k-2" and wire["payload"]["conditions"] == ALLOY
    for text in (caplog.text, json.dumps(wire), repr(robot.options), str(vars(robot))):
        assert secret not in text
    monkeypatch.delenv("MATLOOP_TEST_MQTT_PW")
    with pytest.raises(ValueError, match="password_env: the environment variable MATLOOP_TEST_MQTT_PW is not set"):
        make_robot(username="matloop", password_env="MATLOOP_TEST_MQTT_PW")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"qos": 3}, "qos"),
        ({"timeouts": {"silence_s": -1}}, "silence_s"),
        ({"hots": "x"}, "hots"),
        ({"password": "hunter2", "username": "u"}, "password_env"),
        ({"topics": {"result": "{prefix}/result/{id}"}}, "topics.result"),
        ({"topics": {"result": "{prefix}/result-{key}"}}, "whole topic level"),
        ({"prefix": "lab/#"}, "prefix"),
        ({"states": {"done": ["done"], "failed": ["done"]}}, "states"),
        ({"hard_limits": {"limits": {"anneal_temperature": {"low": 1}}}}, "unit"),
        ({"hard_limits": None}, "hard_limits"),
    ],
)
def test_bad_options_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field.replace(".", r"\.")):
        MqttRobot.validate_options({"host": HOST, "prefix": "lab/robot", "hard_limits": {"limits": {}}, **options})
    with pytest.raises(InstrumentSpecError, match="mqtt-robot"):
        validate_options("mqtt-robot", {"host": HOST, "prefix": "lab/robot", "hard_limits": {"limits": {}}, **options})


def test_the_documented_lab_configuration_is_valid(monkeypatch: Any, tmp_path: Any) -> None:
    text = mqtt_options.__doc__ or ""
    block = text[text.index("    synthesizer:") :]
    options = yaml.safe_load(block)["synthesizer"]["options"]
    monkeypatch.setenv("MQTT_PASSWORD", "x")
    robot = MqttRobot(context=InstrumentContext(seed=0, workdir=tmp_path), **options)
    wire = robot.wire_request(req("k-9"))
    assert wire["payload"] == {
        "command": "anneal",
        "T_set": 850.0,
        **{k: v for k, v in ALLOY.items() if k != "anneal_temperature"},
        "campaign": "mqtt_test",
        "key": "k-9",
    }
    assert wire["broker"] == "mqtts://broker.lab.local:8883" and wire["topic"] == "lab1/furnace2/request"
    with pytest.raises(LimitViolation):
        robot.hard_limits().enforce({"anneal_temperature": 1200.0}, who="test")
    robot.close()
