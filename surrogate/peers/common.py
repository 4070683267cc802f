"""What the peers share and that needs no torch: their goal and input checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from surrogate.base import StrategyError
from surrogate.objectives import Goal, Objective

if TYPE_CHECKING:
    from surrogate.botorch_space import BotorchSpace

#: the acquisitions of the plain peers, by strategy name
ACQUISITIONS = {"botorch-logei": "LogEI", "botorch-ucb": "UCB"}


def single_objective(goal: Goal | None, peer: str) -> Objective:
    """The goal's one objective; `StrategyError` naming the limitation for several objectives or outcome
    constraints (the peers, as a lab runs them, optimize one number)."""
    if goal is None:
        raise StrategyError(f"the {peer} peer needs a goal")
    if len(goal.objectives) != 1:
        names = ", ".join(o.name for o in goal.objectives)
        raise StrategyError(
            f"the {peer} peer optimizes one objective; this goal has {len(goal.objectives)} ({names}): "
            "multi-objective goals are not supported by this peer (matloop's 'botorch' handles them with qLogNEHVI)"
        )
    if goal.outcome_constraints:
        names = ", ".join(c.name for c in goal.outcome_constraints)
        raise StrategyError(
            f"the {peer} peer has no outcome constraints; this goal constrains {names}: drop them to run the peer, "
            "or use matloop's 'botorch'"
        )
    return goal.objectives[0]


def numeric_columns(columns: BotorchSpace, peer: str) -> None:
    """`StrategyError` for categorical inputs (plain BoTorch's Matérn kernel has no notion of categories)."""
    cats = [c.name for c in columns.columns if c.kind == "categorical"]
    if cats:
        raise StrategyError(
            f"the {peer} peer models numeric inputs only (a Matérn kernel on [0, 1] columns); categorical inputs: "
            f"{', '.join(cats)}; use matloop's 'botorch' (mixed kernel) or drop them"
        )
