"""Ax's default generation strategy on a pool: the ``ax-pool`` peer.

Ax generates in the continuous space (`surrogate.ax_strategy.AxStrategy`, exactly as the ``ax`` strategy builds
its Client and generation strategy) and each generated point is mapped to the nearest unused, not pending pool
candidate in `BotorchSpace`'s [0, 1] columns (Euclidean; a categorical mismatch counts as a large distance, so a
candidate with the same categories wins when one is free). The adapter then lets Ax learn at the candidate it was
actually given: the measured candidate is told to the Ax strategy, which attaches it as its own trial and completes
it with the measured value; the generated point, neither pending nor told, is marked STALE (never run) at the next
ask. Pending candidates are attached as RUNNING trials, so Ax's next generation accounts for them. A lab that has
only a list of candidates and Ax would do the same: Ax knows no finite candidate sets. On continuous problems the
``ax`` strategy itself is the peer."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from surrogate.base import Conditions, Observation, Proposal
from surrogate.botorch_space import BotorchSpace
from surrogate.objectives import Goal
from surrogate.options import AxOptions
from surrogate.peers.options import AxPoolOptions
from surrogate.pool import PoolBase
from surrogate.space import SearchSpace

#: distance added per mismatched categorical (columns are in [0, 1])
_CATEGORY_MISMATCH = 1e6


class AxPoolStrategy(PoolBase):
    """Ax's proposals snapped to the nearest free candidates; see the module docstring."""

    generator = "ax-pool"
    Options = AxPoolOptions
    options: AxPoolOptions

    def __init__(
        self,
        space: SearchSpace,
        goal: Goal,
        seed: int,
        candidates: Sequence[Conditions],
        options: AxPoolOptions | None = None,
    ) -> None:
        super().__init__(space, goal, seed, candidates, options)
        from surrogate.ax_strategy import AxStrategy

        self.ax = AxStrategy(space, goal, seed, AxOptions(**self.options.model_dump()))
        self.columns = BotorchSpace(space)
        X = self.columns.encode(self._conditions).numpy()
        self._categorical = np.array([c.kind == "categorical" for c in self.columns.columns])
        self._numeric_X = X[:, ~self._categorical]
        self._category_X = X[:, self._categorical]

    def tell(self, results: Sequence[Observation]) -> None:
        """Marks the candidates used and tells Ax the measured candidates (failures as failed trials)."""
        super().tell(results)
        self.ax.tell(results)

    def _choose(self, n: int, free: np.ndarray, pending: list[Conditions]) -> list[Proposal]:
        left = int(free.sum())
        generated = self.ax.ask(n, pending)
        free = free.copy()
        out = []
        for p in generated:
            target = self.columns.encode([p.conditions]).numpy()[0]
            d = ((self._numeric_X - target[~self._categorical]) ** 2).sum(axis=1)
            d += _CATEGORY_MISMATCH * (self._category_X != target[self._categorical]).sum(axis=1)
            d[~free] = np.inf
            i = int(np.argmin(d))
            free[i] = False
            node = p.generator.removeprefix("ax:")
            state = {"ax_point": dict(p.conditions), "snap_distance": round(float(np.sqrt(d[i])), 6), "ax_node": node}
            out.append(self._proposal(i, f"{self.generator}:{node}", left, state=state, predictions=p.predictions))
        return out
