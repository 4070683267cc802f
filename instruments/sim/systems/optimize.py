"""Finds a system's noise-free optimum: differential evolution over the continuous inputs, per category.

Log-scaled inputs are searched in log space. Failed regions (NaN objective) are infeasible.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.optimize import differential_evolution

from instruments.sim.systems.base import InputSpec, Optimum


def maximize(
    inputs: Sequence[InputSpec],
    objective: Callable[..., Any],
    name: str,
    *,
    seed: int = 0,
    maxiter: int = 300,
) -> Optimum:
    """Global maximum of ``objective(**conditions)`` (vectorized over numeric inputs) over ``inputs``."""
    numeric = [s for s in inputs if not s.categorical]
    categorical = [s for s in inputs if s.categorical]
    bounds = [
        (float(np.log(s.low)), float(np.log(s.high))) if s.log else (float(s.low), float(s.high))  # type: ignore[arg-type]
        for s in numeric
    ]

    def decode(z: np.ndarray) -> dict[str, np.ndarray]:
        return {s.name: np.exp(z[i]) if s.log else z[i] for i, s in enumerate(numeric)}

    best: Optimum | None = None
    for combo in itertools.product(*(s.choices for s in categorical)):
        fixed = {s.name: v for s, v in zip(categorical, combo, strict=True)}

        def loss(z: np.ndarray, fixed: dict[str, str] = fixed) -> np.ndarray:
            val = np.asarray(objective(**decode(z), **fixed), dtype=float)
            return np.where(np.isfinite(val), -val, 1e6)

        res = differential_evolution(
            loss,
            bounds,
            seed=seed,
            maxiter=maxiter,
            tol=1e-10,
            vectorized=True,
            updating="deferred",
            polish=True,
            popsize=20,
        )
        value = -float(np.squeeze(loss(res.x[:, None])))
        if best is None or value > best.value:
            conds: dict[str, Any] = {k: float(np.squeeze(v)) for k, v in decode(res.x[:, None]).items()}
            best = Optimum(name, value, conds | fixed)
    assert best is not None
    return best
