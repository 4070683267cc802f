"""The strategy seam: ``ask`` for conditions, ``tell`` results. A strategy never owns the truth: the agent
rebuilds it from the store on resume by telling it every recorded observation again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

ConditionValue = float | int | str
Conditions = Mapping[str, ConditionValue]


@dataclass(frozen=True)
class Proposal:
    """Conditions to try next, with what the strategy believed when it proposed them (for ``explain``)."""

    conditions: dict[str, ConditionValue]
    generator: str
    predictions: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (mean, sigma)
    acquisition_value: float | None = None
    model_state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Observation:
    """A finished experiment: its conditions and measured values ``name -> (value, sigma)``.
    ``failed`` experiments carry no values but a reason: a feasibility-aware strategy learns from them.
    ``duration_s``: the lab time the experiment took (synthesis and measurement), for cost-aware strategies."""

    conditions: dict[str, ConditionValue]
    values: dict[str, tuple[float, float]]
    failed: bool = False
    reason: str = ""
    duration_s: float | None = None


@runtime_checkable
class Strategy(Protocol):
    def ask(self, n: int, pending: Sequence[Conditions]) -> list[Proposal]:
        """``n`` new conditions, jointly chosen, none equal to a pending or observed one."""
        ...

    def tell(self, results: Sequence[Observation]) -> None:
        """Records finished experiments (successes and failures)."""
        ...


class StrategyError(Exception):
    """A strategy could not propose (bad options, degenerate data)."""


class StrategyWarning(UserWarning):
    """Something a strategy changed or ignored so that it could go on (shown, never silenced)."""
