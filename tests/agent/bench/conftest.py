"""Shared helpers of the benchmark tests: one torch thread, small CSVs and a stand-in pool strategy (used
until ``surrogate.pool`` exists)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.bench import runner
from surrogate.base import Conditions, Observation, Proposal
from surrogate.encoding import canonical_key

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


class RandomPool:
    """Uniform choice among the pool candidates not yet told or pending: each at most once."""

    def __init__(
        self,
        name: str,
        space: Any,
        goal: Any,
        seed: int,
        candidates: list[dict[str, Any]],
        options: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.candidates = candidates
        self.rng = np.random.default_rng([seed, hash(name) % 1000])
        self.used: set[Any] = set()

    def ask(self, n: int, pending: Sequence[Conditions]) -> list[Proposal]:
        taken = self.used | {canonical_key(p) for p in pending}
        free = [c for c in self.candidates if canonical_key(c) not in taken]
        pick = self.rng.choice(len(free), size=min(n, len(free)), replace=False)
        return [Proposal(conditions=dict(free[int(i)]), generator=self.name) for i in pick]

    def tell(self, results: Sequence[Observation]) -> None:
        self.used |= {canonical_key(r.conditions) for r in results}


@pytest.fixture
def pool_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The stand-in pool strategy (serial runs only: it is set in this process)."""
    monkeypatch.setattr(runner, "pool_factory", RandomPool)
    yield


def write_simplex_csv(path: Path, *, n: int = 40, header: bool = False, duplicates: int = 5, seed: int = 0) -> Path:
    """A 3-component composition → objective table (minimize), with some repeated compositions."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.dirichlet(np.ones(3), size=n), 3)
    x[:, 2] = np.round(1.0 - x[:, 0] - x[:, 1], 3)
    x = np.vstack([x, x[:duplicates]])
    y = (x[:, 0] - 0.6) ** 2 + (x[:, 1] - 0.3) ** 2 + 0.01 * rng.standard_normal(len(x))
    lines = (["a,b,c,loss"] if header else []) + [
        ",".join(f"{v:.6g}" for v in [*row, t]) for row, t in zip(x, y, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


SIMPLEX_SPACE = """
    space:
      parameters:
        - type: composition
          name: comp
          components: [{name: a}, {name: b}, {name: c}]
"""
