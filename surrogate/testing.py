"""Fake strategies shipped for tests (ours and users'): deterministic and instant."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from surrogate.base import Conditions, Observation, Proposal


class CountingStrategy:
    """Proposes ``make(i)`` for i = 0, 1, 2, ... (skipping pending duplicates) and records what it is told."""

    def __init__(self, make: Callable[[int], dict[str, float | int | str]]) -> None:
        self.make = make
        self.i = 0
        self.told: list[Observation] = []
        self.asks: list[tuple[int, int]] = []  # (n, number pending)

    def ask(self, n: int, pending: Sequence[Conditions]) -> list[Proposal]:
        self.asks.append((n, len(pending)))
        seen = [dict(p) for p in pending] + [o.conditions for o in self.told]
        out: list[Proposal] = []
        while len(out) < n:
            c = self.make(self.i)
            self.i += 1
            if c not in seen:
                out.append(Proposal(conditions=c, generator="counting"))
                seen.append(c)
        return out

    def tell(self, results: Sequence[Observation]) -> None:
        self.told.extend(results)
