"""Protocols at the instrument seam and the typed values that cross it.

Instruments are async because real ones take minutes to hours and several run at once. Durations are
spent with ``asyncio.sleep``: under matloop's virtual-time event loop a simulated lab runs in seconds while
the loop's clock records the lab time a real lab would have spent.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

ConditionValue = float | int | str
Conditions = Mapping[str, ConditionValue]


class InstrumentError(Exception):
    """Root of the failure vocabulary. ``transient`` says whether retrying the same request may succeed."""

    transient: ClassVar[bool] = False

    def __init__(self, reason: str, *, code: str = "instrument_error") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class TransientFault(InstrumentError):
    """The instrument could not do it now (busy, down, timed out, garbled reply): retry later."""

    transient = True


class PermanentFault(InstrumentError):
    """The sample failed for good (melted, cracked, lost): retrying the same conditions is pointless."""

    transient = False


@dataclass(frozen=True)
class SynthesisRequest:
    """Conditions to make one sample. ``key`` is the idempotency key: the same key never makes two samples."""

    key: str
    conditions: Mapping[str, ConditionValue]
    campaign: str = ""


@dataclass(frozen=True)
class Sample:
    """A made sample. ``truth`` holds ground truth (simulated labs only); ``attributes`` what the robot reports."""

    sample_id: str
    key: str
    conditions: Mapping[str, ConditionValue]
    duration_s: float
    attributes: Mapping[str, Any] = field(default_factory=dict)
    truth: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Micrograph:
    """One acquired image: a file on disk plus its pixel size (micrometres per pixel) and metadata.

    ``pixel_size_um`` is ``None`` when the instrument leaves it to the file's own metadata (TIFF resolution tags,
    FEI/Zeiss SEM headers); the agent then reads it from the file before recording, and fails the experiment with
    the file named if the file does not carry one."""

    path: Path
    pixel_size_um: float | None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    truth: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Measurement:
    """A measured value with its standard uncertainty ``sigma`` in the same ``unit``."""

    name: str
    value: float
    sigma: float
    unit: str
    source: str = ""


class RequestState(enum.StrEnum):
    UNKNOWN = "unknown"  # the instrument never received this key
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class RequestStatus:
    """What an instrument knows about an idempotency key, for reconciling after a crash."""

    key: str
    state: RequestState
    sample: Sample | None = None
    reason: str = ""


@runtime_checkable
class Synthesizer(Protocol):
    """Makes samples. Must be idempotent by ``request.key``."""

    async def synthesize(self, request: SynthesisRequest) -> Sample: ...

    async def status(self, key: str) -> RequestStatus: ...


@runtime_checkable
class Imager(Protocol):
    """Images a sample: pixels on disk with their pixel size and metadata."""

    async def acquire(self, sample: Sample) -> list[Micrograph]: ...


@runtime_checkable
class Characterizer(Protocol):
    """Measures properties of a sample directly (tensile test, indentation, laser flash...)."""

    async def measure(self, sample: Sample) -> list[Measurement]: ...


@dataclass(frozen=True)
class Health:
    """An instrument's answer to a first-contact check: reachable and ready (``ok``), its ``state`` in its own
    words (idle, busy, homing, ...), and details for the operator (firmware, queue length, ...)."""

    ok: bool
    state: str
    detail: str = ""
    info: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Pingable(Protocol):
    """An instrument that can be contacted without making or measuring anything."""

    async def ping(self) -> Health: ...


@runtime_checkable
class WireDescriber(Protocol):
    """An instrument that can say what it would send for a request, without sending it (``--dry-run``).
    Secrets (tokens) must be redacted in what it returns."""

    def wire_request(self, request: SynthesisRequest) -> Mapping[str, Any]: ...
