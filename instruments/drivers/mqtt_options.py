"""Options of the ``mqtt-robot`` driver as written in a campaign: broker, topics, payload mapping, timeouts.

Topic templates name ``{prefix}`` and, where a topic is per request, ``{key}`` (one whole topic level, so that the
driver can subscribe with ``+`` in its place). Payload paths are dotted (``result.sample.id``) into JSON objects.
The defaults are the protocol the simulated twin (``instruments.sim.mqtt_robot``) speaks. A robot with its own
words, in a campaign::

    synthesizer:
      type: mqtt-robot
      options:
        host: broker.lab.local
        port: 8883
        tls: true
        username: matloop
        password_env: MQTT_PASSWORD          # the variable's NAME; the password never goes in a file
        prefix: lab1/furnace2
        fields: {conditions: "", rename: {anneal_temperature: T_set}, static: {command: anneal}}
        states: {done: [finished], failed: [aborted, error]}
        timeouts: {silence_s: 600}
        hard_limits: {limits: {anneal_temperature: {low: 20, high: 1100, unit: degC}}}
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from instruments.safety import HardLimits

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_PER_KEY = ("request", "result", "status_request", "status_reply")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Topics(_Frozen):
    """Topic templates. ``online`` carries the robot's retained birth message and its last will (None: the robot
    announces nothing, and a robot that dies mid-request is noticed only by silence)."""

    request: str = "{prefix}/request"
    result: str = "{prefix}/result/{key}"
    status_request: str = "{prefix}/status/request"
    status_reply: str = "{prefix}/status/reply/{key}"
    ping: str = "{prefix}/ping"
    health: str = "{prefix}/health"
    online: str | None = "{prefix}/online"

    @model_validator(mode="after")
    def _templates(self) -> Topics:
        for name, template in self.model_dump().items():
            if template is None:
                continue
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            allowed = {"prefix", "key"} if name in _PER_KEY else {"prefix"}
            if not fields <= allowed:
                raise ValueError(f"topics.{name}: {template!r} may only use {sorted(allowed)}, not {sorted(fields)}")
            if "key" in fields and "{key}" not in template.split("/"):
                raise ValueError(f"topics.{name}: {{key}} must be a whole topic level, as in 'lab/result/{{key}}'")
            if any(c in template for c in "+#"):
                raise ValueError(f"topics.{name}: {template!r} contains an MQTT wildcard (+ or #)")
        return self


class PayloadFields(_Frozen):
    """Where things are in the JSON payloads (dotted paths). Requests carry ``key``, the conditions (renamed by
    ``rename``; under ``conditions``, or at the top level when it is empty), ``campaign`` and the ``static``
    fields. Results and status replies carry ``key``, ``state`` and, when done, the sample; ``duration_s``
    None: the robot does not report it and the driver records the wall time it waited."""

    key: str = "key"
    conditions: str = "conditions"
    campaign: str | None = "campaign"
    rename: dict[str, str] = Field(default_factory=dict, description="condition name -> the robot's name for it")
    static: dict[str, str | int | float | bool] = Field(default_factory=dict, description="fixed request fields")
    state: str = "state"
    sample_id: str = "sample_id"
    duration_s: str | None = "duration_s"
    attributes: str | None = "attributes"
    reason: str = "reason"
    code: str | None = "code"
    truth: str | None = "truth"
    nonce: str = "nonce"
    health_state: str = "state"
    health_ok: str | None = "ok"

    @model_validator(mode="after")
    def _paths(self) -> PayloadFields:
        for name, path in self.model_dump(exclude={"rename", "static"}).items():
            if path is None or (name == "conditions" and path == ""):
                continue
            if not path or any(not part for part in path.split(".")):
                raise ValueError(f"fields.{name}: {path!r} is not a dotted path like 'result.sample_id'")
        if len(set(self.rename.values())) != len(self.rename):
            raise ValueError("fields.rename: two conditions are renamed to the same robot name")
        return self


class StateWords(_Frozen):
    """The robot's words for a request's state (compared case-insensitively) and for its birth and last will."""

    running: tuple[str, ...] = ("accepted", "queued", "running")
    done: tuple[str, ...] = ("done", "completed")
    failed: tuple[str, ...] = ("failed", "error", "aborted")
    retry: tuple[str, ...] = Field(default=("rejected", "busy"), description="not accepted now: a transient fault")
    unknown: tuple[str, ...] = ("unknown",)
    online: tuple[str, ...] = ("online",)
    offline: tuple[str, ...] = ("offline",)

    @model_validator(mode="after")
    def _disjoint(self) -> StateWords:
        seen: dict[str, str] = {}
        for group in ("running", "done", "failed", "retry", "unknown"):
            words = getattr(self, group)
            if group in ("done", "failed") and not words:
                raise ValueError(f"states.{group}: needs at least one word")
            for w in words:
                if w.casefold() in seen:
                    raise ValueError(f"states: {w!r} is both {seen[w.casefold()]} and {group}")
                seen[w.casefold()] = group
        if {w.casefold() for w in self.online} & {w.casefold() for w in self.offline}:
            raise ValueError("states: a word cannot mean both online and offline")
        return self

    def group(self, word: Any) -> str | None:
        """``running|done|failed|retry|unknown`` for a state word, None for a word the robot should not say."""
        if not isinstance(word, str):
            return None
        w = word.casefold()
        for group in ("running", "done", "failed", "retry", "unknown"):
            if w in (x.casefold() for x in getattr(self, group)):
                return group
        return None


class Timeouts(_Frozen):
    """Seconds of wall time. ``silence_s``: no news about a running request for this long is a transient fault
    (the agent retries with the same key); ``overall_s``: the longest one request may take (None: no limit)."""

    connect_s: float = Field(default=10.0, gt=0)
    silence_s: float = Field(default=300.0, gt=0)
    overall_s: float | None = Field(default=86400.0, gt=0)
    status_s: float = Field(default=10.0, gt=0)
    ping_s: float = Field(default=5.0, gt=0)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _order(self) -> Timeouts:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("timeouts.reconnect_min_s must not exceed timeouts.reconnect_max_s")
        return self


class Resend(_Frozen):
    """While a request waits: publish it again (same key) when the robot has not acknowledged it after
    ``after_s``, at most ``max_times``; ask its status every ``poll_status_s`` (None: never), so that a robot
    that answers status but sends no progress of its own is not taken for silent, and one that lost the request
    ("unknown") gets it again."""

    after_s: float | None = Field(default=30.0, gt=0)
    max_times: int = Field(default=3, ge=0)
    poll_status_s: float | None = Field(default=60.0, gt=0)


class MqttOptions(_Frozen):
    """Options of ``mqtt-robot``. The password is never an option: ``password_env`` names the environment
    variable that holds it."""

    host: str = Field(min_length=1, description="broker host name or address")
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password_env: str | None = Field(default=None, pattern=ENV_NAME, description="environment variable NAME")
    tls: bool = False
    ca_file: Path | None = None
    client_id: str | None = Field(default=None, min_length=1, max_length=64)
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    prefix: str = Field(min_length=1, description="topic prefix of this robot, e.g. lab1/furnace2")
    topics: Topics = Topics()
    qos: Literal[0, 1, 2] = 1
    fields: PayloadFields = PayloadFields()
    states: StateWords = StateWords()
    timeouts: Timeouts = Timeouts()
    resend: Resend = Resend()
    hard_limits: HardLimits = Field(
        description="what this instrument must never be asked to do (required; `{limits: {}}` declares none on purpose)"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_password(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "password" in data:
            raise ValueError(
                "password: never write the password in options; name its environment variable in "
                "password_env (e.g. password_env: MQTT_PASSWORD)"
            )
        return data

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, prefix: str) -> str:
        if any(c in prefix for c in "+#") or prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(f"{prefix!r}: no wildcards (+ #) and no leading or trailing '/'")
        return prefix

    @model_validator(mode="after")
    def _credentials(self) -> MqttOptions:
        if self.password_env and not self.username:
            raise ValueError("password_env: a password needs a username (MQTT 3.1.1)")
        if self.ca_file is not None and not self.tls:
            raise ValueError("ca_file: given, but tls is false")
        return self

    def topic(self, name: str, key: str = "+") -> str:
        """Topic ``name`` for ``key`` (``+``: the subscription pattern)."""
        template = getattr(self.topics, name)
        assert template is not None, name
        return str(template).format(prefix=self.prefix, key=key)


def dig(data: Any, path: str) -> Any:
    """The value at a dotted path of nested JSON objects, or None when any step is missing."""
    for part in path.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return None
        data = data[part]
    return data


def put(data: dict[str, Any], path: str, value: Any) -> None:
    """Sets the value at a dotted path, making the objects on the way."""
    *parents, last = path.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[last] = value
