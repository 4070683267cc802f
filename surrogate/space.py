"""The search space a campaign may vary: typed parameters, composition simplexes and linear constraints."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FloatParameter(_Frozen):
    """A continuous input with an explicit unit; ``log_scale`` searches it in log space (bounds > 0)."""

    type: Literal["float"] = "float"
    name: str = Field(pattern=NAME_PATTERN)
    low: float
    high: float
    unit: str
    log_scale: bool = False

    @model_validator(mode="after")
    def _check(self) -> FloatParameter:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("low and high must be finite numbers")
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be smaller than high ({self.high})")
        if self.log_scale and self.low <= 0:
            raise ValueError(f"log_scale needs low > 0, got low={self.low}")
        return self


class IntParameter(_Frozen):
    """An integer input (counts, cycles, layers)."""

    type: Literal["int"] = "int"
    name: str = Field(pattern=NAME_PATTERN)
    low: int
    high: int
    unit: str
    log_scale: bool = False

    @model_validator(mode="after")
    def _check(self) -> IntParameter:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be smaller than high ({self.high})")
        if self.log_scale and self.low <= 0:
            raise ValueError(f"log_scale needs low > 0, got low={self.low}")
        return self


class CategoricalParameter(_Frozen):
    """An unordered choice (atmosphere, precursor, substrate)."""

    type: Literal["categorical"] = "categorical"
    name: str = Field(pattern=NAME_PATTERN)
    choices: tuple[str, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _check(self) -> CategoricalParameter:
        if len(set(self.choices)) != len(self.choices):
            raise ValueError(f"choices must be distinct, got {list(self.choices)}")
        return self


class Component(_Frozen):
    name: str = Field(pattern=NAME_PATTERN)
    low: float = Field(default=0.0, ge=0.0, le=1.0)
    high: float = Field(default=1.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _check(self) -> Component:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


class CompositionParameter(_Frozen):
    """Fractions of named components that sum to ``total`` (1 for mole or mass fractions)."""

    type: Literal["composition"] = "composition"
    name: str = Field(pattern=NAME_PATTERN)
    components: tuple[Component, ...] = Field(min_length=2)
    unit: str = "fraction"
    total: float = 1.0

    @model_validator(mode="after")
    def _check(self) -> CompositionParameter:
        names = [c.name for c in self.components]
        if len(set(names)) != len(names):
            raise ValueError(f"component names must be distinct, got {names}")
        lo = sum(c.low for c in self.components)
        hi = sum(c.high for c in self.components)
        if lo > self.total + 1e-9 or hi < self.total - 1e-9:
            raise ValueError(f"component bounds cannot sum to {self.total}: lows sum to {lo:g}, highs to {hi:g}")
        return self


Parameter = Annotated[
    FloatParameter | IntParameter | CategoricalParameter | CompositionParameter,
    Field(discriminator="type"),
]


class LinearConstraint(_Frozen):
    """``sum(coefficients[name] * x[name]) <= bound`` (or ``>=``) over numeric inputs or components."""

    coefficients: dict[str, float] = Field(min_length=1)
    op: Literal["<=", ">="] = "<="
    bound: float


class SearchSpace(_Frozen):
    parameters: tuple[Parameter, ...] = Field(min_length=1)
    constraints: tuple[LinearConstraint, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> SearchSpace:
        seen: set[str] = set()
        for name in self.input_names():
            if name in seen:
                raise ValueError(f"input name {name!r} is used twice")
            seen.add(name)
        numeric = self.numeric_names()
        for i, con in enumerate(self.constraints):
            for name in con.coefficients:
                if name not in numeric:
                    raise ValueError(
                        f"constraints[{i}].coefficients.{name}: {name!r}, which is not a numeric input; "
                        f"valid: {', '.join(sorted(numeric))}"
                    )
        return self

    def input_names(self) -> list[str]:
        """Flat names of every input as it appears in conditions (composition components by name)."""
        names: list[str] = []
        for p in self.parameters:
            if isinstance(p, CompositionParameter):
                names.extend(c.name for c in p.components)
            else:
                names.append(p.name)
        return names

    def numeric_names(self) -> set[str]:
        return {
            n
            for p in self.parameters
            if not isinstance(p, CategoricalParameter)
            for n in ([c.name for c in p.components] if isinstance(p, CompositionParameter) else [p.name])
        }

    def units(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for p in self.parameters:
            if isinstance(p, CompositionParameter):
                out.update({c.name: p.unit for c in p.components})
            elif isinstance(p, CategoricalParameter):
                out[p.name] = ""
            else:
                out[p.name] = p.unit
        return out

    def check(self, conditions: Mapping[str, float | int | str], tol: float = 1e-6) -> list[str]:
        """Problems with ``conditions`` (empty when they lie in the space): bounds, choices, sums, constraints."""
        problems: list[str] = []
        missing = set(self.input_names()) - set(conditions)
        extra = set(conditions) - set(self.input_names())
        if missing:
            problems.append(f"missing inputs: {sorted(missing)}")
        if extra:
            problems.append(f"unknown inputs: {sorted(extra)}")
        if problems:
            return problems
        for p in self.parameters:
            if isinstance(p, CategoricalParameter):
                if conditions[p.name] not in p.choices:
                    problems.append(f"{p.name}={conditions[p.name]!r} is not one of {list(p.choices)}")
            elif isinstance(p, CompositionParameter):
                total = 0.0
                for c in p.components:
                    v = float(conditions[c.name])
                    total += v
                    if v < c.low - tol or v > c.high + tol:
                        problems.append(f"{c.name}={v:g} outside [{c.low:g}, {c.high:g}]")
                if abs(total - p.total) > 1e-4:
                    problems.append(f"{p.name} components sum to {total:g}, not {p.total:g}")
            else:
                v = float(conditions[p.name])
                span = (p.high - p.low) * tol
                if v < p.low - span or v > p.high + span:
                    problems.append(f"{p.name}={v:g} outside [{p.low:g}, {p.high:g}] {p.unit}")
                if isinstance(p, IntParameter) and float(v) != int(v):
                    problems.append(f"{p.name}={v!r} is not an integer")
        for con in self.constraints:
            lhs = sum(k * float(conditions[n]) for n, k in con.coefficients.items())
            slack = tol * max(1.0, abs(con.bound))  # the same tolerance as the bounds (tol=0: exact)
            ok = lhs <= con.bound + slack if con.op == "<=" else lhs >= con.bound - slack
            if not ok:
                problems.append(f"constraint {con.coefficients} {con.op} {con.bound:g} violated ({lhs:g})")
        return problems
