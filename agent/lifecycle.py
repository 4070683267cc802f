"""The experiment lifecycle as an enum with guarded transitions."""

from __future__ import annotations

import enum

from agent.errors import IllegalTransition


class ExperimentState(enum.StrEnum):
    PROPOSED = "proposed"
    SUBMITTED = "submitted"
    SYNTHESIZED = "synthesized"
    IMAGED = "imaged"
    ANALYZED = "analyzed"
    COMPLETED = "completed"
    FAILED = "failed"
    ABANDONED = "abandoned"


S = ExperimentState
TERMINAL = frozenset({S.COMPLETED, S.FAILED, S.ABANDONED})
_FORWARD: dict[ExperimentState, frozenset[ExperimentState]] = {
    S.PROPOSED: frozenset({S.SUBMITTED}),
    S.SUBMITTED: frozenset({S.SYNTHESIZED}),
    # without an imager, measurements come from the characterizer alone
    S.SYNTHESIZED: frozenset({S.IMAGED, S.ANALYZED}),
    S.IMAGED: frozenset({S.ANALYZED}),
    S.ANALYZED: frozenset({S.COMPLETED}),
}
ALLOWED: dict[ExperimentState, frozenset[ExperimentState]] = {
    s: (_FORWARD.get(s, frozenset()) | ({S.FAILED, S.ABANDONED} if s not in TERMINAL else frozenset()))
    for s in ExperimentState
}


def can_transition(old: ExperimentState, new: ExperimentState) -> bool:
    return new in ALLOWED[old]


def check_transition(old: ExperimentState | str, new: ExperimentState | str) -> ExperimentState:
    """Returns ``new`` as a state if the move is legal, else raises ``IllegalTransition``."""
    o, n = ExperimentState(old), ExperimentState(new)
    if n not in ALLOWED[o]:
        valid = ", ".join(sorted(ALLOWED[o])) or "none (terminal state)"
        raise IllegalTransition(f"an experiment cannot go from {o} to {n}; from {o} it may go to: {valid}")
    return n


def check_manual_result(old: ExperimentState | str) -> ExperimentState:
    """A person may enter the result of an experiment that is waiting (proposed, submitted, synthesized or
    imaged): it then completes or fails directly. Raises ``IllegalTransition`` otherwise."""
    o = ExperimentState(old)
    if o in TERMINAL or o == S.ANALYZED:
        why = "it is already measured and completes when the campaign resumes" if o == S.ANALYZED else "it is final"
        raise IllegalTransition(
            f"cannot enter a result for an experiment in state {o}: {why}; "
            "results can be entered for proposed, submitted, synthesized or imaged experiments"
        )
    return o
