"""The approvals queue of the reference robot server: people in the loop over HTTP (``matloop run --approve``).

The agent posts each proposal, a person lists the pending ones and decides, the agent polls for the decision.
Kept in memory (a restart forgets the queue; the agent's store keeps every decision it acted on). JSON shapes are
documented in ``instruments.sim.server``.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

ConditionValue = float | int | str


class ProposalIn(BaseModel):
    """``POST /approvals``: what the agent asks a person to review."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    index: int = Field(ge=1, description="the experiment's 1-based index in its campaign")
    conditions: dict[str, ConditionValue] = Field(min_length=1)
    generator: str = ""
    predictions: dict[str, tuple[float, float]] = Field(default_factory=dict, description="name -> [mean, sd]")
    acquisition_value: float | None = None
    campaign: str = ""


class DecisionIn(BaseModel):
    """``POST /approvals/{id}/decision``: what a person decided; ``conditions`` only (and always) for ``edit``."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    kind: Literal["approve", "veto", "edit", "stop"]
    who: str = Field(min_length=1, max_length=200)
    note: str = Field(default="", max_length=2000)
    conditions: dict[str, ConditionValue] | None = Field(default=None, validate_default=True)

    @field_validator("who")
    @classmethod
    def _named(cls, who: str) -> str:
        if not who.strip():
            raise ValueError("who: a decision needs the name of the person who made it")
        return who.strip()

    @field_validator("conditions")
    @classmethod
    def _edit_only(cls, conditions: dict[str, ConditionValue] | None, info: ValidationInfo) -> Any:
        kind = info.data.get("kind")
        if kind == "edit" and not conditions:
            raise ValueError("conditions: an 'edit' decision needs the edited conditions")
        if kind is not None and kind != "edit" and conditions is not None:
            raise ValueError(f"conditions: only an 'edit' decision carries conditions, not {kind!r}")
        return conditions


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def approvals_router() -> APIRouter:
    """The four approval endpoints over one in-memory queue."""
    router = APIRouter()
    queue: dict[str, dict[str, Any]] = {}
    ids = itertools.count(1)

    @router.post("/approvals", status_code=201)
    async def propose(body: ProposalIn) -> dict[str, Any]:
        aid = f"ap-{next(ids)}"
        queue[aid] = {
            "id": aid,
            "state": "pending",
            "created_at": _now(),
            "proposal": body.model_dump(mode="json"),
            "decision": None,
        }
        return queue[aid]

    @router.get("/approvals")
    async def listing(
        state: Annotated[Literal["pending", "decided", "all"], Query(description="which approvals to list")] = "all",
    ) -> dict[str, Any]:
        found = [a for a in queue.values() if state == "all" or a["state"] == state]
        return {"approvals": found}

    @router.get("/approvals/{aid}")
    async def one(aid: str) -> dict[str, Any]:
        return _get(queue, aid)

    @router.post("/approvals/{aid}/decision")
    async def decide(aid: str, body: DecisionIn) -> dict[str, Any]:
        record = _get(queue, aid)
        if record["decision"] is not None:
            d = record["decision"]
            raise HTTPException(409, f"approval {aid} was already decided: {d['kind']} by {d['who']} at {d['at']}")
        record["decision"] = {**body.model_dump(mode="json"), "at": _now()}
        record["state"] = "decided"
        return record

    return router


def _get(queue: dict[str, dict[str, Any]], aid: str) -> dict[str, Any]:
    if aid not in queue:
        raise HTTPException(404, f"no approval {aid!r}; there are {len(queue)} (ids ap-1 .. ap-{len(queue)})")
    return queue[aid]
