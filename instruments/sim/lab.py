"""``SimFurnace``: a simulated synthesizer that makes samples of a material system, idempotently and fallibly.

Processing time (ramp, soak, cooling, handling) passes with ``asyncio.sleep``. Every key it accepts is
journaled first (``sim_furnace_journal.jsonl`` in the workdir), so a repeated key returns the same sample and
a restarted agent can ask what became of a request. Samples and their failures are deterministic given the
campaign seed, the key and the conditions.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from instruments.base import (
    Health,
    PermanentFault,
    RequestState,
    RequestStatus,
    Sample,
    SynthesisRequest,
    TransientFault,
)
from instruments.registry import InstrumentContext
from instruments.safety import HardLimit, HardLimits
from instruments.sim.faults import FaultModel
from instruments.sim.journal import DONE, FAILED, RECEIVED, Entry, Journal
from instruments.sim.seeding import rng_for, short_hash
from instruments.sim.systems import SYSTEMS, MaterialSystem, condition_problems, get_system

JOURNAL_NAME = "sim_furnace_journal.jsonl"


class FurnaceOptions(BaseModel):
    """Options of ``sim-furnace`` as written in a campaign."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    system: str = Field(default="two_phase_alloy", description=f"material system: one of {', '.join(SYSTEMS)}")
    faults: FaultModel = FaultModel()
    handling_time_h: float = Field(default=0.25, ge=0, description="loading, unloading and labelling per sample")
    hard_limits: HardLimits | None = Field(
        default=None, description="the furnace's hard limits; default: the material system's input ranges"
    )

    @field_validator("system")
    @classmethod
    def _known(cls, name: str) -> str:
        get_system(name)
        return name


class SimFurnace:
    """Synthesizer protocol over a simulated material system (``system`` option)."""

    simulated: ClassVar[bool] = True

    def __init__(self, *, context: InstrumentContext, **options: Any) -> None:
        self.options = FurnaceOptions(**options)
        self.context = context
        self.system: MaterialSystem = get_system(self.options.system)
        context.workdir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(context.workdir / JOURNAL_NAME)
        self._inflight: dict[str, asyncio.Future[Sample]] = {}
        self._attempts: dict[str, int] = {}

    # --- what a campaign can check without building one -------------------------------------------
    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> None:
        FurnaceOptions.model_validate(dict(options))

    @classmethod
    def inputs(cls, options: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Inputs the furnace takes: ``{name: {unit, low, high, log_scale}}`` or ``{name: {choices}}``."""
        system = get_system(FurnaceOptions.model_validate(dict(options)).system)
        return {s.name: s.describe() for s in system.inputs}

    @classmethod
    def outputs(cls, options: Mapping[str, Any]) -> dict[str, str]:
        """A furnace measures nothing."""
        cls.validate_options(options)
        return {}

    def hard_limits(self) -> HardLimits:
        """What this furnace must never be asked: the option if given, else the system's input ranges."""
        if self.options.hard_limits is not None:
            return self.options.hard_limits
        limits = {
            s.name: (
                HardLimit(choices=tuple(s.choices)) if s.categorical else HardLimit(low=s.low, high=s.high, unit=s.unit)
            )
            for s in self.system.inputs
        }
        return HardLimits(limits=limits)

    # --- Synthesizer protocol ----------------------------------------------------------------------
    async def synthesize(self, request: SynthesisRequest) -> Sample:
        key = request.key
        self.hard_limits().enforce(request.conditions, who="sim-furnace")
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        self._check_down()
        attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
        chance = rng_for(self.context.seed, key, "attempt", attempt)
        if chance.random() < self.options.faults.transient_fault_probability:
            raise TransientFault("furnace busy: the request was not accepted", code="busy")
        entry = self.journal.get(key)
        if entry is not None:
            return self._answer(entry)
        conditions = self._plain(request.conditions)
        problems = condition_problems(self.system.inputs, conditions)
        if problems:
            reason = f"invalid conditions for {self.system.name}: " + "; ".join(problems)
            self.journal.append(key, FAILED, code="invalid_conditions", reason=reason)
            raise PermanentFault(reason, code="invalid_conditions")
        started = self._now()
        self.journal.append(key, RECEIVED, conditions=conditions, started_s=started, campaign=request.campaign)
        task = asyncio.ensure_future(self._run(key, conditions, started, request.campaign))
        self._inflight[key] = task
        task.add_done_callback(lambda t: self._settled(key, t))
        sample = await asyncio.shield(task)
        if chance.random() < self.options.faults.timeout_probability:
            raise TransientFault("no reply from the furnace within the timeout", code="timeout")
        return sample

    async def ping(self) -> Health:
        """Reachable always; not ready while down for maintenance."""
        window = self.options.faults.down_at(self._now() / 3600.0)
        info = {"system": self.system.name, "running": len(self._inflight), "journaled": len(self.journal)}
        if window is not None:
            return Health(False, "maintenance", f"down from {window[0]:g} h to {window[1]:g} h of lab time", info)
        return Health(True, "busy" if self._inflight else "idle", "", info)

    async def status(self, key: str) -> RequestStatus:
        if key in self._inflight:
            return RequestStatus(key, RequestState.RUNNING)
        entry = self.journal.get(key)
        if entry is None:
            return RequestStatus(key, RequestState.UNKNOWN)
        try:
            sample = self._answer(entry)
        except PermanentFault as fault:
            return RequestStatus(key, RequestState.FAILED, reason=fault.reason)
        return RequestStatus(key, RequestState.DONE, sample=sample)

    # --- internals ---------------------------------------------------------------------------------
    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _plain(self, conditions: Mapping[str, Any]) -> dict[str, Any]:
        """Conditions as plain JSON values, numbers as float, so that 900, 900.0 and np.float32(900) are one
        request and hash alike."""
        numeric = {s.name for s in self.system.inputs if not s.categorical}
        out: dict[str, Any] = {}
        for k, v in conditions.items():
            v = v.item() if hasattr(v, "item") else v
            if k in numeric and isinstance(v, (int, float)) and not isinstance(v, bool):
                v = float(v)
            out[k] = v
        return out

    def _settled(self, key: str, task: asyncio.Future[Sample]) -> None:
        """Forgets a finished run (its outcome is in the journal), even if no one awaited it."""
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: the journal holds the failure

    def _check_down(self) -> None:
        window = self.options.faults.down_at(self._now() / 3600.0)
        if window is not None:
            raise TransientFault(
                f"furnace down for maintenance from {window[0]:g} h to {window[1]:g} h of lab time", code="down"
            )

    def duration_s(self, conditions: Mapping[str, Any]) -> float:
        """Ramp, soak and cooling of the system's schedule plus handling."""
        return self.system.process_time_s(conditions) + self.options.handling_time_h * 3600.0

    async def _run(self, key: str, conditions: dict[str, Any], started: float, campaign: str) -> Sample:
        await asyncio.sleep(self.duration_s(conditions))
        return self._finish(key, conditions, started, campaign)

    def _answer(self, entry: Entry) -> Sample:
        """The journaled outcome of a key; a key received but never finished is finished now (the lab kept
        working while the agent was down)."""
        if entry.event == DONE:
            return _sample_from(entry.data["sample"])
        if entry.event == FAILED:
            raise PermanentFault(entry.data.get("reason", "failed"), code=entry.data.get("code", "failed"))
        assert entry.event == RECEIVED
        data = entry.data
        return self._finish(entry.key, data["conditions"], float(data.get("started_s", 0.0)), data.get("campaign", ""))

    def _finish(self, key: str, conditions: dict[str, Any], started: float, campaign: str) -> Sample:
        """Computes the sample of ``key`` (deterministic), journals it, and returns it or raises its failure."""
        seed = self.context.seed
        cond_json = json.dumps(conditions, sort_keys=True, default=str)
        faults = self.options.faults
        luck = rng_for(seed, key, cond_json, "furnace-faults")
        if luck.random() < faults.failure_probability:
            self._fail(key, "furnace_failure", "thermocouple failure: the run was aborted and the sample ruined")
        if luck.random() < faults.lost_sample_probability:
            self._fail(key, "lost", "the sample was lost between furnace and storage")
        outcome = self.system.outcome(conditions, rng_for(seed, key, cond_json, "sample"))
        if outcome.failure is not None:
            self._fail(key, outcome.failure.code, outcome.failure.reason)
        duration = self.duration_s(conditions)
        sample = Sample(
            sample_id=f"{self.system.name}-{short_hash(seed, key, cond_json)}",
            key=key,
            conditions=conditions,
            duration_s=duration,
            attributes={
                "system": self.system.name,
                "instrument": "sim-furnace",
                "campaign": campaign,
                "started_lab_time_s": started,
                "finished_lab_time_s": started + duration,
            },
            truth=outcome.truth,
        )
        self.journal.append(key, DONE, sample=_sample_to(sample))
        return sample

    def _fail(self, key: str, code: str, reason: str) -> None:
        self.journal.append(key, FAILED, code=code, reason=reason)
        raise PermanentFault(reason, code=code)


def _sample_to(sample: Sample) -> dict[str, Any]:
    return {
        "sample_id": sample.sample_id,
        "key": sample.key,
        "conditions": dict(sample.conditions),
        "duration_s": sample.duration_s,
        "attributes": dict(sample.attributes),
        "truth": dict(sample.truth) if sample.truth is not None else None,
    }


def _sample_from(data: Mapping[str, Any]) -> Sample:
    return Sample(
        sample_id=data["sample_id"],
        key=data["key"],
        conditions=dict(data["conditions"]),
        duration_s=float(data["duration_s"]),
        attributes=dict(data["attributes"]),
        truth=dict(data["truth"]) if data.get("truth") is not None else None,
    )
