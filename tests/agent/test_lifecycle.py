"""The lifecycle state machine accepts exactly the legal transitions, in memory and in the store."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from agent.errors import IllegalTransition
from agent.lifecycle import ALLOWED, TERMINAL, ExperimentState, check_transition
from agent.store import Store

S = ExperimentState
HAPPY = [S.PROPOSED, S.SUBMITTED, S.SYNTHESIZED, S.IMAGED, S.ANALYZED, S.COMPLETED]


def test_happy_path_and_terminal_states() -> None:
    for a, b in pairwise(HAPPY):
        assert check_transition(a, b) == b
    for t in TERMINAL:
        assert ALLOWED[t] == frozenset()
    for s in set(S) - TERMINAL:
        assert {S.FAILED, S.ABANDONED} <= ALLOWED[s]


@given(st.lists(st.sampled_from(list(S)), min_size=1, max_size=30))
def test_no_illegal_transition_is_accepted(path: list[ExperimentState]) -> None:
    state = S.PROPOSED
    for target in path:
        legal = target in ALLOWED[state]
        try:
            state = check_transition(state, target)
            assert legal
        except IllegalTransition as exc:
            assert not legal
            assert str(state) in str(exc)
    # the only way forward is the happy path's order
    assert state in set(S)


class StoredLifecycle(RuleBasedStateMachine):
    """Random transitions against a real SQLite store: the store must agree with the model at every step."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.tmp = tempfile.TemporaryDirectory()
        self.store = Store(f"sqlite:///{self.tmp.name}/l.db", Path(self.tmp.name) / "files")
        c = self.store.create_campaign("lc", "x: 1", "h" * 64, 0, "")
        assert c.id is not None
        self.cid = c.id
        self.model: dict[int, ExperimentState] = {}
        self.events = 1

    @rule()
    def propose(self) -> None:
        e = self.store.propose(self.cid, "lc", {}, generator="t", model_state={}, lab_time_s=0.0)
        assert e.id is not None
        self.model[e.id] = S.PROPOSED
        self.events += 1

    @rule(pick=st.integers(0, 50), to=st.sampled_from(list(S)))
    def move(self, pick: int, to: ExperimentState) -> None:
        if not self.model:
            return
        eid = sorted(self.model)[pick % len(self.model)]
        old = self.model[eid]
        if to in ALLOWED[old]:
            self.store.transition(eid, to, lab_time_s=1.0)
            self.model[eid] = to
            self.events += 1
        else:
            with pytest.raises(IllegalTransition):
                self.store.transition(eid, to, lab_time_s=1.0)

    @invariant()
    def store_agrees(self) -> None:
        got = {e.id: S(e.state) for e in self.store.experiments(self.cid)}
        assert got == self.model
        assert len(self.store.events(self.cid)) == self.events

    def teardown(self) -> None:
        self.store.close()
        self.tmp.cleanup()


TestStoredLifecycle = StoredLifecycle.TestCase
TestStoredLifecycle.settings = settings(max_examples=15, stateful_step_count=25, deadline=None)
