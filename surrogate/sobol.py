"""Scrambled Sobol search: space-filling, deterministic, never repeating itself."""

from __future__ import annotations

import numpy as np
from scipy.stats import qmc

from surrogate.base import ConditionValue, StrategyError
from surrogate.baseline import BaselineStrategy
from surrogate.encoding import Key, canonical_key
from surrogate.objectives import Goal
from surrogate.options import SobolOptions
from surrogate.space import SearchSpace

_CHUNK = 64  # a power of two keeps Sobol's balance properties


class SobolStrategy(BaselineStrategy):
    """The feasible points of one scrambled Sobol sequence (categoricals by index binning, compositions
    by sorted spacings, constraints by rejection), taken in order. An ask starts at position
    ``max(previous end, told + pending)`` and skips points already told or pending, so a resumed
    campaign continues the same sequence and no point comes twice."""

    generator = "sobol"
    Options = SobolOptions

    def __init__(
        self, space: SearchSpace, goal: Goal | None = None, seed: int = 0, options: SobolOptions | None = None
    ) -> None:
        super().__init__(space, goal, seed)
        self.options = options or SobolOptions()
        self._engine = qmc.Sobol(d=self.encoding.dim, scramble=True, seed=np.random.default_rng(seed))
        self._stream: list[dict[str, ConditionValue]] = []  # the feasible points so far, in order

    def _draw(self, n: int, start: int, exclude: set[Key]) -> tuple[list[dict[str, ConditionValue]], int]:
        out: list[dict[str, ConditionValue]] = []
        seen = set(exclude)
        pos, drawn = start, 0
        while len(out) < n:
            while pos >= len(self._stream):
                if drawn >= self.options.max_draws:
                    raise StrategyError(
                        f"found only {len(out)} of {n} new feasible Sobol points in {drawn} draws: the "
                        "feasible region (component bounds and linear constraints) is too small to sample "
                        "by rejection, or every distinct point of a discrete space is already used"
                    )
                self._stream.extend(self.encoding.feasible(self._engine.random(_CHUNK)))
                drawn += _CHUNK
            c = self._stream[pos]
            pos += 1
            key = canonical_key(c)
            if key not in seen:
                seen.add(key)
                out.append(c)
        return out, pos
