"""The campaign store: every transition and its event row are committed in one transaction, before the side
effect they announce, so a killed agent resumes without losing or repeating an experiment."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from agent.errors import StoreError
from agent.lifecycle import ExperimentState, check_manual_result, check_transition
from agent.store.engine import make_engine, migrate
from agent.store.models import Artifact, Campaign, Event, Experiment, Measurement, Micrograph, Sample, utcnow


@dataclass(frozen=True)
class MeasuredValue:
    name: str
    value: float
    sigma: float
    unit: str
    source: str = ""
    model_version: str = ""


@dataclass(frozen=True)
class ImageFile:
    path: Path
    pixel_size_um: float
    metadata: dict[str, Any]
    truth: dict[str, Any] | None = None


class Store:
    """SQLModel store for campaigns. Image files are kept under ``files_dir`` addressed by SHA-256."""

    def __init__(self, url: str, files_dir: Path, *, sqlite_synchronous: str = "normal") -> None:
        self.url = url
        self.files_dir = Path(files_dir)
        self.engine: Engine = make_engine(url, sqlite_synchronous=sqlite_synchronous)
        migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # --- campaigns -------------------------------------------------------------------------------
    def create_campaign(self, name: str, spec_yaml: str, spec_hash: str, seed: int, source_path: str) -> Campaign:
        row = Campaign(name=name, spec_yaml=spec_yaml, spec_hash=spec_hash, seed=seed, source_path=source_path)
        with self._session() as s:
            s.add(row)
            try:
                s.flush()
            except IntegrityError:
                raise StoreError(f"a campaign named {name!r} already exists in {self._where()}") from None
            assert row.id is not None
            s.add(Event(campaign_id=row.id, kind="campaign_created", payload={"spec_hash": spec_hash, "seed": seed}))
            s.commit()
        return row

    def campaign(self, name: str) -> Campaign | None:
        with self._session() as s:
            return s.exec(select(Campaign).where(Campaign.name == name)).first()

    def campaigns(self) -> list[Campaign]:
        with self._session() as s:
            return list(s.exec(select(Campaign).order_by(col(Campaign.id))))

    def set_campaign_status(
        self, campaign_id: int, status: str, *, reason: str = "", lab_time_s: float | None = None
    ) -> None:
        with self._session() as s:
            row = s.get(Campaign, campaign_id)
            if row is None:
                raise StoreError(f"campaign id {campaign_id} is not in {self._where()}")
            old = row.status
            row.status, row.stop_reason, row.updated_at = status, reason, utcnow()
            if lab_time_s is not None:
                row.lab_time_s = lab_time_s
            s.add(row)
            s.add(
                Event(
                    campaign_id=campaign_id,
                    kind="campaign_status",
                    from_state=old,
                    to_state=status,
                    lab_time_s=row.lab_time_s,
                    payload={"reason": reason} if reason else {},
                )
            )
            s.commit()

    # --- experiments -----------------------------------------------------------------------------
    def propose(
        self,
        campaign_id: int,
        key_prefix: str,
        conditions: dict[str, Any],
        *,
        generator: str,
        model_state: dict[str, Any],
        lab_time_s: float,
    ) -> Experiment:
        """Records a proposal as a new experiment (state ``proposed``) with the next index; its idempotency key
        is ``<key_prefix>-<index>``, so a resumed campaign never reuses one."""
        with self._session() as s:
            last = s.exec(select(func.max(Experiment.index)).where(Experiment.campaign_id == campaign_id)).one()
            index = (last or 0) + 1
            exp = Experiment(
                campaign_id=campaign_id,
                index=index,
                key=f"{key_prefix}-{index:05d}",
                conditions=conditions,
                generator=generator,
                model_state=model_state,
                lab_time_start_s=lab_time_s,
            )
            s.add(exp)
            s.flush()
            assert exp.id is not None
            s.add(
                Event(
                    campaign_id=campaign_id,
                    experiment_id=exp.id,
                    kind="transition",
                    to_state=ExperimentState.PROPOSED,
                    lab_time_s=lab_time_s,
                    payload={"conditions": conditions, "generator": generator},
                )
            )
            s.commit()
            return exp

    def transition(
        self,
        experiment_id: int,
        new_state: ExperimentState,
        *,
        lab_time_s: float,
        payload: dict[str, Any] | None = None,
        actor: str = "agent",
        failure_code: str = "",
        reason: str = "",
        _extra: Iterable[Any] = (),
    ) -> Experiment:
        """Moves an experiment to ``new_state`` (guarded) and appends its event, in one transaction."""
        with self._session() as s:
            stmt = select(Experiment).where(Experiment.id == experiment_id)
            if self.engine.dialect.name == "postgresql":
                stmt = stmt.with_for_update()
            exp = s.exec(stmt).first()
            if exp is None:
                raise StoreError(f"experiment id {experiment_id} is not in {self._where()}")
            old = exp.state
            exp.state = check_transition(old, new_state)
            exp.updated_at = utcnow()
            if new_state == ExperimentState.FAILED:
                exp.failure_code, exp.failure_reason = failure_code or "failed", reason
            elif new_state == ExperimentState.ABANDONED and failure_code:  # e.g. vetoed by a person
                exp.failure_code, exp.failure_reason = failure_code, reason
            if new_state in (ExperimentState.COMPLETED, ExperimentState.FAILED, ExperimentState.ABANDONED):
                exp.lab_time_end_s = lab_time_s
            s.add(exp)
            for row in _extra:
                s.add(row)
            body = dict(payload or {})
            if reason:
                body["reason"] = reason
            if failure_code:
                body["code"] = failure_code
            s.add(_transition_event(exp, old, new_state, actor, lab_time_s, body))
            s.commit()
            return exp

    def record_sample(
        self,
        experiment_id: int,
        *,
        sample_id: str,
        duration_s: float,
        attributes: dict[str, Any],
        truth: dict[str, Any] | None,
        lab_time_s: float,
    ) -> Experiment:
        row = Sample(
            experiment_id=experiment_id, sample_id=sample_id, duration_s=duration_s, attributes=attributes, truth=truth
        )
        return self.transition(
            experiment_id,
            ExperimentState.SYNTHESIZED,
            lab_time_s=lab_time_s,
            payload={"sample_id": sample_id},
            _extra=[row],
        )

    def record_micrographs(self, experiment_id: int, images: Sequence[ImageFile], *, lab_time_s: float) -> Experiment:
        """Copies each image into the content-addressed file area, then records rows and the transition."""
        rows = []
        for img in images:
            sha, rel = self._archive(img.path)
            rows.append(
                Micrograph(
                    experiment_id=experiment_id,
                    sha256=sha,
                    path=rel,
                    pixel_size_um=img.pixel_size_um,
                    meta=dict(img.metadata),
                    truth=img.truth,
                )
            )
        return self.transition(
            experiment_id,
            ExperimentState.IMAGED,
            lab_time_s=lab_time_s,
            payload={"micrographs": [r.sha256 for r in rows]},
            _extra=rows,
        )

    def record_measurements(
        self,
        experiment_id: int,
        values: Sequence[MeasuredValue],
        *,
        lab_time_s: float,
        actor: str = "agent",
        artifacts: Sequence[tuple[str, Path]] = (),
    ) -> Experiment:
        """Records measurements (and derived files such as overlays, by ``(kind, path)``) with the transition."""
        extra: list[Any] = []
        for kind, path in artifacts:
            sha, rel = self._archive(path)
            extra.append(
                Artifact(experiment_id=experiment_id, kind=kind, sha256=sha, path=rel, meta={"name": path.name})
            )
        rows = [
            Measurement(
                experiment_id=experiment_id,
                name=v.name,
                value=v.value,
                sigma=v.sigma,
                unit=v.unit,
                source=v.source,
                model_version=v.model_version,
            )
            for v in values
        ]
        return self.transition(
            experiment_id,
            ExperimentState.ANALYZED,
            lab_time_s=lab_time_s,
            actor=actor,
            payload={"measurements": {v.name: [v.value, v.sigma, v.unit] for v in values}},
            _extra=[*rows, *extra],
        )

    # --- people ----------------------------------------------------------------------------------
    def edit_conditions(
        self, experiment_id: int, conditions: dict[str, Any], *, who: str, note: str = "", lab_time_s: float
    ) -> Experiment:
        """Replaces a proposal's conditions before it is submitted; the event keeps the original ones."""
        with self._session() as s:
            exp = s.get(Experiment, experiment_id)
            if exp is None:
                raise StoreError(f"experiment id {experiment_id} is not in {self._where()}")
            if exp.state != ExperimentState.PROPOSED:
                raise StoreError(f"experiment {exp.index} is {exp.state}: only a proposed experiment can be edited")
            original = dict(exp.conditions)
            exp.conditions = dict(conditions)
            exp.updated_at = utcnow()
            s.add(exp)
            s.add(
                Event(
                    campaign_id=exp.campaign_id,
                    experiment_id=exp.id,
                    kind="edit",
                    actor=who,
                    lab_time_s=lab_time_s,
                    payload={"original": original, "edited": dict(conditions), "note": note},
                )
            )
            s.commit()
            return exp

    def enter_result(
        self,
        experiment_id: int,
        values: Sequence[MeasuredValue] = (),
        *,
        failed: str | None = None,
        who: str,
        note: str = "",
        lab_time_s: float,
    ) -> Experiment:
        """A result entered by a person for a waiting experiment: its measurements and the move to
        ``completed`` (or ``failed`` with reason ``failed``), in one transaction, with who entered it."""
        with self._session() as s:
            stmt = select(Experiment).where(Experiment.id == experiment_id)
            if self.engine.dialect.name == "postgresql":
                stmt = stmt.with_for_update()
            exp = s.exec(stmt).first()
            if exp is None:
                raise StoreError(f"experiment id {experiment_id} is not in {self._where()}")
            old = check_manual_result(exp.state)
            self._finish_by_hand(s, exp, old, values, failed, who, note, lab_time_s)
            s.commit()
            return exp

    def add_manual_experiment(
        self,
        campaign_id: int,
        key_prefix: str,
        conditions: dict[str, Any],
        values: Sequence[MeasuredValue] = (),
        *,
        failed: str | None = None,
        who: str,
        note: str = "",
        lab_time_s: float,
    ) -> Experiment:
        """An experiment done by hand (conditions and results together), recorded as finished with the next
        index and generator ``manual``: the strategy learns from it like from any other."""
        with self._session() as s:
            last = s.exec(select(func.max(Experiment.index)).where(Experiment.campaign_id == campaign_id)).one()
            index = (last or 0) + 1
            exp = Experiment(
                campaign_id=campaign_id,
                index=index,
                key=f"{key_prefix}-{index:05d}",
                conditions=conditions,
                generator="manual",
                model_state={},
                lab_time_start_s=lab_time_s,
            )
            s.add(exp)
            s.flush()
            s.add(
                Event(
                    campaign_id=campaign_id,
                    experiment_id=exp.id,
                    kind="transition",
                    to_state=ExperimentState.PROPOSED,
                    actor=who,
                    lab_time_s=lab_time_s,
                    payload={"conditions": conditions, "generator": "manual", "note": note},
                )
            )
            self._finish_by_hand(s, exp, ExperimentState.PROPOSED, values, failed, who, note, lab_time_s)
            try:
                s.commit()
            except IntegrityError:
                raise StoreError(f"experiment index {index} was taken meanwhile; enter the experiment again") from None
            return exp

    def _finish_by_hand(
        self,
        s: Session,
        exp: Experiment,
        old: ExperimentState,
        values: Sequence[MeasuredValue],
        failed: str | None,
        who: str,
        note: str,
        lab_time_s: float,
    ) -> None:
        assert exp.id is not None
        new = ExperimentState.FAILED if failed is not None else ExperimentState.COMPLETED
        exp.state = new
        exp.updated_at = utcnow()
        exp.lab_time_end_s = lab_time_s
        body: dict[str, Any] = {"manual": True, "note": note}
        if failed is not None:
            exp.failure_code, exp.failure_reason = "manual", failed
            body.update(reason=failed, code="manual")
        else:
            for v in values:
                s.add(
                    Measurement(
                        experiment_id=exp.id,
                        name=v.name,
                        value=v.value,
                        sigma=v.sigma,
                        unit=v.unit,
                        source=v.source or f"manual:{who}"[:100],
                        model_version=v.model_version,
                    )
                )
            body["measurements"] = {v.name: [v.value, v.sigma, v.unit] for v in values}
        s.add(exp)
        s.add(_transition_event(exp, old, new, who, lab_time_s, body))

    def bump_attempt(self, experiment_id: int, *, reason: str, code: str, lab_time_s: float) -> int:
        """Counts a retry after a transient fault; the event is written before the retry is sent."""
        with self._session() as s:
            exp = s.get(Experiment, experiment_id)
            if exp is None:
                raise StoreError(f"experiment id {experiment_id} is not in {self._where()}")
            exp.attempt += 1
            exp.updated_at = utcnow()
            s.add(exp)
            s.add(
                Event(
                    campaign_id=exp.campaign_id,
                    experiment_id=exp.id,
                    kind="retry",
                    lab_time_s=lab_time_s,
                    payload={"attempt": exp.attempt, "code": code, "reason": reason},
                )
            )
            s.commit()
            return exp.attempt

    def log(
        self,
        campaign_id: int,
        kind: str,
        payload: dict[str, Any],
        *,
        experiment_id: int | None = None,
        lab_time_s: float = 0.0,
        actor: str = "agent",
    ) -> None:
        with self._session() as s:
            s.add(
                Event(
                    campaign_id=campaign_id,
                    experiment_id=experiment_id,
                    kind=kind,
                    payload=payload,
                    lab_time_s=lab_time_s,
                    actor=actor,
                )
            )
            s.commit()

    # --- reading ---------------------------------------------------------------------------------
    def experiments(self, campaign_id: int) -> list[Experiment]:
        with self._session() as s:
            q = select(Experiment).where(Experiment.campaign_id == campaign_id).order_by(col(Experiment.index))
            return list(s.exec(q))

    def experiment(self, campaign_id: int, index: int) -> Experiment | None:
        with self._session() as s:
            q = select(Experiment).where(Experiment.campaign_id == campaign_id, Experiment.index == index)
            return s.exec(q).first()

    def measurements(self, campaign_id: int) -> dict[int, list[Measurement]]:
        with self._session() as s:
            q = (
                select(Measurement)
                .join(Experiment, col(Experiment.id) == col(Measurement.experiment_id))
                .where(Experiment.campaign_id == campaign_id)
                .order_by(col(Measurement.id))
            )
            out: dict[int, list[Measurement]] = {}
            for m in s.exec(q):
                out.setdefault(m.experiment_id, []).append(m)
            return out

    def measurements_of(self, experiment_id: int) -> list[Measurement]:
        with self._session() as s:
            q = select(Measurement).where(Measurement.experiment_id == experiment_id).order_by(col(Measurement.id))
            return list(s.exec(q))

    def sample(self, experiment_id: int) -> Sample | None:
        with self._session() as s:
            return s.exec(select(Sample).where(Sample.experiment_id == experiment_id)).first()

    def micrographs(self, experiment_id: int) -> list[Micrograph]:
        with self._session() as s:
            q = select(Micrograph).where(Micrograph.experiment_id == experiment_id).order_by(col(Micrograph.id))
            return list(s.exec(q))

    def artifacts(self, experiment_id: int, kind: str | None = None) -> list[Artifact]:
        with self._session() as s:
            q = select(Artifact).where(Artifact.experiment_id == experiment_id)
            if kind is not None:
                q = q.where(Artifact.kind == kind)
            return list(s.exec(q.order_by(col(Artifact.id))))

    def events(self, campaign_id: int) -> list[Event]:
        with self._session() as s:
            return list(s.exec(select(Event).where(Event.campaign_id == campaign_id).order_by(col(Event.id))))

    def experiment_events(self, experiment_id: int) -> list[Event]:
        with self._session() as s:
            q = select(Event).where(Event.experiment_id == experiment_id).order_by(col(Event.id))
            return list(s.exec(q))

    def file_path(self, row: Micrograph | Artifact) -> Path:
        return self.files_dir / row.path

    # --- files -----------------------------------------------------------------------------------
    def _archive(self, src: Path) -> tuple[str, str]:
        h = hashlib.sha256()
        try:
            with open(src, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError as exc:
            raise StoreError(f"cannot read image file {src}: {exc}") from exc
        sha = h.hexdigest()
        rel = f"{sha[:2]}/{sha}{src.suffix.lower()}"
        dst = self.files_dir / rel
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(dst.name + f".{os.getpid()}.part")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        return sha, rel

    def _where(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)


def _transition_event(
    exp: Experiment, old: str, new: str, actor: str, lab_time_s: float, payload: dict[str, Any]
) -> Event:
    """The append-only record of one lifecycle transition of ``exp``, by ``actor``."""
    return Event(
        campaign_id=exp.campaign_id,
        experiment_id=exp.id,
        kind="transition",
        from_state=old,
        to_state=new,
        actor=actor,
        lab_time_s=lab_time_s,
        payload=payload,
    )
