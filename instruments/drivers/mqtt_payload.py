"""The JSON payloads of ``mqtt-robot``, as the options' field mapping describes them: the request it publishes,
and the sample a robot's 'done' report carries (or why the report is not one)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from instruments.base import Sample, SynthesisRequest
from instruments.drivers.mqtt_options import PayloadFields, dig, put


def request_body(fields: PayloadFields, request: SynthesisRequest) -> dict[str, Any]:
    """The request's JSON object: static fields, renamed conditions (nested or top level), campaign, key."""
    body: dict[str, Any] = json.loads(json.dumps(fields.static))
    conditions = {fields.rename.get(k, k): _plain(v) for k, v in request.conditions.items()}
    if fields.conditions:
        put(body, fields.conditions, conditions)
    else:
        body.update(conditions)
    if fields.campaign and request.campaign:
        put(body, fields.campaign, request.campaign)
    put(body, fields.key, request.key)
    return body


def key_body(fields: PayloadFields, key: str) -> bytes:
    """A status request: just the key."""
    body: dict[str, Any] = {}
    put(body, fields.key, key)
    return json.dumps(body).encode()


def sample_from(
    fields: PayloadFields,
    data: Mapping[str, Any],
    key: str,
    conditions: Mapping[str, Any] | None,
    waited_s: float,
) -> Sample | str:
    """The sample of a 'done' report, or what is wrong with the report. ``conditions``: those requested (None:
    read them back from the report); ``waited_s``: the duration when the robot does not report one."""
    f = fields
    sample_id = dig(data, f.sample_id)
    attributes = dig(data, f.attributes) if f.attributes else None
    truth = dig(data, f.truth) if f.truth else None
    duration: Any = dig(data, f.duration_s) if f.duration_s else waited_s
    problems = []
    if not isinstance(sample_id, (str, int)) or isinstance(sample_id, bool) or sample_id == "":
        problems.append(f"no sample id at {f.sample_id!r}")
    if attributes is not None and not isinstance(attributes, Mapping):
        problems.append(f"attributes at {f.attributes!r} are not an object")
    if truth is not None and not isinstance(truth, Mapping):
        problems.append(f"truth at {f.truth!r} is not an object")
    if not (isinstance(duration, (int, float)) and not isinstance(duration, bool) and math.isfinite(duration)):
        problems.append(f"no duration in seconds at {f.duration_s!r}")
    elif duration < 0:
        problems.append(f"negative duration at {f.duration_s!r}")
    if problems:
        return "; ".join(problems)
    if conditions is None:
        back = {v: k for k, v in f.rename.items()}
        raw = dig(data, f.conditions) if f.conditions else None
        conditions = {str(back.get(k, k)): v for k, v in raw.items()} if isinstance(raw, Mapping) else {}
    return Sample(
        sample_id=str(sample_id),
        key=key,
        conditions=dict(conditions),
        duration_s=float(duration),
        attributes=dict(attributes or {}),
        truth=dict(truth) if truth is not None else None,
    )


def json_object(payload: bytes) -> dict[str, Any] | None:
    """The payload as a JSON object, or None when it is not one."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _plain(value: Any) -> Any:
    """A JSON-ready condition value (numpy scalars to Python numbers)."""
    return value.item() if hasattr(value, "item") else value
