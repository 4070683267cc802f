"""What a campaign wants: objectives (maximize, minimize, hit a target) and outcome constraints."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from surrogate.space import NAME_PATTERN


class Objective(BaseModel):
    """One measured quantity to optimize. ``threshold`` is the worst acceptable value (multi-objective
    reference point); ``target`` is the value to hit when ``direction`` is ``target``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    direction: Literal["maximize", "minimize", "target"]
    unit: str
    target: float | None = None
    threshold: float | None = None

    @model_validator(mode="after")
    def _check(self) -> Objective:
        if self.direction == "target" and self.target is None:
            raise ValueError("direction 'target' needs a 'target' value")
        if self.direction != "target" and self.target is not None:
            raise ValueError("'target' is only valid with direction 'target'")
        return self

    def score(self, value: float) -> float:
        """The value turned so that larger is always better (targets become minus the distance)."""
        if self.direction == "maximize":
            return value
        if self.direction == "minimize":
            return -value
        assert self.target is not None
        return -abs(value - self.target)


class OutcomeConstraint(BaseModel):
    """A measured quantity that must satisfy ``value op bound`` for an experiment to count, e.g. porosity <= 0.02."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    op: Literal["<=", ">="]
    bound: float
    unit: str | None = None

    @model_validator(mode="after")
    def _check(self) -> OutcomeConstraint:
        if not math.isfinite(self.bound):
            raise ValueError("bound must be a finite number")
        return self

    def satisfied(self, value: float) -> bool:
        return value <= self.bound if self.op == "<=" else value >= self.bound


class Goal(BaseModel):
    """Objectives plus outcome constraints: everything the strategy is asked to achieve."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    objectives: tuple[Objective, ...] = Field(min_length=1)
    outcome_constraints: tuple[OutcomeConstraint, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Goal:
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"objective names must be distinct, got {names}")
        return self

    def metric_names(self) -> list[str]:
        return [o.name for o in self.objectives] + [
            c.name for c in self.outcome_constraints if c.name not in {o.name for o in self.objectives}
        ]
