"""Fakes shipped with the package for tests (ours and users'): instant, scripted instruments.

They honour the protocols exactly, including idempotency by key and ``status`` for reconciliation, and can
be told to raise typed faults on chosen calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from instruments.base import (
    InstrumentError,
    Measurement,
    Micrograph,
    RequestState,
    RequestStatus,
    Sample,
    SynthesisRequest,
)


@dataclass
class FakeSynthesizer:
    """Makes a sample per key after ``duration_s`` of (loop) time; ``faults`` maps a call number (1-based)
    to the fault raised on that call."""

    duration_s: float = 0.0
    faults: dict[int, InstrumentError] = field(default_factory=dict)
    made: dict[str, Sample] = field(default_factory=dict)
    calls: int = 0
    simulated: bool = True

    async def synthesize(self, request: SynthesisRequest) -> Sample:
        self.calls += 1
        if self.calls in self.faults:
            raise self.faults[self.calls]
        if request.key in self.made:
            return self.made[request.key]
        if self.duration_s:
            await asyncio.sleep(self.duration_s)
        sample = Sample(f"S-{len(self.made) + 1}", request.key, dict(request.conditions), self.duration_s)
        self.made[request.key] = sample
        return sample

    async def status(self, key: str) -> RequestStatus:
        if key in self.made:
            return RequestStatus(key, RequestState.DONE, self.made[key])
        return RequestStatus(key, RequestState.UNKNOWN)


@dataclass
class FakeCharacterizer:
    """Measures ``functions[name](conditions)`` with a fixed σ, instantly."""

    functions: Mapping[str, Callable[[Mapping[str, float | int | str]], float]]
    sigma: float = 0.0
    unit: str = ""
    simulated: bool = True

    async def measure(self, sample: Sample) -> list[Measurement]:
        return [
            Measurement(name, float(f(sample.conditions)), self.sigma, self.unit, "fake")
            for name, f in self.functions.items()
        ]


@dataclass
class FakeImager:
    """Returns the given image files for every sample."""

    files: list[Micrograph]
    simulated: bool = True

    async def acquire(self, sample: Sample) -> list[Micrograph]:
        return list(self.files)
