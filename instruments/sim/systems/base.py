"""What a simulated material system provides: its inputs, a ground-truth model, failures and objectives.

A system is a plain module turned into a ``MaterialSystem`` value, so that the furnace, the microscope and the
tester all speak about the same material without knowing its physics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class InputSpec:
    """One synthesis input: continuous in ``[low, high]`` (``log``: naturally log-scaled) or one of ``choices``."""

    name: str
    unit: str = ""
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[str, ...] = ()
    doc: str = ""

    @property
    def categorical(self) -> bool:
        return bool(self.choices)

    def describe(self) -> dict[str, Any]:
        """The JSON-able description the agent compares a campaign's space with."""
        if self.categorical:
            return {"choices": list(self.choices), "doc": self.doc}
        return {"unit": self.unit, "low": self.low, "high": self.high, "log_scale": self.log, "doc": self.doc}

    def problem(self, value: Any) -> str:
        """Empty if ``value`` is acceptable, else why not."""
        if self.categorical:
            if not isinstance(value, str) or value not in self.choices:
                return f"{self.name}={value!r} is not one of {list(self.choices)}"
            return ""
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            return f"{self.name}={value!r} is not a number ({self.unit})"
        v = float(value)
        assert self.low is not None and self.high is not None
        if not math.isfinite(v) or v < self.low or v > self.high:
            return f"{self.name}={v:g} {self.unit} is outside [{self.low:g}, {self.high:g}] {self.unit}"
        return ""


def condition_problems(inputs: Sequence[InputSpec], conditions: Mapping[str, Any]) -> list[str]:
    """Every way ``conditions`` do not fit ``inputs``: unknown names, missing names, bad values."""
    specs = {s.name: s for s in inputs}
    problems = [f"unknown input {k!r}; valid inputs: {', '.join(specs)}" for k in conditions if k not in specs]
    problems += [f"missing input {k!r}" for k in specs if k not in conditions]
    problems += [p for k, v in conditions.items() if k in specs for p in [specs[k].problem(v)] if p]
    return problems


@dataclass(frozen=True)
class Failure:
    """A sample that failed for physical reasons: ``code`` for the agent, ``reason`` for people."""

    code: str
    reason: str


@dataclass(frozen=True)
class Outcome:
    """The ground truth of one made sample, or the failure that ruined it (``truth`` still says why)."""

    truth: dict[str, Any]
    failure: Failure | None = None


@dataclass(frozen=True)
class Optimum:
    """The best noise-free objective value over the input space and where it is."""

    objective: str
    value: float
    conditions: dict[str, Any]


@dataclass(frozen=True)
class MaterialSystem:
    """A simulated material: inputs, ground truth, failures, objectives and how long processing takes."""

    name: str
    inputs: tuple[InputSpec, ...]
    outputs: Mapping[str, str]  # property name -> unit, what a tester can measure
    outcome: Callable[[Mapping[str, Any], np.random.Generator], Outcome]
    objectives: Mapping[str, Callable[..., Any]]  # name -> noise-free f(**conditions as arrays) -> array
    process_time_s: Callable[[Mapping[str, Any]], float]
    optimum: Callable[..., Optimum]
    default_pixel_size_um: float
    relative_noise: Mapping[str, float] = field(default_factory=dict)  # tester's default relative σ

    def input(self, name: str) -> InputSpec:
        return next(s for s in self.inputs if s.name == name)
