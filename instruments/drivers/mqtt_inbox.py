"""The ``mqtt-robot`` driver's inbox: the requests, status questions and pings it waits for, and the messages
that answer them, matched by key (or nonce). Everything here runs in the event loop's thread.

A message that answers nothing (an unknown key, a second copy of a result, a payload that is not what the
mapping describes) is logged and ignored. The robot's retained birth / last-will message sets ``robot_online``;
its last will fails every running request with a transient fault.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from instruments.base import PermanentFault, RequestState, RequestStatus, Sample, SynthesisRequest, TransientFault
from instruments.drivers.mqtt_options import MqttOptions, dig
from instruments.drivers.mqtt_payload import json_object, sample_from

log = logging.getLogger("instruments.drivers.mqtt")
_RECENT = 2048  # settled keys remembered, to tell a second copy of a result from a stranger's


@dataclass
class Pending:
    """A synthesis request this driver waits for."""

    request: SynthesisRequest
    topic: str
    payload: bytes
    future: asyncio.Future[Sample]
    started: float
    last_news: float
    last_sent: float
    acknowledged: bool = False
    resends: int = 0


class Inbox:
    """Waiting calls by key and nonce; ``on_message`` settles them. ``resend`` publishes a request again."""

    def __init__(self, options: MqttOptions, resend: Callable[[Pending], None]) -> None:
        self.options = options
        self._resend = resend
        self.pending: dict[str, Pending] = {}
        self.status_waiters: dict[str, list[asyncio.Future[RequestStatus]]] = {}
        self.ping_waiters: dict[str, asyncio.Future[Mapping[str, Any]]] = {}
        self.settled: OrderedDict[str, str] = OrderedDict()
        self.robot_online: bool | None = None  # from the retained birth / last-will message; None: not said

    def remember(self, key: str, outcome: str) -> None:
        """Notes how a key's request ended, so that a late or repeated result for it is told from a stranger's."""
        self.settled[key] = outcome
        self.settled.move_to_end(key)
        while len(self.settled) > _RECENT:
            self.settled.popitem(last=False)

    def fail_all(self, fault: TransientFault) -> None:
        """Fails every waiting request and status question (the driver is closing)."""
        for p in list(self.pending.values()):
            if not p.future.done():
                p.future.set_exception(fault)
        for waiters in self.status_waiters.values():
            for w in waiters:
                if not w.done():
                    w.set_exception(fault)

    def on_message(self, topic: str, payload: bytes) -> None:
        """Routes one message by topic: birth/last will, health, results and status replies."""
        o = self.options
        if o.topics.online and mqtt.topic_matches_sub(o.topic("online"), topic):
            self._on_online(payload)
            return
        data = json_object(payload)
        if data is None:
            log.warning("ignored a payload on %s that is not a JSON object: %r", topic, payload[:200])
            return
        if mqtt.topic_matches_sub(o.topic("health"), topic):
            self._on_health(data)
            return
        for kind in ("result", "status_reply"):
            if mqtt.topic_matches_sub(o.topic(kind), topic):
                self._on_report(kind, topic, data)

    def _on_online(self, payload: bytes) -> None:
        text = payload.decode("utf-8", "replace").strip()
        data = json_object(payload)
        if data is not None:
            text = str(dig(data, self.options.fields.state) or "")
        words = self.options.states
        if not text:
            self.robot_online = None  # retained message cleared
        elif text.casefold() in (w.casefold() for w in words.online):
            if self.robot_online is False:
                log.info("the robot on %s is back online", self.options.prefix)
            self.robot_online = True
        elif text.casefold() in (w.casefold() for w in words.offline):
            self.robot_online = False
            if self.pending:
                log.warning(
                    "the robot on %s went offline with %d request(s) running", self.options.prefix, len(self.pending)
                )
            for key, p in self.pending.items():
                if not p.future.done():
                    p.future.set_exception(
                        TransientFault(
                            f"the robot went offline (last will) while {key} was running", code="robot_offline"
                        )
                    )
        else:
            log.warning("ignored an online/offline message the mapping does not know: %r", text[:100])

    def _on_health(self, data: Mapping[str, Any]) -> None:
        nonce = dig(data, self.options.fields.nonce)
        if nonce is None:  # an unsolicited health report answers whoever is asking
            targets = list(self.ping_waiters.values())
        else:
            targets = [w for n, w in self.ping_waiters.items() if n == nonce]
        for w in targets:
            if not w.done():
                w.set_result(data)

    def _on_report(self, kind: str, topic: str, data: Mapping[str, Any]) -> None:
        f = self.options.fields
        key = dig(data, f.key)
        if not isinstance(key, str) or not key:
            log.warning("ignored a %s on %s without a key at %r: %.200s", kind, topic, f.key, json.dumps(data))
            return
        group = self.options.states.group(dig(data, f.state))
        if group is None:
            log.warning("ignored a %s for %s with an unknown state %r", kind, key, dig(data, f.state))
            return
        pending = self.pending.get(key)
        waiters = self.status_waiters.get(key, []) if kind == "status_reply" else []
        final = kind == "result" and group in ("done", "failed", "retry")  # progress reports are not worth a line
        if pending is None and not waiters:
            if final and key in self.settled:
                log.info("ignored a result for %s: its request is already %s", key, self.settled[key])
            elif final:
                log.warning("ignored a result for %s, a key this driver is not waiting for", key)
            return
        sample: Sample | None = None
        if group == "done":
            asked = pending.request.conditions if pending is not None else None
            waited = asyncio.get_running_loop().time() - pending.started if pending is not None else 0.0
            made = sample_from(f, data, key, asked, waited)
            if isinstance(made, str):
                log.warning("ignored a 'done' report for %s: %s", key, made)
                return
            sample = made
        if waiters:
            state = {"running": RequestState.RUNNING, "done": RequestState.DONE, "failed": RequestState.FAILED}
            status = RequestStatus(key, state.get(group, RequestState.UNKNOWN), sample, str(dig(data, f.reason) or ""))
            for w in waiters:
                if not w.done():
                    w.set_result(status)
        if pending is not None and pending.future.done():
            if final:
                log.info("ignored a result for %s: its request is already settled", key)
            return
        if pending is None:
            return
        if group == "unknown":  # the robot never got it (a lost message): send it again
            log.info("the robot does not know %s: publishing it again", key)
            self._resend(pending)
            return
        pending.last_news = asyncio.get_running_loop().time()
        pending.acknowledged = True
        reason = str(dig(data, f.reason) or "")
        code = str(dig(data, f.code) or "") if f.code else ""
        if group == "done":
            assert sample is not None
            pending.future.set_result(sample)
        elif group == "failed":
            pending.future.set_exception(PermanentFault(reason or "the robot reports failure", code=code or "failed"))
        elif group == "retry":
            pending.future.set_exception(
                TransientFault(reason or "the robot did not accept the request", code=code or "rejected")
            )
