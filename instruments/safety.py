"""Hard limits: what a piece of hardware must never be asked to do, declared by its driver.

A driver states its limits (``hard_limits()``); the agent refuses a campaign whose space reaches beyond them and
checks every request again before it is sent, and the driver checks once more before anything goes on the wire.
Limits are absolute: a request outside them fails for good (``LimitViolation``) and is never retried.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from instruments.base import ConditionValue, PermanentFault


class HardLimit(BaseModel):
    """One input's limit: a closed numeric range in ``unit``, or a set of allowed ``choices``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    low: float | None = Field(default=None, description="smallest value the hardware accepts, in `unit`")
    high: float | None = Field(default=None, description="largest value the hardware accepts, in `unit`")
    unit: str | None = Field(default=None, description="unit of low/high; must match the campaign's input unit")
    choices: tuple[str, ...] | None = Field(default=None, description="allowed values of a categorical input")

    @model_validator(mode="after")
    def _shape(self) -> HardLimit:
        numeric = self.low is not None or self.high is not None
        if numeric and self.choices is not None:
            raise ValueError("a limit is either a range (low/high with unit) or a set of choices, not both")
        if not numeric and self.choices is None:
            raise ValueError("a limit needs low and/or high (with unit), or choices")
        if numeric and not self.unit:
            raise ValueError("a numeric limit needs its unit, e.g. unit: degC")
        for bound in (self.low, self.high):
            if bound is not None and not math.isfinite(bound):
                raise ValueError("limits must be finite numbers")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low {self.low:g} is above high {self.high:g}")
        return self

    def problem(self, name: str, value: ConditionValue) -> str | None:
        """Why ``value`` is outside this limit, or None if it is inside."""
        if self.choices is not None:
            return None if str(value) in self.choices else f"{name}={value!r} is not one of {list(self.choices)}"
        if isinstance(value, (str, bool)):
            return f"{name}={value!r} is not a number (limit {self.describe()})"
        v = float(value)
        if not math.isfinite(v):
            return f"{name}={v} is not finite"
        if (self.low is not None and v < self.low) or (self.high is not None and v > self.high):
            return f"{name}={v:g} {self.unit} is outside the hard limit {self.describe()}"
        return None

    def describe(self) -> str:
        if self.choices is not None:
            return "{" + ", ".join(self.choices) + "}"
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        return f"[{lo}, {hi}] {self.unit}"


class HardLimits(BaseModel):
    """A driver's limits by input name. Inputs with no limit are not constrained; ``require_all`` makes an input
    the driver has no limit for an error (for hardware that must know every setting it is given)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    limits: dict[str, HardLimit] = Field(default_factory=dict)
    require_all: bool = False

    def problems(self, conditions: Mapping[str, ConditionValue]) -> list[str]:
        """Every reason these conditions must not be sent; empty when they are safe."""
        out = [p for name, v in conditions.items() if name in self.limits and (p := self.limits[name].problem(name, v))]
        if self.require_all:
            out += [
                f"{name} has no hard limit declared by the driver" for name in conditions if name not in self.limits
            ]
        return out

    def enforce(self, conditions: Mapping[str, ConditionValue], *, who: str) -> None:
        """Raises ``LimitViolation`` (permanent: never retried, never sent) when any condition is outside."""
        problems = self.problems(conditions)
        if problems:
            raise LimitViolation(f"{who} refused the request: " + "; ".join(problems))


class LimitViolation(PermanentFault):
    """A request outside the hardware's hard limits. It is never sent."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="outside_hard_limits")


@runtime_checkable
class Limited(Protocol):
    """An instrument that declares hard limits."""

    def hard_limits(self) -> HardLimits: ...


def limits_of(instrument: Any) -> HardLimits | None:
    """The instrument's declared limits, or None when it declares none."""
    return instrument.hard_limits() if isinstance(instrument, Limited) else None
