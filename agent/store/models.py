"""SQLModel tables of the campaign store. Schema changes go through Alembic migrations (agent/migrations)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def _json(default: Any = None) -> Any:
    return Field(default_factory=(lambda: {} if default is None else default), sa_column=Column(JSON, nullable=False))


class Campaign(SQLModel, table=True):
    __tablename__ = "campaign"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=100)
    spec_yaml: str
    spec_hash: str = Field(max_length=64)
    source_path: str = ""
    seed: int
    status: str = Field(default="created", max_length=20)
    stop_reason: str = ""
    lab_time_s: float = 0.0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Experiment(SQLModel, table=True):
    __tablename__ = "experiment"
    __table_args__ = (UniqueConstraint("campaign_id", "index", name="uq_experiment_index"),)
    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True)
    index: int
    key: str = Field(unique=True, max_length=120)
    conditions: dict[str, Any] = _json()
    state: str = Field(default="proposed", max_length=20, index=True)
    attempt: int = 1
    generator: str = Field(default="", max_length=60)
    model_state: dict[str, Any] = _json()
    failure_code: str = Field(default="", max_length=60)
    failure_reason: str = ""
    lab_time_start_s: float | None = None
    lab_time_end_s: float | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Sample(SQLModel, table=True):
    __tablename__ = "sample"
    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id", index=True, unique=True)
    sample_id: str = Field(max_length=120)
    duration_s: float
    attributes: dict[str, Any] = _json()
    truth: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class Micrograph(SQLModel, table=True):
    __tablename__ = "micrograph"
    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id", index=True)
    sha256: str = Field(max_length=64, index=True)
    path: str
    pixel_size_um: float
    meta: dict[str, Any] = _json()
    truth: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class Measurement(SQLModel, table=True):
    __tablename__ = "measurement"
    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id", index=True)
    name: str = Field(max_length=100)
    value: float
    sigma: float
    unit: str = Field(max_length=40)
    source: str = Field(default="", max_length=100)
    model_version: str = Field(default="", max_length=100)


class Event(SQLModel, table=True):
    """Append-only log: every transition, retry, fault and human action, in order."""

    __tablename__ = "event"
    __table_args__ = (Index("ix_event_campaign_id_id", "campaign_id", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id")
    experiment_id: int | None = Field(default=None, foreign_key="experiment.id")
    ts: datetime = Field(default_factory=utcnow)
    lab_time_s: float = 0.0
    kind: str = Field(max_length=40)
    from_state: str = Field(default="", max_length=20)
    to_state: str = Field(default="", max_length=20)
    actor: str = Field(default="agent", max_length=100)
    payload: dict[str, Any] = _json()


class Artifact(SQLModel, table=True):
    """A derived file kept with an experiment (segmentation overlays, reports), addressed by SHA-256."""

    __tablename__ = "artifact"
    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id", index=True)
    kind: str = Field(max_length=40)
    sha256: str = Field(max_length=64)
    path: str
    meta: dict[str, Any] = _json()
    created_at: datetime = Field(default_factory=utcnow)
