"""The closed loop: one asyncio lane per parallel slot drives experiments through their lifecycle.

Each lane takes a proposal (asked jointly when several lanes are free, conditioned on pending ones),
commits each transition before its side effect, and survives instrument faults: transient ones are
retried with backoff under the same idempotency key, permanent ones fail the experiment, never the run.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from agent.errors import IllegalTransition
from agent.human import ApprovalError, Approver, AsyncApprover, InvalidEdit, ProposalInfo, edit_problems
from agent.lab import Lab
from agent.lifecycle import TERMINAL, ExperimentState
from agent.results import Scored, best, score, stale_for, target_reached
from agent.safety import request_problems
from agent.spec import CampaignSpec
from agent.store import Campaign, Experiment, ImageFile, MeasuredValue, Store
from agent.warmstart import WarmStartData
from imaging.base import ImageInput, ImagingError, ObjectReporter, OverlayRenderer
from imaging.io import load_image
from instruments.base import (
    InstrumentError,
    Micrograph,
    PermanentFault,
    RequestState,
    Sample,
    SynthesisRequest,
)
from instruments.safety import LimitViolation
from surrogate.base import Observation, Strategy

S = ExperimentState
T = TypeVar("T")


@dataclass
class Update:
    """A progress report for whoever watches the loop (the CLI's live table, a notebook)."""

    kind: str  # "proposed" | "completed" | "failed" | "stopping" | "vetoed" | "warm_start"
    experiment: Experiment | None = None
    values: dict[str, tuple[float, float]] = field(default_factory=dict)
    message: str = ""


@dataclass
class RunResult:
    status: str  # "completed" | "interrupted"
    stop_reason: str
    lab_time_s: float
    wall_time_s: float


Observer = Callable[[Update], None]


class Agent:
    """Runs one campaign against its lab, strategy and store. ``run`` also resumes an interrupted campaign."""

    def __init__(
        self,
        spec: CampaignSpec,
        store: Store,
        campaign: Campaign,
        lab: Lab,
        strategy: Strategy,
        *,
        observer: Observer | None = None,
        approver: Approver | None = None,
        prior: WarmStartData | None = None,
    ) -> None:
        self.spec, self.store, self.campaign, self.lab, self.strategy = spec, store, campaign, lab, strategy
        self.approver = approver
        self.prior = prior
        assert campaign.id is not None
        self.cid: int = campaign.id
        self.observer = observer or (lambda _u: None)
        self._ask_lock = asyncio.Lock()
        self._queue: list[Experiment] = []
        self._resumable: list[Experiment] = []
        self._pending: dict[int, Experiment] = {}
        self._scored: list[Scored] = []
        self._count = 0
        self._idle = 0
        self._stop_reason = ""
        self._t0 = 0.0
        self._lab_offset = campaign.lab_time_s
        self._wall0 = 0.0
        self._vetoed: list[dict[str, Any]] = []  # conditions people vetoed: pending for every later ask
        self._reviewed: set[int] = set()  # experiment ids a person has approved or edited
        self._known: set[int] = set()  # experiment ids this agent has accounted for
        self._halt = ""  # set when a person stops the campaign

    # --- clock -------------------------------------------------------------------------------------
    def lab_time(self) -> float:
        return self._lab_offset + (asyncio.get_running_loop().time() - self._t0)

    # --- main --------------------------------------------------------------------------------------
    async def run(self) -> RunResult:
        self._t0 = asyncio.get_running_loop().time()
        self._wall0 = time.monotonic()
        self._rebuild()
        self.store.set_campaign_status(self.cid, "running", lab_time_s=self._lab_offset)
        lanes = [asyncio.create_task(self._lane(i), name=f"lane-{i}") for i in range(self.spec.budget.lanes)]
        try:
            await asyncio.gather(*lanes)
        except (InvalidEdit, ApprovalError) as exc:
            for t in lanes:
                t.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)
            self.store.set_campaign_status(self.cid, "interrupted", reason=str(exc), lab_time_s=self.lab_time())
            raise
        except asyncio.CancelledError:
            for t in lanes:
                t.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)
            self.store.set_campaign_status(
                self.cid, "interrupted", reason="stopped by the user", lab_time_s=self.lab_time()
            )
            raise
        except BaseException:
            for t in lanes:
                t.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)
            self.store.set_campaign_status(
                self.cid, "failed", reason=traceback.format_exc(limit=3)[-2000:], lab_time_s=self.lab_time()
            )
            raise
        for exp in self._queue:  # proposed but never started once a stop rule fired
            self.store.transition(
                _id(exp), S.ABANDONED, lab_time_s=self.lab_time(), reason=f"campaign stopped: {self._stop_reason}"
            )
        self._queue.clear()
        reason = self._stop_reason or "budget spent"
        self.store.set_campaign_status(self.cid, "completed", reason=reason, lab_time_s=self.lab_time())
        return RunResult("completed", reason, self.lab_time(), time.monotonic() - self._wall0)

    def _rebuild(self) -> None:
        """Tells the strategy every finished experiment and queues unfinished ones, from the store alone."""
        if self.prior is not None:
            self._tell_prior(self.prior)
        exps = self.store.experiments(self.cid)
        measured = self.store.measurements(self.cid)
        if self.approver is not None:
            self._reviewed = {
                e.experiment_id
                for e in self.store.events(self.cid)
                if e.kind in ("approve", "edit") and e.experiment_id is not None
            }
        told: list[Observation] = []
        for exp in exps:
            self._known.add(_id(exp))
            state = S(exp.state)
            if state == S.ABANDONED:
                if exp.failure_code == "vetoed":
                    self._vetoed.append(dict(exp.conditions))
                continue
            self._count += 1
            if state == S.COMPLETED:
                values = {m.name: (m.value, m.sigma) for m in measured.get(_id(exp), [])}
                told.append(self._observation(exp, values))
                self._note_score(exp, values)
            elif state == S.FAILED:
                told.append(Observation(dict(exp.conditions), {}, failed=True, reason=exp.failure_reason))
            else:
                self._resumable.append(exp)
                self._pending[_id(exp)] = exp
        if told:
            self.strategy.tell(told)
        if self._resumable:
            self.store.log(
                self.cid, "resume", {"in_flight": [e.index for e in self._resumable]}, lab_time_s=self._lab_offset
            )

    def _tell_prior(self, prior: WarmStartData) -> None:
        """Tells the strategy the earlier campaign's data (again on every resume) and records that it did."""
        if prior.observations:
            self.strategy.tell(list(prior.observations))
        self.store.log(self.cid, "warm_start", prior.summary(), lab_time_s=self._lab_offset)
        self.observer(Update("warm_start", message=prior.describe()))

    async def _lane(self, lane: int) -> None:
        while True:
            exp: Experiment | None
            if self._resumable:
                exp = self._resumable.pop(0)
                if self.approver is not None and exp.state == S.PROPOSED and _id(exp) not in self._reviewed:
                    async with self._ask_lock:  # a proposal recorded before the last stop, never reviewed
                        exp = await self._review(exp)
                    if exp is None:
                        continue
            else:
                exp = await self._next()
            if exp is None:
                return
            await self._drive(exp)

    # --- proposals ---------------------------------------------------------------------------------
    def _stop_rule(self) -> str:
        if self._halt:
            return self._halt
        b = self.spec.budget
        if self._count >= b.experiments:
            return f"experiment budget of {b.experiments} reached"
        if b.lab_time_h is not None and self.lab_time() >= b.lab_time_h * 3600:
            return f"lab-time budget of {b.lab_time_h:g} h reached"
        if b.wall_time_s is not None and time.monotonic() - self._wall0 >= b.wall_time_s:
            return f"wall-time budget of {b.wall_time_s:g} s reached"
        if self.spec.stopping.target and any(target_reached(self.spec, s) for s in self._scored):
            return "target reached"
        rule = self.spec.stopping.no_improvement
        if rule and len(self._scored) >= rule.experiments and stale_for(self.spec, self._scored) >= rule.experiments:
            return f"no improvement in {rule.experiments} experiments"
        return ""

    async def _next(self) -> Experiment | None:
        self._idle += 1
        await asyncio.sleep(0)  # let other lanes that are free at this instant join one joint ask
        try:
            async with self._ask_lock:
                while True:
                    self._adopt_manual()
                    reason = self._halt or ("" if self._queue else self._stop_rule())
                    if reason:
                        if not self._stop_reason:
                            self._stop_reason = reason
                            self.store.log(self.cid, "stop", {"reason": reason}, lab_time_s=self.lab_time())
                            self.observer(Update("stopping", message=reason))
                        return None
                    if not self._queue:
                        n = max(1, min(self._idle, self.spec.budget.experiments - self._count))
                        self._propose(n)
                    if not self._queue:
                        return None
                    exp: Experiment | None = self._queue.pop(0)
                    if self.approver is not None:
                        assert exp is not None
                        exp = await self._review(exp)
                    if exp is not None:
                        return exp
        finally:
            self._idle -= 1

    # --- people ------------------------------------------------------------------------------------
    async def _review(self, exp: Experiment) -> Experiment | None:
        """Asks the approver about a recorded proposal: the experiment to submit (edited or not), or None
        when it was vetoed (the budget gets the experiment back) or the campaign was stopped."""
        assert self.approver is not None
        eid = _id(exp)
        ms = exp.model_state or {}
        info = ProposalInfo(
            index=exp.index,
            conditions=dict(exp.conditions),
            generator=exp.generator,
            predictions={k: (float(v[0]), float(v[1])) for k, v in (ms.get("predictions") or {}).items()},
            acquisition_value=ms.get("acquisition_value"),
            model_state=dict(ms),
        )
        if isinstance(self.approver, AsyncApprover):  # waits without blocking the lanes that are running
            d = await self.approver.areview(info)
        else:  # called in the loop's thread: other lanes wait while a person decides (on the virtual clock too)
            d = self.approver.review(info)
        t = self.lab_time()
        if d.kind == "approve":
            self.store.log(self.cid, "approve", {"note": d.note}, experiment_id=eid, lab_time_s=t, actor=d.who)
            self._reviewed.add(eid)
            return exp
        if d.kind == "edit":
            assert d.conditions is not None
            problems = edit_problems(self.spec.space, d.conditions) or request_problems(self.lab, d.conditions)
            if problems:
                raise InvalidEdit(
                    f"experiment {exp.index}: the edit by {d.who} lies outside the space: {'; '.join(problems)}"
                )
            exp = self.store.edit_conditions(eid, dict(d.conditions), who=d.who, note=d.note, lab_time_s=t)
            self._pending[eid] = exp
            self._reviewed.add(eid)
            return exp
        why = d.note or ("vetoed" if d.kind == "veto" else "campaign stopped")
        code = "vetoed" if d.kind == "veto" else "stopped"
        exp = self.store.transition(
            eid,
            S.ABANDONED,
            lab_time_s=t,
            actor=d.who,
            failure_code=code,
            reason=why,
            payload={"decision": d.kind},
        )
        self._pending.pop(eid, None)
        self._count -= 1  # a proposal nobody ran does not spend the budget
        if d.kind == "veto":
            self._vetoed.append(dict(exp.conditions))
            self.observer(Update("vetoed", exp, message=f"vetoed by {d.who}: {why}"))
        else:
            self._halt = f"stopped by {d.who}" + (f": {d.note}" if d.note else "")
        return None

    def _adopt_manual(self) -> None:
        """Learns from experiments a person entered by hand (``Campaign.add_experiment``) while this run goes on."""
        for exp in self.store.experiments(self.cid):
            eid = _id(exp)
            if eid in self._known:
                continue
            self._known.add(eid)
            if S(exp.state) in (S.COMPLETED, S.FAILED):
                self._count += 1
                self._adopt(exp)

    def _adopt(self, exp: Experiment) -> None:
        """Accounts for an experiment that a person finished (result entered by hand) while the agent had it."""
        eid = _id(exp)
        self._pending.pop(eid, None)
        state = S(exp.state)
        if state == S.COMPLETED:
            values = {m.name: (m.value, m.sigma) for m in self.store.measurements_of(eid)}
            self.strategy.tell([self._observation(exp, values)])
            self._note_score(exp, values)
            self.observer(Update("completed", exp, values, message="entered by hand"))
        elif state == S.FAILED:
            self.strategy.tell([Observation(dict(exp.conditions), {}, failed=True, reason=exp.failure_reason)])
            self.observer(Update("failed", exp, message=f"{exp.failure_code}: {exp.failure_reason}"))
        else:
            self._count -= 1

    def _propose(self, n: int) -> None:
        pending = [dict(e.conditions) for e in self._pending.values()] + [dict(c) for c in self._vetoed]
        proposals = self.strategy.ask(n, pending)
        for p in proposals[:n]:
            problems = self.spec.space.check(p.conditions)
            if problems:
                raise PermanentFault(f"strategy proposed conditions outside the space: {problems}", code="bad_proposal")
            prefix = f"{self.spec.name}-{self.campaign.spec_hash[:10]}"
            state = {
                "predictions": {k: list(v) for k, v in p.predictions.items()},
                "acquisition_value": p.acquisition_value,
                **p.model_state,
            }
            exp = self.store.propose(
                self.cid,
                prefix,
                dict(p.conditions),
                generator=p.generator,
                model_state=state,
                lab_time_s=self.lab_time(),
            )
            self._count += 1
            self._known.add(_id(exp))
            self._queue.append(exp)
            self._pending[_id(exp)] = exp
            self.observer(Update("proposed", exp))

    # --- one experiment ----------------------------------------------------------------------------
    async def _drive(self, exp: Experiment) -> None:
        try:
            await self._advance(exp)
        except IllegalTransition:
            fresh = self.store.experiment(self.cid, exp.index)
            if fresh is None or S(fresh.state) not in TERMINAL:
                raise
            self._adopt(fresh)  # a person entered its result meanwhile

    async def _advance(self, exp: Experiment) -> None:
        eid = _id(exp)
        state = S(exp.state)
        try:
            sample: Sample | None = None
            if state == S.PROPOSED:
                unsafe = request_problems(self.lab, exp.conditions)
                if unsafe:  # never sent: the driver's hard limits are absolute
                    raise LimitViolation("the agent refused to send it: " + "; ".join(unsafe))
                exp = self.store.transition(eid, S.SUBMITTED, lab_time_s=self.lab_time(), payload={"key": exp.key})
                state = S.SUBMITTED
                sample = await self._synthesize(exp, reconcile=False)
            elif state == S.SUBMITTED:
                sample = await self._synthesize(exp, reconcile=True)
            if state == S.SUBMITTED:
                assert sample is not None
                exp = self.store.record_sample(
                    eid,
                    sample_id=sample.sample_id,
                    duration_s=sample.duration_s,
                    attributes=_jsonable(dict(sample.attributes)),
                    truth=_jsonable(dict(sample.truth)) if sample.truth is not None else None,
                    lab_time_s=self.lab_time(),
                )
                state = S.SYNTHESIZED
            if sample is None and state in (S.SYNTHESIZED, S.IMAGED):
                sample = self._stored_sample(exp)
            if state == S.SYNTHESIZED and self.lab.imager is not None:
                imager = self.lab.imager
                micrographs = await self._with_retries(exp, "imaging", lambda: imager.acquire(sample))  # type: ignore[arg-type]
                images = [
                    ImageFile(m.path, _pixel_size(m), dict(m.metadata), _jsonable(m.truth)) for m in micrographs
                ]
                exp = self.store.record_micrographs(eid, images, lab_time_s=self.lab_time())
                state = S.IMAGED
            if state in (S.SYNTHESIZED, S.IMAGED):
                assert sample is not None
                with tempfile.TemporaryDirectory(prefix="matloop-overlay-") as tmp:
                    values, artifacts = await self._measure(exp, sample, Path(tmp))
                    exp = self.store.record_measurements(eid, values, lab_time_s=self.lab_time(), artifacts=artifacts)
                state = S.ANALYZED
            if state == S.ANALYZED:
                self._complete(exp)
        except PermanentFault as fault:
            self._fail(exp, fault.code, fault.reason)

    async def _synthesize(self, exp: Experiment, *, reconcile: bool) -> Sample:
        synth = self.lab.synthesizer
        request = SynthesisRequest(key=exp.key, conditions=dict(exp.conditions), campaign=self.spec.name)
        if reconcile:
            status = await self._with_retries(exp, "status", lambda: synth.status(exp.key))
            self.store.log(
                self.cid,
                "reconcile",
                {"key": exp.key, "instrument_state": str(status.state)},
                experiment_id=_id(exp),
                lab_time_s=self.lab_time(),
            )
            if status.state == RequestState.DONE and status.sample is not None:
                return status.sample
            if status.state == RequestState.FAILED:
                raise PermanentFault(status.reason or "the instrument reports the request failed", code="failed")
            # UNKNOWN: never received, send it now; RUNNING: the same key returns the sample being made.
        return await self._with_retries(exp, "synthesis", lambda: synth.synthesize(request))

    async def _measure(
        self, exp: Experiment, sample: Sample, scratch: Path
    ) -> tuple[list[MeasuredValue], list[tuple[str, Path]]]:
        """Measurements from the images and the characterizer, and artifacts as (kind, path): overlay PNGs when the
        analyzer draws them, the objects CSV when it lists objects."""
        values: list[MeasuredValue] = []
        artifacts: list[tuple[str, Path]] = []
        analyzer = self.lab.analyzer
        if analyzer is not None:
            inputs = [
                ImageInput(self.store.file_path(m), m.pixel_size_um, dict(m.meta))
                for m in self.store.micrographs(_id(exp))
            ]
            try:
                features = analyzer.analyze(inputs)
            except ImagingError as exc:
                raise PermanentFault(f"image analysis failed: {exc}", code="image_analysis") from exc
            values += [
                MeasuredValue(f.name, float(f.value), float(f.sigma), f.unit, f"imaging:{f.method}", analyzer.version)
                for f in features
            ]
            if self.lab.overlays and isinstance(analyzer, OverlayRenderer):
                try:
                    artifacts += [("overlay", p) for p in analyzer.render_overlays(features, scratch)]
                except (ImagingError, ValueError, OSError) as exc:  # a picture must not fail the experiment
                    self.store.log(self.cid, "overlay_failed", {"error": str(exc)}, experiment_id=_id(exp))
            if isinstance(analyzer, ObjectReporter):
                try:
                    artifacts += [("objects", p) for p in analyzer.write_objects(scratch)]
                except (ImagingError, ValueError, OSError) as exc:  # nor a table of objects
                    self.store.log(self.cid, "objects_failed", {"error": str(exc)}, experiment_id=_id(exp))
        characterizer = self.lab.characterizer
        if characterizer is not None:
            ms = await self._with_retries(exp, "characterization", lambda: characterizer.measure(sample))
            values += [MeasuredValue(m.name, float(m.value), float(m.sigma), m.unit, m.source) for m in ms]
        got = {v.name for v in values}
        missing = [n for n in self.spec_metric_names() if n not in got]
        if missing:
            raise PermanentFault(f"no measurement of {', '.join(missing)} for this sample", code="missing_measurement")
        return values, artifacts

    def spec_metric_names(self) -> list[str]:
        names = [o.name for o in self.spec.objectives]
        return names + [c.name for c in self.spec.outcome_constraints if c.name not in names]

    async def _with_retries(self, exp: Experiment, what: str, call: Callable[[], Awaitable[T]]) -> T:
        policy = self.spec.retries
        delay = policy.backoff_s
        attempt = 1
        while True:
            try:
                return await call()
            except PermanentFault:
                raise
            except InstrumentError as fault:
                if not fault.transient:
                    raise PermanentFault(fault.reason, code=fault.code) from fault
                if attempt >= policy.max_attempts:
                    raise PermanentFault(
                        f"{what} gave up after {attempt} attempts: {fault.reason}", code="retries_exhausted"
                    ) from fault
                attempt += 1
                self.store.bump_attempt(
                    _id(exp), reason=f"{what}: {fault.reason}", code=fault.code, lab_time_s=self.lab_time()
                )
                await asyncio.sleep(delay)
                delay *= policy.backoff_factor
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception as exc:  # a driver bug must not end the campaign; it fails this experiment
                raise PermanentFault(f"{what} raised {type(exc).__name__}: {exc}", code="instrument_error") from exc

    def _stored_sample(self, exp: Experiment) -> Sample:
        row = self.store.sample(_id(exp))
        if row is None:
            raise PermanentFault("the store has no sample row for a synthesized experiment", code="store_inconsistent")
        return Sample(row.sample_id, exp.key, dict(exp.conditions), row.duration_s, dict(row.attributes), row.truth)

    def _complete(self, exp: Experiment) -> None:
        eid = _id(exp)
        values = {m.name: (m.value, m.sigma) for m in self.store.measurements_of(eid)}
        self.strategy.tell([self._observation(exp, values)])
        exp = self.store.transition(eid, S.COMPLETED, lab_time_s=self.lab_time())
        self._pending.pop(eid, None)
        self._note_score(exp, values)
        self.observer(Update("completed", exp, values))

    def _fail(self, exp: Experiment, code: str, reason: str) -> None:
        eid = _id(exp)
        exp = self.store.transition(eid, S.FAILED, lab_time_s=self.lab_time(), failure_code=code, reason=reason)
        self._pending.pop(eid, None)
        self.strategy.tell([Observation(dict(exp.conditions), {}, failed=True, reason=reason)])
        self.observer(Update("failed", exp, message=f"{code}: {reason}"))

    def _observation(self, exp: Experiment, values: dict[str, tuple[float, float]]) -> Observation:
        wanted = set(self.spec_metric_names())
        sample = self.store.sample(_id(exp))
        duration = sample.duration_s if sample is not None else None
        return Observation(dict(exp.conditions), {k: v for k, v in values.items() if k in wanted}, duration_s=duration)

    def _note_score(self, exp: Experiment, values: dict[str, tuple[float, float]]) -> None:
        s = score(self.spec, exp.index, values)
        if s is not None:
            self._scored.append(s)

    def best(self) -> list[Scored]:
        return best(self.spec, self._scored)


def _id(exp: Experiment) -> int:
    assert exp.id is not None
    return exp.id


def _pixel_size(m: Micrograph) -> float:
    """The micrograph's pixel size: the instrument's, else the file's own metadata (a permanent fault if neither)."""
    if m.pixel_size_um is not None:
        return m.pixel_size_um
    try:
        loaded = load_image(m.path)
    except ImagingError as exc:
        raise PermanentFault(f"micrograph {m.path}: {exc}", code="bad_micrograph") from exc
    assert not isinstance(loaded, list)
    return loaded.pixel_size_um


def _jsonable(obj: Any) -> Any:
    """Plain JSON types for the store (numpy scalars and arrays, paths, tuples)."""
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


__all__ = ["Agent", "Micrograph", "RunResult", "Update"]
