"""Samples across a material system's input space that survive synthesis: shared by the gallery and the
dataset exporter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from scipy.stats import qmc

from instruments.sim.seeding import rng_for
from instruments.sim.systems import MaterialSystem
from instruments.sim.systems.base import Outcome


def sample_conditions(system: MaterialSystem, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` scrambled-Sobol points over the inputs (log-scaled ones in log space; categories in turn)."""
    numeric = [s for s in system.inputs if not s.categorical]
    u = qmc.Sobol(len(numeric), scramble=True, seed=seed).random_base2(int(np.ceil(np.log2(max(n, 2)))))[:n]
    out = []
    for i, row in enumerate(u):
        cond: dict[str, Any] = {}
        for s, x in zip(numeric, row, strict=True):
            lo, hi = float(s.low), float(s.high)  # type: ignore[arg-type]
            cond[s.name] = float(np.exp(np.log(lo) + x * np.log(hi / lo))) if s.log else lo + x * (hi - lo)
        for s in system.inputs:
            if s.categorical:
                cond[s.name] = s.choices[i % len(s.choices)]
        out.append({s.name: cond[s.name] for s in system.inputs})
    return out


def surviving_samples(
    system: MaterialSystem, n: int, seed: int, *, candidates: int, tag: str, failures: dict[str, int]
) -> Iterator[tuple[int, dict[str, Any], Outcome]]:
    """Up to ``n`` (index, conditions, outcome) of samples that did not fail, from ``candidates`` Sobol points;
    failures are counted by code into ``failures``. ``tag`` separates the random streams of different callers."""
    made = 0
    for i, cond in enumerate(sample_conditions(system, candidates, seed)):
        if made == n:
            return
        outcome = system.outcome(cond, rng_for(seed, system.name, i, f"{tag}-sample"))
        if outcome.failure is not None:
            failures[outcome.failure.code] = failures.get(outcome.failure.code, 0) + 1
            continue
        made += 1
        yield i, cond, outcome
