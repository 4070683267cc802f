"""What ``rest-robot`` sends and reads on the wire: reply parsing (dotted paths, JSON objects, the robot's error
message, Retry-After) and the small types the driver passes between its steps."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from instruments.base import Sample


class Garbled(Exception):
    """A reply that arrived but cannot be understood (not JSON, or JSON of the wrong shape): retried."""


class BorrowedTransport(httpx.AsyncBaseTransport):
    """An injected transport lent to one client at a time: closing the client must not close it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None


def dig(data: Any, path: str) -> Any:
    """The value at dotted ``path`` in nested mappings; ``KeyError`` naming the path when it is not there."""
    node = data
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


@dataclass(frozen=True)
class Reply:
    """A status (or submit) reply read: running, done (with the sample when the reply carries it) or failed."""

    phase: str
    reason: str = ""
    sample: Sample | None = None


class Retryable(Exception):
    """A reply whose HTTP status says try again (5xx, 408, 429), with the robot's Retry-After if it gave one."""

    def __init__(self, reason: str, wait_s: float | None) -> None:
        super().__init__(reason)
        self.reason, self.wait_s = reason, wait_s


def get_path(reply: Mapping[str, Any], path: str | None, default: Any) -> Any:
    """The value at ``path``, or ``default`` when the path is not configured (None) or not in the reply."""
    if path is None:
        return default
    try:
        return dig(reply, path)
    except KeyError:
        return default


def as_mapping(reply: Mapping[str, Any]) -> Mapping[str, Any]:
    """The reply as it is (any JSON object will do, e.g. for a health check)."""
    return reply


def json_object(resp: httpx.Response) -> Mapping[str, Any]:
    """The reply's JSON object; ``Garbled`` for anything else (an HTML error page, a list, a torn body)."""
    try:
        data = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        kind = resp.headers.get("content-type", "no content type")
        raise Garbled(f"not JSON (HTTP {resp.status_code}, {kind})") from None
    if not isinstance(data, Mapping):
        raise Garbled(f"JSON {type(data).__name__}, expected an object")
    return data


def server_message(resp: httpx.Response) -> str:
    """What the robot said about an error: its detail/message/error/reason field, or the start of its text."""
    try:
        data = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return short(resp.text) or resp.reason_phrase
    if isinstance(data, Mapping):
        for k in ("detail", "message", "error", "reason"):
            if k in data:
                return short(data[k] if isinstance(data[k], str) else json.dumps(data[k]))
    return short(json.dumps(data))


def retry_after(resp: httpx.Response) -> float | None:
    """The robot's Retry-After in seconds (numeric form only), if it gave one."""
    value = resp.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def short(text: str, limit: int = 300) -> str:
    """One line of at most ``limit`` characters, for messages that quote a robot."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain(value: Any) -> Any:
    """JSON-ready condition values (numpy scalars become Python numbers)."""
    return value.item() if hasattr(value, "item") else value
