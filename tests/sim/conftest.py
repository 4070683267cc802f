"""Shared helpers for the simulated-lab tests: a virtual-time event loop and a context in tmp_path."""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from instruments.registry import InstrumentContext

T = TypeVar("T")


class _Selector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    loop: VirtualLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if not events and timeout and self.loop is not None:
            self.loop.now += timeout
        return events


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer: hours of ``asyncio.sleep`` take no wall time."""

    def __init__(self) -> None:
        sel = _Selector()
        super().__init__(sel)
        sel.loop = self
        self.now = 0.0

    def time(self) -> float:
        return self.now


def vrun(coro: Coroutine[Any, Any, T]) -> T:
    """Runs ``coro`` on a fresh virtual-time loop."""
    with asyncio.Runner(loop_factory=VirtualLoop) as runner:
        return runner.run(coro)


@pytest.fixture
def ctx(tmp_path: Path) -> InstrumentContext:
    return InstrumentContext(seed=7, workdir=tmp_path / "lab", campaign="test")


@pytest.fixture
def run() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    return vrun
