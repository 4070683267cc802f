"""The search space as BoTorch sees it: one column per input in [0, 1] (log scale applied), integers as their
allowed normalized values, categoricals as choice indices ``0..k−1`` (for BoTorch's categorical kernel), every
free composition component as its own column with the composition's sum as an equality constraint, and linear
constraints rewritten on the normalized columns. ``decode`` maps optimizer output back to conditions that pass
`SearchSpace.check` (integers rounded, sums restored exactly within the component bounds)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from surrogate.base import Conditions, ConditionValue, StrategyError
from surrogate.encoding import FIXED_WIDTH
from surrogate.space import (
    CategoricalParameter,
    CompositionParameter,
    FloatParameter,
    IntParameter,
    SearchSpace,
)

Kind = Literal["float", "int", "categorical", "component"]
#: BoTorch's constraint form: ``sum(coefficients * X[indices]) >= rhs`` (inequality) or ``== rhs`` (equality)
LinearForm = tuple[Tensor, Tensor, float]


@dataclass(frozen=True)
class Column:
    """One model column: the input it encodes, how, and its affine map ``value = low + u * (high − low)`` (of
    ``log value`` when ``log``); categoricals keep their choices and take indices."""

    name: str
    kind: Kind
    low: float
    high: float
    log: bool = False
    choices: tuple[str, ...] = ()

    def encode(self, value: ConditionValue) -> float:
        if self.kind == "categorical":
            return float(self.choices.index(str(value)))
        t = math.log(float(value)) if self.log else float(value)
        return min(max((t - self.low) / (self.high - self.low), 0.0), 1.0)

    def decode(self, u: float) -> float:
        t = self.low + min(max(u, 0.0), 1.0) * (self.high - self.low)
        return math.exp(t) if self.log else t


@dataclass(frozen=True)
class _Composition:
    name: str
    names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    total: float
    free: tuple[int, ...]  # component positions that have a column


class BotorchSpace:
    """Columns, bounds, discrete and categorical dimensions, and linear constraints for BoTorch."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.columns: list[Column] = []
        self._fixed: dict[str, float] = {}
        self._compositions: list[_Composition] = []
        for p in space.parameters:
            if isinstance(p, FloatParameter):
                lo, hi = (math.log(p.low), math.log(p.high)) if p.log_scale else (p.low, p.high)
                self.columns.append(Column(p.name, "float", lo, hi, p.log_scale))
            elif isinstance(p, IntParameter):
                lo, hi = (math.log(p.low), math.log(p.high)) if p.log_scale else (float(p.low), float(p.high))
                self.columns.append(Column(p.name, "int", lo, hi, p.log_scale))
            elif isinstance(p, CategoricalParameter):
                self.columns.append(Column(p.name, "categorical", 0.0, float(len(p.choices) - 1), choices=p.choices))
            else:
                self._add_composition(p)
        if not self.columns:
            raise StrategyError("the search space has a single point: there is nothing to vary")
        self.index = {c.name: i for i, c in enumerate(self.columns)}
        self.dim = len(self.columns)
        self.equality_constraints = [self._sum_constraint(c) for c in self._compositions if len(c.free) > 1]
        self.inequality_constraints = [self._linear(i) for i in range(len(space.constraints))]

    # --- construction ------------------------------------------------------------------------------------------
    def _add_composition(self, p: CompositionParameter) -> None:
        low = tuple(c.low for c in p.components)
        high = tuple(c.high for c in p.components)
        free = tuple(i for i, c in enumerate(p.components) if c.high - c.low > FIXED_WIDTH)
        comp = _Composition(p.name, tuple(c.name for c in p.components), low, high, float(p.total), free)
        for i, c in enumerate(p.components):
            if i in free:
                self.columns.append(Column(c.name, "component", c.low, c.high))
            else:
                self._fixed[c.name] = c.low
        if len(free) == 1:  # one free component is determined by the sum: no column
            i = free[0]
            self.columns.pop()
            self._fixed[comp.names[i]] = p.total - sum(v for j, v in enumerate(low) if j != i)
        self._compositions.append(comp)

    def _sum_constraint(self, comp: _Composition) -> LinearForm:
        idx = [self.index[comp.names[i]] for i in comp.free]
        coef = [comp.high[i] - comp.low[i] for i in comp.free]
        rhs = comp.total - sum(comp.low)
        return torch.tensor(idx, dtype=torch.long), torch.tensor(coef, dtype=torch.float64), float(rhs)

    def _linear(self, k: int) -> LinearForm:
        con = self.space.constraints[k]
        sign = -1.0 if con.op == "<=" else 1.0  # BoTorch's form is ">="
        rhs = sign * con.bound
        idx: list[int] = []
        coef: list[float] = []
        for name, a in con.coefficients.items():
            if name in self._fixed:
                rhs -= sign * a * self._fixed[name]
                continue
            col = self.columns[self.index[name]]
            if col.log:
                raise StrategyError(
                    f"constraints[{k}]: {name!r} is log-scaled, and a linear constraint on it is not linear in the "
                    "space the model searches; drop log_scale for it or rewrite the constraint"
                )
            idx.append(self.index[name])
            coef.append(sign * a * (col.high - col.low))
            rhs -= sign * a * col.low
        return torch.tensor(idx, dtype=torch.long), torch.tensor(coef, dtype=torch.float64), float(rhs)

    # --- what the optimizer needs -------------------------------------------------------------------------------
    def bounds(self) -> Tensor:
        """``2 x d``: [0, 1] per column, ``[0, k−1]`` for categoricals."""
        hi = [c.high if c.kind == "categorical" else 1.0 for c in self.columns]
        return torch.tensor([[0.0] * self.dim, hi], dtype=torch.float64)

    def cat_dims(self) -> dict[int, list[float]]:
        cols = enumerate(self.columns)
        return {i: [float(k) for k in range(len(c.choices))] for i, c in cols if c.kind == "categorical"}

    def discrete_dims(self) -> dict[int, list[float]]:
        """Integer columns and their allowed normalized values."""
        out: dict[int, list[float]] = {}
        for i, c in enumerate(self.columns):
            if c.kind == "int":
                lo, hi = (round(math.exp(c.low)), round(math.exp(c.high))) if c.log else (int(c.low), int(c.high))
                out[i] = sorted({c.encode(k) for k in range(lo, hi + 1)})
        return out

    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    # --- conditions ⇄ columns -----------------------------------------------------------------------------------
    def encode(self, conditions: Sequence[Conditions]) -> Tensor:
        """``n`` conditions → ``n x d`` (double)."""
        rows = [[c.encode(cond[c.name]) for c in self.columns] for cond in conditions]
        return torch.tensor(rows, dtype=torch.float64).reshape(len(rows), self.dim)

    def decode(self, X: Tensor) -> list[dict[str, ConditionValue]]:
        """``n x d`` → conditions in the space: integers and categoricals rounded, composition sums restored."""
        out: list[dict[str, ConditionValue]] = []
        for row in X.detach().cpu().double().numpy():
            values: dict[str, ConditionValue] = dict(self._fixed)
            for u, c in zip(row, self.columns, strict=True):
                if c.kind == "categorical":
                    values[c.name] = c.choices[int(np.clip(round(float(u)), 0, len(c.choices) - 1))]
                elif c.kind == "int":
                    values[c.name] = round(c.decode(float(u)))
                else:
                    values[c.name] = c.decode(float(u))
            for comp in self._compositions:
                _restore_sum(values, comp)
            out.append({n: values[n] for n in self.space.input_names()})
        return out


def _restore_sum(values: dict[str, ConditionValue], comp: _Composition) -> None:
    """Spreads the optimizer's residual on the composition's sum over its free components, within their bounds."""
    x = np.array([float(values[n]) for n in comp.names])
    lo, hi = np.array(comp.low), np.array(comp.high)
    x = np.clip(x, lo, hi)
    for _ in range(len(comp.names) + 1):
        residual = comp.total - float(x.sum())
        if abs(residual) < 1e-12:
            break
        room = (hi - x) if residual > 0 else (x - lo)
        room[[i for i in range(len(x)) if i not in comp.free]] = 0.0
        if room.sum() <= 0:
            break
        x = np.clip(x + residual * room / room.sum(), lo, hi)
    for n, v in zip(comp.names, x, strict=True):
        values[n] = float(v)
