"""Partial dependence of a fitted GP: how the predicted objective moves with one input when the others
are averaged over the observed points (Friedman's classic PD), for ``matloop plot``.

The GP (BoTorch ``SingleTaskGP``, inferred noise, standardized outcome) is fitted on the `UnitEncoding`
of the space, so any strategy's data can be explained the same way, whatever model proposed it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from surrogate.base import ConditionValue, Observation, StrategyError
from surrogate.encoding import UnitEncoding
from surrogate.space import CategoricalParameter, CompositionParameter, FloatParameter, IntParameter, SearchSpace

MIN_POINTS = 3


@dataclass(frozen=True)
class PartialDependence:
    """PD of one input: the grid (numbers, or the choices of a categorical) and the mean ± σ of the
    prediction averaged over the observed points, at each grid value."""

    input: str
    unit: str
    categorical: bool
    grid: list[ConditionValue]
    mean: list[float]
    sigma: list[float]

    @property
    def spread(self) -> float:
        """Range of the PD mean: how much this input alone moves the prediction."""
        return max(self.mean) - min(self.mean)


def _usable(observations: Sequence[Observation], objective: str, space: SearchSpace) -> list[Observation]:
    return [
        o
        for o in observations
        if not o.failed
        and objective in o.values
        and math.isfinite(float(o.values[objective][0]))
        and not space.check(o.conditions)
    ]


def fit_gp(space: SearchSpace, observations: Sequence[Observation], objective: str, seed: int = 0) -> object:
    """A SingleTaskGP fitted to ``objective`` on the unit encoding (observations outside the space, failed
    or without the objective are left out); `StrategyError` with fewer than 3 usable points."""
    import torch
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    used = _usable(observations, objective, space)
    if len(used) < MIN_POINTS:
        raise StrategyError(
            f"partial dependence of {objective!r} needs at least {MIN_POINTS} completed experiments in the space, "
            f"got {len(used)}"
        )
    enc = UnitEncoding(space)
    x = torch.tensor(np.stack([enc.to_unit(o.conditions) for o in used]), dtype=torch.float64)
    y = torch.tensor([[float(o.values[objective][0])] for o in used], dtype=torch.float64)
    torch.manual_seed(seed)
    model = SingleTaskGP(x, y, outcome_transform=Standardize(m=1))
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    model.eval()
    return model


def _grid(p: FloatParameter | IntParameter, n: int) -> list[ConditionValue]:
    if isinstance(p, IntParameter):
        raw = np.geomspace(p.low, p.high, n) if p.log_scale else np.linspace(p.low, p.high, n)
        return [int(v) for v in sorted(set(np.rint(raw).astype(int).tolist()))]
    if p.log_scale:
        return [float(v) for v in np.geomspace(p.low, p.high, n)]
    return [float(v) for v in np.linspace(p.low, p.high, n)]


def _with_component(
    c: dict[str, ConditionValue], p: CompositionParameter, name: str, v: float
) -> dict[str, ConditionValue]:
    """``c`` with component ``name`` set to ``v`` and the others rescaled to keep the total (approximate
    where a rescaled component would cross its bounds; the encoding clips)."""
    out = dict(c)
    others = [k.name for k in p.components if k.name != name]
    rest = sum(float(c[k]) for k in others)
    left = p.total - v
    for k in others:
        out[k] = left * float(c[k]) / rest if rest > 0 else left / len(others)
    out[name] = v
    return out


def partial_dependence(
    space: SearchSpace,
    observations: Sequence[Observation],
    objective: str,
    *,
    grid_size: int = 25,
    seed: int = 0,
) -> dict[str, PartialDependence]:
    """PD of ``objective`` for every input (composition components by name), from a GP fitted on the
    completed ``observations``. σ is that of the averaged prediction (joint posterior of the averaged points)."""
    import torch

    model = fit_gp(space, observations, objective, seed)
    used = _usable(observations, objective, space)
    base = [dict(o.conditions) for o in used]
    enc = UnitEncoding(space)
    units = space.units()
    out: dict[str, PartialDependence] = {}

    def averaged(points: list[list[dict[str, ConditionValue]]]) -> tuple[list[float], list[float]]:
        x = torch.tensor(
            np.stack([np.stack([enc.to_unit(c) for c in row]) for row in points]), dtype=torch.float64
        )  # grid x n x d
        with torch.no_grad():
            post = model.posterior(x)  # type: ignore[attr-defined]
            mean: NDArray[np.float64] = post.mean.squeeze(-1).numpy()  # grid x n
            cov: NDArray[np.float64] = post.mvn.covariance_matrix.numpy()  # grid x n x n
        n = mean.shape[-1]
        var = cov.sum(axis=(-1, -2)) / n**2
        return [float(v) for v in mean.mean(axis=-1)], [float(math.sqrt(max(v, 0.0))) for v in var]

    for p in space.parameters:
        if isinstance(p, CategoricalParameter):
            grid: list[ConditionValue] = list(p.choices)
            m, s = averaged([[{**c, p.name: g} for c in base] for g in grid])
            out[p.name] = PartialDependence(p.name, "", True, grid, m, s)
        elif isinstance(p, CompositionParameter):
            for comp in p.components:
                if comp.high - comp.low <= 1e-12:
                    continue
                grid = [float(v) for v in np.linspace(comp.low, comp.high, grid_size)]
                m, s = averaged([[_with_component(c, p, comp.name, float(g)) for c in base] for g in grid])
                out[comp.name] = PartialDependence(comp.name, p.unit, False, grid, m, s)
        else:
            grid = _grid(p, grid_size)
            m, s = averaged([[{**c, p.name: g} for c in base] for g in grid])
            out[p.name] = PartialDependence(p.name, units[p.name], False, grid, m, s)
    return out


def lengthscales(model: object, space: SearchSpace) -> dict[str, float]:
    """The fitted ARD length scales by input (unit-cube columns; a composition's columns are not its
    components and are left out), shortest = most influential."""
    kernel = model.covar_module  # type: ignore[attr-defined]
    ls = getattr(kernel, "lengthscale", None)
    if ls is None:
        ls = getattr(getattr(kernel, "base_kernel", None), "lengthscale", None)
    if ls is None:
        return {}
    values = ls.detach().reshape(-1).tolist()
    out: dict[str, float] = {}
    col = 0
    for p in space.parameters:
        if isinstance(p, CompositionParameter):
            col += UnitEncoding(SearchSpace(parameters=(p,))).dim if _free(p) else 0
            continue
        out[p.name] = float(values[col])
        col += 1
    return out


def _free(p: CompositionParameter) -> bool:
    try:
        UnitEncoding(SearchSpace(parameters=(p,)))
    except StrategyError:
        return False
    return True


__all__ = ["MIN_POINTS", "PartialDependence", "fit_gp", "lengthscales", "partial_dependence"]
