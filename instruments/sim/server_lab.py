"""The simulated lab behind the reference robot server: a ``SimFurnace`` on its own thread and event loop, whose
clock runs ``time_scale`` times faster than the wall clock, so that hours of lab time pass in seconds.

The furnace journals every key it accepts (``sim_furnace_journal.jsonl`` in the workdir), so a server restarted on
the same workdir still knows them; ``restart(forget=True)`` archives the journal first, like a robot that lost its
memory. What was started and made is counted from the journals (archived ones included): the proof that no key
ever made two samples.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from instruments.base import InstrumentError, RequestState, SynthesisRequest
from instruments.registry import InstrumentContext
from instruments.sim.journal import DONE, RECEIVED
from instruments.sim.lab import JOURNAL_NAME, SimFurnace
from instruments.sim.scaled_time import ScaledTimeLoop

T = TypeVar("T")


@dataclass(frozen=True)
class Record:
    """What the server answers about one key (the JSON of ``GET /samples/{key}``)."""

    key: str
    state: str  # running | done | failed
    data: dict[str, Any] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        return {"key": self.key, "state": self.state, **self.data}


class Busy(Exception):
    """The furnace did not accept the request now (busy, down for maintenance): the client may retry."""


class Refused(Exception):
    """The furnace will never do this request (outside its hard limits): the client must not retry it."""


class RobotLab:
    """A ``SimFurnace`` run on a time-scaled loop in a thread; every method is called from the server's loop."""

    def __init__(
        self,
        *,
        workdir: Path,
        system: str,
        seed: int,
        time_scale: float,
        furnace_options: Mapping[str, Any] | None = None,
        fresh: bool = False,
    ) -> None:
        self.workdir = workdir
        self.system, self.seed, self.time_scale = system, seed, time_scale
        self.furnace_options = dict(furnace_options or {})
        self.restarts = 0
        workdir.mkdir(parents=True, exist_ok=True)
        ScaledTimeLoop(time_scale).close()  # refuse a bad time scale before anything starts
        if fresh:
            self._archive()
        self._start()

    # --- lifetime ------------------------------------------------------------------------------------
    def _start(self) -> None:
        self.loop = ScaledTimeLoop(self.time_scale)
        context = InstrumentContext(seed=self.seed, workdir=self.workdir, campaign="")
        self.furnace = SimFurnace(context=context, system=self.system, **self.furnace_options)
        self._runs: dict[str, asyncio.Future[Any]] = {}
        self.thread = threading.Thread(target=self.loop.run_forever, name="robot-lab", daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stops the lab: runs in flight are abandoned (their keys stay journaled as received)."""
        if self.loop.is_closed():
            return
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            asyncio.run_coroutine_threadsafe(_cancel_all(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    def restart(self, *, forget: bool) -> None:
        """A power cycle: in-flight runs stop; with ``forget`` the journal is archived, so every key is unknown."""
        self.close()
        if forget:
            self._archive()
        self.restarts += 1
        self._start()

    def _archive(self) -> None:
        path = self.workdir / JOURNAL_NAME
        if path.exists():
            n = len(list(self.workdir.glob(JOURNAL_NAME + ".forgotten-*")))
            path.rename(self.workdir / f"{JOURNAL_NAME}.forgotten-{n + 1}")

    # --- requests ------------------------------------------------------------------------------------
    async def submit(self, key: str, conditions: Mapping[str, Any], campaign: str) -> tuple[Record, bool]:
        """The key's record and whether this call started it; ``Busy`` if the furnace cannot take it now, ``Refused``
        if it never will."""
        return await self._on_lab(self._submit(key, dict(conditions), campaign))

    async def status(self, key: str) -> Record | None:
        """The key's record, or None when the lab does not know it."""
        return await self._on_lab(self._status(key))

    def lab_time_s(self) -> float:
        return self.loop.time()

    def in_flight(self) -> int:
        return sum(1 for t in self._runs.values() if not t.done())

    def journal_counts(self) -> dict[str, dict[str, int]]:
        """Per key: how many runs were started (``received``) and samples made (``done``), over every journal."""
        started: dict[str, int] = {}
        made: dict[str, int] = {}
        for path in sorted(self.workdir.glob(JOURNAL_NAME + "*")):
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line being written right now
                    continue
                key = str(rec.get("key"))
                if rec.get("event") == RECEIVED:
                    started[key] = started.get(key, 0) + 1
                elif rec.get("event") == DONE:
                    made[key] = made.get(key, 0) + 1
        return {"started": started, "made": made}

    # --- on the lab's loop ---------------------------------------------------------------------------
    async def _on_lab(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def _submit(self, key: str, conditions: dict[str, Any], campaign: str) -> tuple[Record, bool]:
        known = await self._status(key)
        if known is not None:
            return known, False
        task = asyncio.ensure_future(self.furnace.synthesize(SynthesisRequest(key, conditions, campaign)))
        task.add_done_callback(_retrieve)
        self._runs[key] = task
        await asyncio.sleep(0)  # the furnace journals the key (or refuses it) in its first step
        record = await self._status(key)
        if record is None:
            error = task.exception() if task.done() else None
            if isinstance(error, InstrumentError) and not error.transient:
                raise Refused(error.reason)
            raise Busy(error.reason if isinstance(error, InstrumentError) else "the furnace did not take the request")
        return record, True

    async def _status(self, key: str) -> Record | None:
        st = await self.furnace.status(key)
        entry = self.furnace.journal.get(key)
        data = dict(entry.data) if entry is not None else {}
        if st.state == RequestState.UNKNOWN:
            return None
        if st.state == RequestState.RUNNING:
            started = float(data.get("started_s", 0.0))
            expected = self.furnace.duration_s(data.get("conditions", {}))
            return Record(
                key,
                "running",
                {
                    "conditions": data.get("conditions", {}),
                    "started_lab_time_s": started,
                    "expected_duration_s": expected,
                    "lab_time_s": self.loop.time(),
                },
            )
        if st.state == RequestState.FAILED:
            return Record(key, "failed", {"reason": st.reason, "code": str(data.get("code", "failed"))})
        sample = st.sample
        assert sample is not None
        return Record(
            key,
            "done",
            {
                "sample_id": sample.sample_id,
                "conditions": dict(sample.conditions),
                "duration_s": sample.duration_s,
                "attributes": dict(sample.attributes),
                "truth": dict(sample.truth) if sample.truth is not None else None,
            },
        )


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Marks a finished run's outcome as seen: the journal holds it (and a refusal was answered as 503)."""
    if not task.cancelled():
        task.exception()


async def _cancel_all() -> None:
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
