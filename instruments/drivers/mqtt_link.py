"""One paho-mqtt client and its network thread, bridged into an asyncio event loop.

paho runs its network loop in its own thread (``loop_start``): it connects, reconnects with backoff after the broker
drops, and calls back in that thread. Every callback is handed to the event loop with ``call_soon_threadsafe``,
so the driver's state is only ever touched in the loop's thread. Subscriptions are renewed on every connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt

from instruments.drivers.mqtt_options import MqttOptions

log = logging.getLogger("instruments.drivers.mqtt")

MessageHandler = Callable[[str, bytes], None]


class MqttLink:
    """A connection to the broker with its subscriptions; ``ready`` once connected and subscribed."""

    def __init__(
        self,
        options: MqttOptions,
        client_id: str,
        subscriptions: Sequence[str],
        on_message: MessageHandler,
        on_ready: Callable[[bool], None],
        on_lost: Callable[[str], None],
    ) -> None:
        self.options = options
        self.client_id = client_id
        self.subscriptions = list(dict.fromkeys(subscriptions))
        # weak: the network thread must not keep the driver alive (its finalizer closes this link)
        self._handlers = tuple(weakref.WeakMethod(h) for h in (on_message, on_ready, on_lost))  # type: ignore[arg-type]
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready_event: asyncio.Event | None = None
        self._subscribed = False  # written by the network thread, read by the loop
        self._sub_mid: int | None = None
        self._been_ready = False
        self._closing = False
        self.last_error = ""

    @property
    def where(self) -> str:
        return f"mqtt{'s' if self.options.tls else ''}://{self.options.host}:{self.options.port}"

    def _bind(self) -> asyncio.Event:
        """Binds callbacks to the running loop (the loop that uses the driver now) and returns its ready event."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._ready_event is None:
            self._loop = loop
            self._ready_event = asyncio.Event()
            if self._subscribed:
                self._ready_event.set()
        return self._ready_event

    def _start(self) -> None:
        o = self.options
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True, protocol=mqtt.MQTTv311
        )
        if o.username:
            client.username_pw_set(o.username, os.environ.get(o.password_env) if o.password_env else None)
        if o.tls:
            client.tls_set(ca_certs=str(o.ca_file) if o.ca_file else None)
        client.reconnect_delay_set(o.timeouts.reconnect_min_s, o.timeouts.reconnect_max_s)  # type: ignore[arg-type]
        client.on_connect = self._cb_connect
        client.on_subscribe = self._cb_subscribe
        client.on_disconnect = self._cb_disconnect
        client.on_message = self._cb_message
        client.on_connect_fail = self._cb_connect_fail
        self._client = client
        log.info("connecting to %s as %s", self.where, self.client_id)
        client.connect_async(o.host, o.port, keepalive=o.keepalive_s)
        client.loop_start()

    async def ready(self, timeout_s: float) -> bool:
        """Starts the connection if needed and waits until it is subscribed; False after ``timeout_s``."""
        if self._closing:
            return False
        event = self._bind()
        if self._client is None:
            self._start()
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def publish(self, topic: str, payload: bytes, qos: int) -> bool:
        """Hands a message to paho; QoS > 0 messages are queued while disconnected and sent on reconnect."""
        if self._client is None:
            return False
        info = self._client.publish(topic, payload, qos=qos)
        ok = info.rc == mqtt.MQTT_ERR_SUCCESS or (qos > 0 and info.rc == mqtt.MQTT_ERR_NO_CONN)
        if not ok:
            log.warning("publish to %s failed: %s", topic, mqtt.error_string(info.rc))
        return ok

    def close(self) -> None:
        """Disconnects cleanly and stops the network thread."""
        self._closing = True
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
        self._subscribed = False
        if self._ready_event is not None:
            self._ready_event.clear()

    # --- network thread -> event loop --------------------------------------------------------------
    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
            loop.call_soon_threadsafe(fn, *args)

    def _cb_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        if reason.is_failure:
            self.last_error = f"the broker refused the connection: {reason}"
            log.warning("%s refused the connection: %s", self.where, reason)
            return
        self.last_error = ""
        _, self._sub_mid = client.subscribe([(t, int(self.options.qos)) for t in self.subscriptions])

    def _cb_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        self.last_error = "cannot connect to the broker"

    def _cb_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, codes: list[Any], _p: Any = None) -> None:
        if mid != self._sub_mid:
            return
        refused = [t for t, c in zip(self.subscriptions, codes, strict=False) if c.is_failure]
        if refused:
            log.warning("%s refused the subscriptions %s", self.where, refused)
        self._subscribed = True
        self._post(self._became_ready)

    def _cb_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        self._subscribed = False
        if not self._closing:
            self.last_error = f"lost the broker: {reason}"
            log.warning("lost the connection to %s (%s); reconnecting", self.where, reason)
            self._post(self._became_lost, str(reason))

    def _cb_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._post(self._handle, 0, msg.topic, bytes(msg.payload))

    # --- in the event loop -------------------------------------------------------------------------
    def _became_ready(self) -> None:
        if not self._subscribed:  # dropped again before this ran
            return
        event = self._ready_event
        if event is not None:
            event.set()
        again, self._been_ready = self._been_ready, True
        self._handle(1, again)

    def _became_lost(self, reason: str) -> None:
        if self._ready_event is not None and not self._subscribed:
            self._ready_event.clear()
        self._handle(2, reason)

    def _handle(self, which: int, *args: Any) -> None:
        handler = self._handlers[which]()
        if handler is not None:
            handler(*args)
