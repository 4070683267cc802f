"""A virtual-time asyncio event loop: a simulated lab's hours of ``asyncio.sleep`` pass in no wall time.

When no callback is ready and no executor job is running, the loop jumps its clock to the next timer
instead of blocking. Real I/O still wakes it as usual, so the same agent code runs real instruments on
an ordinary loop and simulated ones on this one; ``loop.time()`` is the lab time either way.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class _VirtualSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """Polls real file descriptors without waiting; a positive timeout advances virtual time instead."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self.loop
        if loop is None or timeout == 0:
            return super().select(timeout)
        if loop.executor_jobs > 0:
            # A thread is working: real time must pass for it; the virtual clock waits.
            return super().select(None if timeout is None else min(timeout, 0.05))
        if timeout is None:
            return super().select(None)
        events = super().select(0)
        if not events:
            loop.advance(timeout)
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """Event loop whose ``time()`` is virtual seconds since it was made."""

    def __init__(self) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self._now = 0.0
        self.executor_jobs = 0

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += max(seconds, 0.0)

    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Callable[..., Any], *args: Any
    ) -> asyncio.Future[Any]:
        self.executor_jobs += 1
        fut = super().run_in_executor(executor, func, *args)

        def _done(_: asyncio.Future[Any] | Future[Any]) -> None:
            self.executor_jobs -= 1

        fut.add_done_callback(_done)
        return fut


def run(coro: Any, *, virtual: bool) -> Any:
    """Runs ``coro`` to completion on a virtual-time loop (simulated labs) or the default loop."""
    factory = VirtualTimeLoop if virtual else None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)
