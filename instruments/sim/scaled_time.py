"""An asyncio event loop whose clock runs faster than the wall clock, for simulated instruments served to real-time
clients (the reference robot server, the MQTT twin): the furnace's ``asyncio.sleep`` of lab hours passes in wall
seconds."""

from __future__ import annotations

import asyncio
import selectors
import time


class _ScaledSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """Waits ``timeout / scale`` wall seconds for what the loop asks as ``timeout`` lab seconds."""

    scale = 1.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        return super().select(None if timeout is None else timeout / self.scale)  # type: ignore[no-any-return]


class ScaledTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` is lab seconds since it started, passing ``scale`` times faster than wall
    time: ``asyncio.sleep(3600)`` takes 3600 / scale wall seconds."""

    def __init__(self, scale: float) -> None:
        if not scale > 0:
            raise ValueError(f"time_scale must be > 0, got {scale}")
        selector = _ScaledSelector()
        selector.scale = scale
        super().__init__(selector)
        self.scale = scale
        self._t0 = time.monotonic()
        self.slow_callback_duration *= scale  # debug mode's "slow callback" threshold, in this loop's seconds

    def time(self) -> float:
        return (time.monotonic() - self._t0) * self.scale
