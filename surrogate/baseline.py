"""What the random and Sobol baselines share: a unit-cube encoding, the set of points already used,
and a cursor rebuilt from the number of told and pending points, so that a resumed campaign (told every
recorded observation again) continues the same deterministic stream."""

from __future__ import annotations

from collections.abc import Sequence

from surrogate.base import Conditions, ConditionValue, Observation, Proposal
from surrogate.encoding import Key, UnitEncoding, canonical_key, check_proposals
from surrogate.objectives import Goal
from surrogate.space import SearchSpace


class BaselineStrategy:
    """Base of the model-free strategies; subclasses implement `_draw`."""

    generator = "baseline"

    def __init__(self, space: SearchSpace, goal: Goal | None = None, seed: int = 0) -> None:
        self.space = space
        self.goal = goal
        self.seed = seed
        self.encoding = UnitEncoding(space)
        self._told: set[Key] = set()
        self._n_told = 0
        self._cursor = 0

    def ask(self, n: int, pending: Sequence[Conditions]) -> list[Proposal]:
        """``n`` new feasible conditions, distinct from each other, from ``pending`` and from told ones."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n == 0:
            return []
        exclude = self._told | {canonical_key(c) for c in pending}
        start = max(self._cursor, self._n_told + len(pending))
        conditions, self._cursor = self._draw(n, start, exclude)
        check_proposals(self.space, conditions, self.generator)
        return [
            Proposal(conditions=c, generator=self.generator, model_state={"stream_start": start}) for c in conditions
        ]

    def tell(self, results: Sequence[Observation]) -> None:
        """Remembers the conditions (failed ones too) so that they are never proposed again."""
        for r in results:
            self._told.add(canonical_key(r.conditions))
            self._n_told += 1

    def _draw(self, n: int, start: int, exclude: set[Key]) -> tuple[list[dict[str, ConditionValue]], int]:
        """``n`` new conditions from stream position ``start`` on, and the position after them."""
        raise NotImplementedError
