"""Encodings of a `SearchSpace`.

* `AxEncoding`: Ax parameter configs and parameter-constraint strings, and back. Ax has no equality
  constraints, so a composition of k components becomes k−1 free components (the last free one is
  dropped and rebuilt as ``total − sum``) plus two inequalities keeping it inside its bounds. Names are
  aliased (``x_<name>``) because Ax parses constraint strings with SymPy, where element-like names such
  as ``Si``, ``Li``, ``N``, ``O``, ``S``, ``I`` or ``E`` are functions or constants, not symbols.
* `UnitEncoding`: a unit cube for the random and Sobol baselines. Each float, int and categorical takes
  one column (log scale and index binning handled); a composition of k free components takes k−1
  columns mapped onto its simplex by sorted-uniform spacings (uniform on the simplex), so that only
  component upper bounds and linear constraints need rejection.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from surrogate.base import Conditions, ConditionValue, StrategyError, StrategyWarning
from surrogate.space import (
    CategoricalParameter,
    CompositionParameter,
    FloatParameter,
    IntParameter,
    LinearConstraint,
    SearchSpace,
)

FIXED_WIDTH = 1e-12  # a component whose bounds are closer than this is a constant
_ZERO_COEF = 1e-12

Key = tuple[tuple[str, str], ...]


def canonical_key(conditions: Conditions) -> Key:
    """A hashable key for conditions that equal each other up to ~10 significant digits (so that a
    float that went through a database or JSON, or an int stored as 3.0, still finds its twin)."""
    return tuple(
        (name, "s:" + v if isinstance(v, str) else f"{float(v):.10g}") for name, v in sorted(conditions.items())
    )


# --------------------------------------------------------------------------------------- simplexes
@dataclass(frozen=True)
class _Simplex:
    """A composition split into constant and free components, with its reduced totals."""

    names: tuple[str, ...]
    low: NDArray[np.float64]
    high: NDArray[np.float64]
    total: float
    free: tuple[int, ...]  # indices of components with high − low > FIXED_WIDTH

    @classmethod
    def of(cls, p: CompositionParameter) -> _Simplex:
        low = np.array([c.low for c in p.components], dtype=float)
        high = np.array([c.high for c in p.components], dtype=float)
        free = tuple(int(i) for i in np.flatnonzero(high - low > FIXED_WIDTH))
        return cls(tuple(c.name for c in p.components), low, high, float(p.total), free)

    @property
    def slack_low(self) -> float:
        """How much the free components hold above their lows: ``total − sum(lows)``."""
        return self.total - float(self.low.sum())

    @property
    def slack_high(self) -> float:
        """How much the free components hold below their highs."""
        return float((self.high - self.low)[list(self.free)].sum()) - self.slack_low

    def determined(self) -> NDArray[np.float64] | None:
        """The only point of the simplex when it has no freedom left, else None."""
        x = self.low.copy()
        f = list(self.free)
        if self.slack_low <= FIXED_WIDTH:
            return x
        if self.slack_high <= FIXED_WIDTH:
            x[f] = self.high[f]
            return x
        if len(f) == 1:
            x[f] = self.low[f] + self.slack_low
            return x
        return None


# ----------------------------------------------------------------------------------- unit encoding
class _Block:
    """Columns of the unit cube belonging to one parameter."""

    dim: int

    def to_unit(self, conditions: Conditions) -> list[float]:
        raise NotImplementedError

    def decode(self, u: NDArray[np.float64]) -> tuple[dict[str, NDArray[Any]], NDArray[np.bool_]]:
        """``u``: an ``m x dim`` array → values per input name (length m each) and a feasibility mask."""
        raise NotImplementedError


class _FloatBlock(_Block):
    def __init__(self, p: FloatParameter) -> None:
        self.p, self.dim = p, 1
        self.a, self.b = (math.log(p.low), math.log(p.high)) if p.log_scale else (p.low, p.high)

    def to_unit(self, conditions: Conditions) -> list[float]:
        v = float(conditions[self.p.name])
        t = math.log(v) if self.p.log_scale else v
        return [min(max((t - self.a) / (self.b - self.a), 0.0), 1.0)]

    def decode(self, u: NDArray[np.float64]) -> tuple[dict[str, NDArray[Any]], NDArray[np.bool_]]:
        t = self.a + u[:, 0] * (self.b - self.a)
        v = np.exp(t) if self.p.log_scale else t
        return {self.p.name: np.clip(v, self.p.low, self.p.high)}, np.ones(len(u), dtype=bool)


class _IntBlock(_Block):
    """Integers get equal-width bins (in log space for log scale: bin of k is [log(k−½), log(k+½)])."""

    def __init__(self, p: IntParameter) -> None:
        self.p, self.dim = p, 1
        if p.log_scale:
            self.a, self.b = math.log(p.low - 0.5), math.log(p.high + 0.5)
        else:
            self.a, self.b = p.low - 0.5, p.high + 0.5

    def to_unit(self, conditions: Conditions) -> list[float]:
        v = float(conditions[self.p.name])
        t = math.log(v) if self.p.log_scale else v
        return [min(max((t - self.a) / (self.b - self.a), 0.0), 1.0)]

    def decode(self, u: NDArray[np.float64]) -> tuple[dict[str, NDArray[Any]], NDArray[np.bool_]]:
        t = self.a + u[:, 0] * (self.b - self.a)
        v = np.rint(np.exp(t) if self.p.log_scale else t)
        return {self.p.name: np.clip(v, self.p.low, self.p.high).astype(np.int64)}, np.ones(len(u), bool)


class _CategoricalBlock(_Block):
    def __init__(self, p: CategoricalParameter) -> None:
        self.p, self.dim = p, 1
        self.choices = np.array(p.choices, dtype=object)

    def to_unit(self, conditions: Conditions) -> list[float]:
        return [(self.p.choices.index(str(conditions[self.p.name])) + 0.5) / len(self.p.choices)]

    def decode(self, u: NDArray[np.float64]) -> tuple[dict[str, NDArray[Any]], NDArray[np.bool_]]:
        idx = np.minimum((u[:, 0] * len(self.choices)).astype(np.int64), len(self.choices) - 1)
        return {self.p.name: self.choices[idx]}, np.ones(len(u), dtype=bool)


class _SimplexBlock(_Block):
    """Uniform on the bounded simplex: sorted-uniform spacings spread the slack over the free components,
    measured from their lows or from their highs, whichever slack is smaller (fewer rejections); points
    that push a component past its other bound are rejected."""

    def __init__(self, p: CompositionParameter) -> None:
        self.s = _Simplex.of(p)
        self.fixed_point = self.s.determined()
        self.from_low = self.s.slack_low <= self.s.slack_high
        self.slack = self.s.slack_low if self.from_low else self.s.slack_high
        f = list(self.s.free)
        self.caps = (self.s.high - self.s.low)[f]
        self.dim = 0 if self.fixed_point is not None else len(f) - 1

    def to_unit(self, conditions: Conditions) -> list[float]:
        if self.dim == 0:
            return []
        f = list(self.s.free)
        x = np.array([float(conditions[n]) for n in self.s.names])
        y = x[f] - self.s.low[f] if self.from_low else self.s.high[f] - x[f]
        w = np.clip(y / self.slack, 0.0, 1.0)
        return [float(c) for c in np.clip(np.cumsum(w)[:-1], 0.0, 1.0)]

    def decode(self, u: NDArray[np.float64]) -> tuple[dict[str, NDArray[Any]], NDArray[np.bool_]]:
        m = len(u)
        if self.fixed_point is not None:
            x = np.tile(self.fixed_point, (m, 1))
            ok = np.ones(m, dtype=bool)
        else:
            f = list(self.s.free)
            edges = np.concatenate([np.zeros((m, 1)), np.sort(u, axis=1), np.ones((m, 1))], axis=1)
            y = self.slack * np.diff(edges, axis=1)
            ok = np.all(y <= self.caps + 1e-12, axis=1)
            y = np.minimum(y, self.caps)
            x = np.tile(self.s.low, (m, 1))
            x[:, f] = self.s.low[f] + y if self.from_low else self.s.high[f] - y
        x = np.clip(x, self.s.low, self.s.high)
        return {n: x[:, i] for i, n in enumerate(self.s.names)}, ok


def _block(p: Any) -> _Block:
    if isinstance(p, FloatParameter):
        return _FloatBlock(p)
    if isinstance(p, IntParameter):
        return _IntBlock(p)
    if isinstance(p, CategoricalParameter):
        return _CategoricalBlock(p)
    if isinstance(p, CompositionParameter):
        return _SimplexBlock(p)
    raise TypeError(f"unknown parameter type {type(p).__name__}")


class UnitEncoding:
    """The space as a unit cube of dimension `dim`, for the baselines: `to_unit`/`from_unit` map one
    point, `feasible` maps a batch and keeps the rows that satisfy bounds, simplexes and constraints."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self._blocks = [_block(p) for p in space.parameters]
        self.dim = sum(b.dim for b in self._blocks)
        if self.dim == 0:
            raise StrategyError("the search space has a single point: there is nothing to vary")

    def to_unit(self, conditions: Conditions) -> NDArray[np.float64]:
        """A `dim`-vector in [0, 1] that `from_unit` maps back to ``conditions`` (for points in the space)."""
        return np.array([v for b in self._blocks for v in b.to_unit(conditions)], dtype=float)

    def from_unit(self, u: ArrayLike) -> dict[str, ConditionValue]:
        """The conditions at one point of the cube (not checked against upper bounds or constraints)."""
        cols, _ = self._decode(np.asarray(u, dtype=float).reshape(1, self.dim))
        return _row(cols, 0, self.space.input_names())

    def feasible(self, u: ArrayLike) -> list[dict[str, ConditionValue]]:
        """``u``: an ``m x dim`` array → the conditions of the rows that lie in the space, in row order."""
        cols, ok = self._decode(np.asarray(u, dtype=float).reshape(-1, self.dim))
        for con in self.space.constraints:
            lhs = sum(k * cols[n].astype(float) for n, k in con.coefficients.items())
            ok &= lhs <= con.bound if con.op == "<=" else lhs >= con.bound
        names = self.space.input_names()
        return [_row(cols, int(i), names) for i in np.flatnonzero(ok)]

    def _decode(self, u: NDArray[np.float64]) -> tuple[dict[str, NDArray[Any]], NDArray[np.bool_]]:
        cols: dict[str, NDArray[Any]] = {}
        ok = np.ones(len(u), dtype=bool)
        start = 0
        for b in self._blocks:
            c, k = b.decode(u[:, start : start + b.dim])
            cols.update(c)
            ok &= k
            start += b.dim
        return cols, ok


def _row(cols: Mapping[str, NDArray[Any]], i: int, names: Sequence[str]) -> dict[str, ConditionValue]:
    out: dict[str, ConditionValue] = {}
    for n in names:
        v = cols[n][i]
        out[n] = str(v) if isinstance(v, str) else int(v) if isinstance(v, np.integer) else float(v)
    return out


def draw_new(
    encoding: UnitEncoding,
    draw: Callable[[int], NDArray[np.float64]],
    n: int,
    exclude: set[Key],
    max_draws: int,
    chunk: int = 64,
) -> list[dict[str, ConditionValue]]:
    """``n`` feasible conditions, none of whose keys is in ``exclude`` nor repeated, from cube points
    ``draw(k)`` (``k x dim``), by rejection; `StrategyError` when ``max_draws`` cube points are not enough."""
    out: list[dict[str, ConditionValue]] = []
    seen = set(exclude)
    drawn = 0
    while len(out) < n:
        if drawn >= max_draws:
            raise StrategyError(
                f"found only {len(out)} of {n} new feasible points in {drawn} draws: the feasible region "
                "(component bounds and linear constraints) is too small to sample by rejection, "
                "or every distinct point of a discrete space is already used"
            )
        k = min(chunk, max_draws - drawn)
        drawn += k
        for c in encoding.feasible(draw(k)):
            key = canonical_key(c)
            if key not in seen and len(out) < n:
                seen.add(key)
                out.append(c)
    return out


def check_proposals(space: SearchSpace, proposals: Sequence[Conditions], who: str) -> None:
    """Raises `StrategyError` naming the first proposal that lies outside ``space``."""
    for c in proposals:
        problems = space.check(c)
        if problems:
            raise StrategyError(f"{who} proposed {dict(c)}, which is outside the space: {'; '.join(problems)}")


# ------------------------------------------------------------------------------------- Ax encoding
def _sympy_safe(name: str) -> bool:
    """Whether SymPy parses ``name`` as a plain symbol (Ax parses constraints and objectives with it)."""
    from sympy import Symbol, sympify

    try:
        return isinstance(sympify(name), Symbol)
    except Exception:
        return False


def ax_alias(name: str, prefix: str) -> str:
    """The name Ax sees for an input (``prefix='x_'``) or a metric (``'y_'``)."""
    alias = prefix + name
    if not _sympy_safe(alias):  # pragma: no cover - no SymPy global starts with x_ or y_
        raise StrategyError(f"cannot give {name!r} a name that Ax's constraint parser accepts")
    return alias


@dataclass(frozen=True)
class _Dependent:
    """A component dropped from Ax and rebuilt as ``rest − sum(free)``."""

    name: str
    rest: float  # total minus the constant components
    free: tuple[str, ...]  # our names of the free components that Ax sees
    low: float
    high: float
    free_low: float  # sum of the free components' lows
    free_high: float  # and of their highs


class AxEncoding:
    """A `SearchSpace` as Ax parameter configs (`parameters`) and constraint strings (`constraints`);
    `to_ax` and `from_ax` translate conditions. Composition: constants are left out, the last free
    component is rebuilt from the others, and ``total − high_k <= sum(others) <= total − low_k`` keeps it
    in bounds. A log-scaled input named in a linear constraint is searched on a linear scale (Ax allows
    no constraint on log-scaled parameters), with a `StrategyWarning`."""

    def __init__(self, space: SearchSpace) -> None:
        from ax import ChoiceParameterConfig, RangeParameterConfig

        self.space = space
        self.alias: dict[str, str] = {}
        self.constants: dict[str, float] = {}
        self.dependents: list[_Dependent] = []
        self.parameters: list[RangeParameterConfig | ChoiceParameterConfig] = []
        constrained = {n for con in space.constraints for n in con.coefficients}
        for p in space.parameters:
            if isinstance(p, CategoricalParameter):
                self._add(p.name)
                self.parameters.append(
                    ChoiceParameterConfig(
                        name=self.alias[p.name], values=list(p.choices), parameter_type="str", is_ordered=False
                    )
                )
            elif isinstance(p, CompositionParameter):
                self._add_composition(p, RangeParameterConfig)
            else:
                log = p.log_scale and p.name not in constrained
                if p.log_scale and not log:
                    warnings.warn(
                        f"{p.name} is searched on a linear scale by Ax: it appears in a linear constraint, "
                        "and Ax allows no constraint on a log-scaled parameter",
                        StrategyWarning,
                        stacklevel=3,
                    )
                self._add(p.name)
                self.parameters.append(
                    RangeParameterConfig(
                        name=self.alias[p.name],
                        bounds=(p.low, p.high) if isinstance(p, IntParameter) else (float(p.low), float(p.high)),
                        parameter_type="int" if isinstance(p, IntParameter) else "float",
                        scaling="log" if log else "linear",
                    )
                )
        if not self.parameters:
            raise StrategyError("the search space has a single point: there is nothing to vary")
        self.constraints: list[str] = [s for d in self.dependents for s in self._simplex_constraints(d)]
        self.constraints += [s for con in space.constraints if (s := self._constraint(con))]

    def _add(self, name: str) -> None:
        self.alias[name] = ax_alias(name, "x_")

    def _add_composition(self, p: CompositionParameter, range_config: Any) -> None:
        s = _Simplex.of(p)
        fixed_point = s.determined()
        if fixed_point is not None:
            self.constants.update({n: float(v) for n, v in zip(s.names, fixed_point, strict=True)})
            return
        free = list(s.free)
        for i, n in enumerate(s.names):
            if i not in s.free:
                self.constants[n] = float(s.low[i])
        *shown, last = free
        for i in shown:
            self._add(s.names[i])
            self.parameters.append(
                range_config(
                    name=self.alias[s.names[i]],
                    bounds=(float(s.low[i]), float(s.high[i])),
                    parameter_type="float",
                    scaling="linear",
                )
            )
        rest = s.total - sum(float(s.low[i]) for i in range(len(s.names)) if i not in s.free)
        self.dependents.append(
            _Dependent(
                name=s.names[last],
                rest=rest,
                free=tuple(s.names[i] for i in shown),
                low=float(s.low[last]),
                high=float(s.high[last]),
                free_low=float(s.low[shown].sum()),
                free_high=float(s.high[shown].sum()),
            )
        )

    def _simplex_constraints(self, d: _Dependent) -> list[str]:
        """``rest − high <= sum(free) <= rest − low``, leaving out a side that the bounds already imply."""
        lhs = " + ".join(self.alias[n] for n in d.free)
        out = []
        if d.free_high > d.rest - d.low + FIXED_WIDTH:
            out.append(f"{lhs} <= {d.rest - d.low!r}")
        if d.free_low < d.rest - d.high - FIXED_WIDTH:
            out.append(f"{lhs} >= {d.rest - d.high!r}")
        return out

    def _constraint(self, con: LinearConstraint) -> str | None:
        """The user constraint over Ax's parameters (constants and dropped components substituted), or
        None when nothing in it varies and it always holds."""
        coef: dict[str, float] = {}
        const = 0.0
        dependents = {d.name: d for d in self.dependents}
        for name, k in con.coefficients.items():
            if name in self.constants:
                const += k * self.constants[name]
            elif name in dependents:
                d = dependents[name]
                const += k * d.rest
                for f in d.free:
                    coef[self.alias[f]] = coef.get(self.alias[f], 0.0) - k
            else:
                coef[self.alias[name]] = coef.get(self.alias[name], 0.0) + k
        coef = {n: k for n, k in coef.items() if abs(k) > _ZERO_COEF}
        rhs = con.bound - const
        if not coef:
            holds = rhs >= -1e-9 if con.op == "<=" else rhs <= 1e-9
            if holds:
                return None
            raise StrategyError(f"constraint {con.coefficients} {con.op} {con.bound:g} can never hold")
        return " + ".join(f"{k!r} * {n}" for n, k in coef.items()) + f" {con.op} {rhs!r}"

    def to_ax(self, conditions: Conditions) -> dict[str, ConditionValue]:
        """Ax's parameterization of ``conditions`` (dropped and constant components left out)."""
        out: dict[str, ConditionValue] = {}
        for p in self.space.parameters:
            if isinstance(p, CompositionParameter):
                for c in p.components:
                    if c.name in self.alias:
                        out[self.alias[c.name]] = float(conditions[c.name])
            elif isinstance(p, CategoricalParameter):
                out[self.alias[p.name]] = str(conditions[p.name])
            elif isinstance(p, IntParameter):
                out[self.alias[p.name]] = round(float(conditions[p.name]))
            else:
                out[self.alias[p.name]] = float(conditions[p.name])
        return out

    def from_ax(self, parameters: Mapping[str, Any]) -> dict[str, ConditionValue]:
        """Our conditions from Ax's parameterization: bounds clipped against float noise, dropped
        components rebuilt as ``total − sum`` (clipped likewise; a real violation shows in `space.check`)."""
        values: dict[str, ConditionValue] = dict(self.constants)
        for p in self.space.parameters:
            if isinstance(p, CompositionParameter):
                for c in p.components:
                    if c.name in self.alias:
                        values[c.name] = min(max(float(parameters[self.alias[c.name]]), c.low), c.high)
            elif isinstance(p, CategoricalParameter):
                values[p.name] = str(parameters[self.alias[p.name]])
            elif isinstance(p, IntParameter):
                values[p.name] = int(parameters[self.alias[p.name]])
            else:
                values[p.name] = min(max(float(parameters[self.alias[p.name]]), p.low), p.high)
        for d in self.dependents:
            v = d.rest - sum(float(values[f]) for f in d.free)
            values[d.name] = min(max(v, d.low), d.high) if abs(v - min(max(v, d.low), d.high)) < 1e-9 else v
        return {n: values[n] for n in self.space.input_names()}
