"""Small spaces, goals and test functions shared by the surrogate tests."""

from __future__ import annotations

from collections.abc import Mapping

from surrogate.base import ConditionValue
from surrogate.objectives import Goal, Objective
from surrogate.space import (
    CategoricalParameter,
    Component,
    CompositionParameter,
    FloatParameter,
    IntParameter,
    LinearConstraint,
    SearchSpace,
)


def mixed_space() -> SearchSpace:
    """Every kind of input, element-like names that SymPy would misread, a constant component and a
    linear constraint that mixes a component with the dropped one."""
    return SearchSpace(
        parameters=(
            FloatParameter(name="T", low=300, high=900, unit="C"),
            FloatParameter(name="t", low=0.1, high=10, unit="h", log_scale=True),
            IntParameter(name="n", low=1, high=5, unit="1"),
            IntParameter(name="layers", low=1, high=64, unit="1", log_scale=True),
            CategoricalParameter(name="atm", choices=("Ar", "N2", "air")),
            CompositionParameter(
                name="comp",
                components=(
                    Component(name="Si", low=0.1, high=0.6),
                    Component(name="Li", high=0.5),
                    Component(name="N", low=0.05, high=0.05),
                    Component(name="O", low=0.2, high=0.7),
                ),
            ),
        ),
        constraints=(LinearConstraint(coefficients={"Si": 1.0, "O": 2.0}, op="<=", bound=1.5),),
    )


def square() -> SearchSpace:
    return SearchSpace(
        parameters=(
            FloatParameter(name="x", low=0.0, high=1.0, unit="1"),
            FloatParameter(name="y", low=0.0, high=1.0, unit="1"),
        )
    )


def maximize(name: str = "f") -> Goal:
    return Goal(objectives=(Objective(name=name, direction="maximize", unit="1"),))


def quadratic(c: Mapping[str, ConditionValue]) -> float:
    """Maximum 0 at (0.3, 0.7)."""
    return -((float(c["x"]) - 0.3) ** 2 + (float(c["y"]) - 0.7) ** 2)
