"""Uniform random search over the space (the baseline every campaign should beat)."""

from __future__ import annotations

import numpy as np

from surrogate.base import ConditionValue
from surrogate.baseline import BaselineStrategy
from surrogate.encoding import Key, draw_new
from surrogate.objectives import Goal
from surrogate.options import RandomOptions
from surrogate.space import SearchSpace


class RandomStrategy(BaselineStrategy):
    """Uniform points of the space (uniform in log for log-scaled inputs, on the simplex for
    compositions), with rejection for component bounds and linear constraints. Each ask draws from a
    numpy Generator seeded by ``(seed, position)``, so that the same history gives the same points."""

    generator = "random"
    Options = RandomOptions

    def __init__(
        self, space: SearchSpace, goal: Goal | None = None, seed: int = 0, options: RandomOptions | None = None
    ) -> None:
        super().__init__(space, goal, seed)
        self.options = options or RandomOptions()

    def _draw(self, n: int, start: int, exclude: set[Key]) -> tuple[list[dict[str, ConditionValue]], int]:
        rng = np.random.default_rng([self.seed, start])
        out = draw_new(self.encoding, lambda k: rng.random((k, self.encoding.dim)), n, exclude, self.options.max_draws)
        return out, start + n
