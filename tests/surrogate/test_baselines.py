"""Random and Sobol baselines: deterministic, never repeating, inside the space, resumable."""

from __future__ import annotations

import pytest

from surrogate.base import Observation, Strategy, StrategyError
from surrogate.encoding import canonical_key
from surrogate.options import RandomOptions, SobolOptions
from surrogate.random_search import RandomStrategy
from surrogate.sobol import SobolStrategy
from surrogate.space import CategoricalParameter, IntParameter, SearchSpace
from tests.surrogate.problems import maximize, mixed_space

BASELINES = [RandomStrategy, SobolStrategy]


def _observe(conditions: dict) -> Observation:
    return Observation(conditions=conditions, values={"f": (1.0, 0.1)})


def _run(strategy: Strategy, rounds: int = 4) -> list[dict]:
    """Two lanes: ask 2 with one pending, tell one, keep the other pending."""
    pending: list[dict] = []
    seen = []
    for _ in range(rounds):
        props = [p.conditions for p in strategy.ask(2, pending)]
        seen += props
        strategy.tell([_observe(c) for c in pending + props[:1]])
        pending = props[1:]
    return seen


@pytest.mark.parametrize("cls", BASELINES)
def test_same_seed_same_points_other_seed_other_points(cls: type) -> None:
    space = mixed_space()
    a, b, c = (_run(cls(space, maximize(), seed)) for seed in (7, 7, 8))
    assert a == b
    assert a != c


@pytest.mark.parametrize("cls", BASELINES)
def test_points_are_new_and_in_the_space(cls: type) -> None:
    space = mixed_space()
    s = cls(space, maximize(), 0)
    assert isinstance(s, Strategy)
    seen = _run(s, rounds=6)
    keys = [canonical_key(c) for c in seen]
    assert len(set(keys)) == len(keys)
    assert all(space.check(c) == [] for c in seen)
    told = seen[:3]
    s.tell([_observe(c) for c in told])
    batch = [p.conditions for p in s.ask(5, pending=seen[3:6])]
    assert not {canonical_key(c) for c in batch} & set(keys)


@pytest.mark.parametrize("cls", BASELINES)
def test_a_resumed_campaign_continues_the_same_stream(cls: type) -> None:
    space = mixed_space()
    live = cls(space, maximize(), 3)
    first = [p.conditions for p in live.ask(3, [])]
    live.tell([_observe(c) for c in first[:2]])
    nxt = [p.conditions for p in live.ask(2, first[2:])]

    resumed = cls(space, maximize(), 3)  # a fresh process: told what the store recorded, same pending
    resumed.tell([_observe(c) for c in first[:2]])
    assert [p.conditions for p in resumed.ask(2, first[2:])] == nxt


def test_sobol_takes_consecutive_sequence_points() -> None:
    space = mixed_space()
    one_by_one = SobolStrategy(space, maximize(), 5)
    pending: list[dict] = []
    for _ in range(6):
        pending += [p.conditions for p in one_by_one.ask(1, pending)]
    at_once = [p.conditions for p in SobolStrategy(space, maximize(), 5).ask(6, [])]
    assert pending == at_once


@pytest.mark.parametrize("cls", BASELINES)
def test_a_discrete_space_runs_out_with_a_clear_error(cls: type) -> None:
    space = SearchSpace(
        parameters=(
            IntParameter(name="k", low=0, high=2, unit="1"),
            CategoricalParameter(name="c", choices=("a", "b")),
        )
    )
    opts = (RandomOptions if cls is RandomStrategy else SobolOptions)(max_draws=5000)
    s = cls(space, maximize(), 0, opts)
    got = [p.conditions for p in s.ask(6, [])]
    assert len({canonical_key(c) for c in got}) == 6  # every point of the space, once
    with pytest.raises(StrategyError, match="already used"):
        s.ask(1, got)


@pytest.mark.parametrize("cls", BASELINES)
def test_failures_count_as_used(cls: type) -> None:
    space = SearchSpace(parameters=(IntParameter(name="k", low=0, high=3, unit="1"),))
    s = cls(space, maximize(), 0, (RandomOptions if cls is RandomStrategy else SobolOptions)(max_draws=2000))
    first = [p.conditions for p in s.ask(3, [])]
    s.tell([Observation(conditions=c, values={}, failed=True, reason="cracked") for c in first])
    (last,) = s.ask(1, [])
    assert canonical_key(last.conditions) not in {canonical_key(c) for c in first}
    assert s.ask(0, []) == []
