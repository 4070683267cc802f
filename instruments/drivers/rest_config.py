"""Options of the ``rest-robot`` driver, as written under ``instruments.synthesizer.options`` in a campaign.

Every default speaks the reference robot server (``matloop sim serve``), so ``{base_url: http://127.0.0.1:8765}``
is a complete configuration against it. A real robot is described by overriding the endpoints and the field
mapping; the bearer token is never written in the YAML, only the NAME of the environment variable holding it.
"""

from __future__ import annotations

import re
import string
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from instruments.safety import HardLimits

Phase = Literal["running", "done", "failed"]
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DEFAULT_STATES: dict[str, Phase] = {"queued": "running", "running": "running", "done": "done", "failed": "failed"}
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _placeholders(path: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(path) if name is not None}


class Endpoints(_Frozen):
    """Paths under ``base_url``; ``{key}`` is replaced by the request's idempotency key (URL-quoted)."""

    submit: str = Field(default="/samples", description="POST: submit one request (body built from `fields`)")
    status: str = Field(default="/samples/{key}", description="GET: state of a request; 404 means unknown key")
    result: str | None = Field(
        default="/samples/{key}/result", description="GET: the made sample; null when the status reply carries it"
    )
    ping: str | None = Field(default="/health", description="GET: reachability and readiness; null if none")

    @model_validator(mode="after")
    def _paths(self) -> Endpoints:
        for name in ("submit", "status", "result", "ping"):
            path: str | None = getattr(self, name)
            if path is None:
                continue
            if not path.startswith("/"):
                raise ValueError(f"endpoints.{name}: {path!r} must start with '/' (it is joined to base_url)")
            try:
                found = _placeholders(path)
            except ValueError as exc:
                raise ValueError(f"endpoints.{name}: {path!r} is not a valid path template: {exc}") from None
            if found - {"key"}:
                raise ValueError(f"endpoints.{name}: unknown placeholder(s) {sorted(found - {'key'})}; valid: {{key}}")
            if name in ("status", "result") and "key" not in found:
                raise ValueError(f"endpoints.{name}: {path!r} needs the {{key}} placeholder")
        return self


class FieldMap(_Frozen):
    """How conditions go into the submit body and where the robot's replies keep their facts. Paths into replies
    are dotted (``job.state``); ``states`` maps the robot's own state words to running, done or failed."""

    conditions_object: str | None = Field(
        default="conditions", description="submit body key holding the conditions; null: conditions at top level"
    )
    rename: dict[str, str] = Field(default_factory=dict, description="campaign input name -> the robot's name")
    key_field: str | None = Field(default="key", description="submit body key carrying the idempotency key")
    campaign_field: str | None = Field(default="campaign", description="submit body key carrying the campaign")
    state: str = Field(default="state", description="path of the state word in status replies")
    reason: str = Field(default="reason", description="path of the failure reason in status replies")
    sample_id: str = Field(default="sample_id", description="path of the sample id in result replies")
    duration_s: str | None = Field(default="duration_s", description="path of the processing time (s); null: 0")
    attributes: str | None = Field(default="attributes", description="path of what the robot reports (mapping)")
    truth: str | None = Field(default="truth", description="path of ground truth (simulated robots only)")
    conditions: str | None = Field(default="conditions", description="path of the conditions in result replies")
    states: dict[str, Phase] = Field(
        default_factory=lambda: dict(_DEFAULT_STATES),
        description="robot state word -> running | done | failed",
    )
    health_ok: str | None = Field(default="ok", description="path of the ready flag in ping replies")
    health_state: str | None = Field(default="state", description="path of the state word in ping replies")

    @field_validator("rename")
    @classmethod
    def _one_to_one(cls, rename: dict[str, str]) -> dict[str, str]:
        targets = list(rename.values())
        dup = sorted({t for t in targets if targets.count(t) > 1})
        if dup:
            raise ValueError(f"two inputs renamed to the same robot name(s) {dup}: the robot could not tell them apart")
        return rename

    @field_validator("states")
    @classmethod
    def _has_states(cls, states: dict[str, Phase]) -> dict[str, Phase]:
        if "done" not in states.values():
            raise ValueError("states must map at least one robot state word to 'done'")
        return states

    @model_validator(mode="after")
    def _body_keys(self) -> FieldMap:
        top = [k for k in (self.conditions_object, self.key_field, self.campaign_field) if k is not None]
        if len(top) != len(set(top)):
            raise ValueError("conditions_object, key_field and campaign_field must be different body keys")
        if self.conditions_object is None:
            clash = sorted(set(top) & (set(self.rename.values()) | set(self.rename)))
            if clash:
                raise ValueError(f"with conditions at top level, input name(s) {clash} clash with key/campaign fields")
        return self


class Timeouts(_Frozen):
    """Seconds to wait for a connection and for a reply; a timed-out call is retried (transient)."""

    connect_s: float = Field(default=5.0, gt=0, description="to open a connection")
    read_s: float = Field(default=30.0, gt=0, description="for the reply to one request")
    write_s: float = Field(default=30.0, gt=0, description="to send one request")


class RetryPolicy(_Frozen):
    """Transient faults (refused/reset connections, 5xx, 408, 429, timeouts, unparsable replies) are retried with
    exponential backoff and random jitter, ``max_attempts`` times per call; then the agent gets a TransientFault."""

    max_attempts: int = Field(default=5, ge=1, le=100)
    backoff_s: float = Field(default=0.5, ge=0, description="wait before the second attempt")
    backoff_factor: float = Field(default=2.0, ge=1, description="each further wait is this many times longer")
    max_backoff_s: float = Field(default=30.0, ge=0, description="no single wait is longer (Retry-After included)")
    jitter: float = Field(default=0.25, ge=0, le=1, description="each wait is scaled by a uniform 1 ± jitter")


class RestRobotOptions(_Frozen):
    """Everything ``rest-robot`` needs. The token lives in the environment variable named by ``token_env``."""

    base_url: str = Field(description="http(s)://host[:port][/prefix] of the robot's API")
    token_env: str | None = Field(
        default="MATLOOP_ROBOT_TOKEN", description="NAME of the environment variable holding the bearer token"
    )
    endpoints: Endpoints = Endpoints()
    fields: FieldMap = FieldMap()
    timeouts: Timeouts = Timeouts()
    retries: RetryPolicy = RetryPolicy()
    poll_interval_s: float = Field(default=10.0, gt=0, description="wait between status polls of a running request")
    max_wait_h: float | None = Field(default=None, gt=0, description="give up (transient) on a request after this")
    headers: dict[str, str] = Field(default_factory=dict, description="extra headers sent with every request")
    verify_tls: bool = Field(default=True, description="check the robot's TLS certificate (https)")
    allow_plain_http: bool = Field(
        default=False, description="allow sending the token over plain http to a host other than loopback"
    )
    hard_limits: HardLimits = Field(
        description="what this robot must never be asked to do (required: a robot is not connected without them; "
        "`{limits: {}}` declares, on purpose, that there are none)"
    )

    @field_validator("base_url")
    @classmethod
    def _url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url {url!r} must be http(s)://host[:port][/prefix]")
        if parts.query or parts.fragment:
            raise ValueError(f"base_url {url!r} must not carry a query or fragment")
        return url.rstrip("/")

    @field_validator("token_env")
    @classmethod
    def _env_name(cls, name: str | None) -> str | None:
        if name is not None and not _ENV_NAME.match(name):
            raise ValueError(
                f"token_env must be the NAME of an environment variable (letters, digits, _), not {len(name)} "
                "characters of something else; never put the token itself in the campaign file"
            )
        return name

    @field_validator("headers")
    @classmethod
    def _no_secrets(cls, headers: dict[str, str]) -> dict[str, str]:
        reserved = {"authorization", "idempotency-key", "content-type"}
        bad = sorted(h for h in headers if h.lower() in reserved)
        if bad:
            raise ValueError(f"headers: {bad} are set by the driver (the token comes from token_env), not the YAML")
        return headers

    @model_validator(mode="after")
    def _token_transport(self) -> RestRobotOptions:
        parts = urlsplit(self.base_url)
        if (
            self.token_env is not None
            and parts.scheme == "http"
            and parts.hostname not in _LOOPBACK
            and not self.allow_plain_http
        ):
            raise ValueError(
                f"base_url {self.base_url!r} is plain http to another host: the bearer token would cross the network "
                "unencrypted; use https, or set allow_plain_http: true on a trusted network"
            )
        return self
