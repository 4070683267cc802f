"""People in the loop: an `Approver` reviews each proposal before it is submitted (approve, veto, edit or
stop the campaign), and results measured by hand are parsed from ``name=VALUE±SIGMA``.

The loop calls ``Approver.review`` after a proposal is recorded and before it is submitted. An edit is
checked against the space by the loop (`InvalidEdit` names the problems); a veto abandons the proposal
without spending the experiment budget, and its conditions are passed to later asks as pending so that
the strategy does not propose them again. Every decision is an event with who made it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from agent.errors import ConfigError, MatloopError
from surrogate.base import ConditionValue
from surrogate.space import CategoricalParameter, IntParameter, SearchSpace

DecisionKind = Literal["approve", "veto", "edit", "stop"]


@dataclass(frozen=True)
class Decision:
    """What a person decided about one proposal. ``conditions``: the edited conditions (``edit`` only)."""

    kind: DecisionKind
    who: str
    note: str = ""
    conditions: dict[str, ConditionValue] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("approve", "veto", "edit", "stop"):
            raise ValueError(f"decision kind {self.kind!r} is not valid; valid: approve, veto, edit, stop")
        if self.kind == "edit" and not self.conditions:
            raise ValueError("an 'edit' decision needs the edited conditions")
        if not self.who:
            raise ValueError("a decision needs 'who' made it")


@dataclass(frozen=True)
class ProposalInfo:
    """What the approver is shown: the experiment's index, conditions, generator and the model's beliefs."""

    index: int
    conditions: dict[str, ConditionValue]
    generator: str
    predictions: dict[str, tuple[float, float]] = field(default_factory=dict)
    acquisition_value: float | None = None
    model_state: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Approver(Protocol):
    def review(self, proposal: ProposalInfo) -> Decision:
        """Approve, veto, edit or stop; called once per proposal, one at a time, before it is submitted."""
        ...


@runtime_checkable
class AsyncApprover(Protocol):
    """An approver that waits for people elsewhere (a web page, a chat): the loop awaits it, so running
    experiments are followed meanwhile."""

    async def areview(self, proposal: ProposalInfo) -> Decision: ...


class ApprovalError(MatloopError):
    """The approver cannot deliver decisions (its service refuses us or answers garbage): the campaign stops,
    interrupted, with everything recorded so far kept."""


class InvalidEdit(MatloopError):
    """An approver edited a proposal into conditions outside the space."""


class ScriptedApprover:
    """Decides by a function (or approves everything), recording what it was shown: for tests and notebooks."""

    def __init__(self, decide: Callable[[ProposalInfo], Decision] | None = None, who: str = "script") -> None:
        self.decide = decide or (lambda _p: Decision("approve", who))
        self.seen: list[ProposalInfo] = []

    def review(self, proposal: ProposalInfo) -> Decision:
        self.seen.append(proposal)
        return self.decide(proposal)


def coerce_conditions(space: SearchSpace, raw: Mapping[str, Any]) -> dict[str, ConditionValue]:
    """Typed conditions from user input (strings from a prompt or a command line): ints for int inputs,
    strings for categoricals, floats otherwise. Unknown names are kept for `SearchSpace.check` to name."""
    kinds: dict[str, str] = {}
    for p in space.parameters:
        kinds[p.name] = "cat" if isinstance(p, CategoricalParameter) else "int" if isinstance(p, IntParameter) else ""
    out: dict[str, ConditionValue] = {}
    for name, v in raw.items():
        kind = kinds.get(name, "")
        if kind == "cat":
            out[name] = str(v)
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            out[name] = str(v)
            continue
        out[name] = int(f) if kind == "int" and f == int(f) else f
    return out


def edit_problems(space: SearchSpace, conditions: Mapping[str, Any]) -> list[str]:
    """What is wrong with edited conditions (empty when they lie in the space)."""
    numeric = space.numeric_names()
    problems = [
        f"{name}={v!r} is not a number"
        for name, v in conditions.items()
        if name in numeric and (isinstance(v, str) or not isinstance(v, (int, float)))
    ]
    return problems or space.check(conditions)


_VALUE = re.compile(r"^\s*(?P<name>[A-Za-z_]\w*)\s*=\s*(?P<value>[^±+]+?)\s*(?:(?:±|\+-|\+/-)\s*(?P<sigma>\S+))?\s*$")


def parse_values(items: Iterable[str], wanted: Iterable[str] | None = None) -> dict[str, tuple[float, float]]:
    """``["strength=512±8", "porosity=0.03"]`` → ``{name: (value, sigma)}`` (σ 0 when not given; ``+-`` and
    ``+/-`` also accepted). ``wanted``: the valid names, named in the error for any other."""
    valid = list(wanted) if wanted is not None else None
    out: dict[str, tuple[float, float]] = {}
    problems: list[str] = []
    for item in items:
        m = _VALUE.match(item)
        if not m:
            problems.append(f"--value {item!r}: expected NAME=VALUE or NAME=VALUE±SIGMA")
            continue
        name = m["name"]
        try:
            value = float(m["value"])
            sigma = float(m["sigma"]) if m["sigma"] else 0.0
        except ValueError:
            problems.append(f"--value {item!r}: value and σ must be numbers")
            continue
        if not math.isfinite(value) or not math.isfinite(sigma) or sigma < 0:
            problems.append(f"--value {item!r}: value must be finite and σ finite and >= 0")
            continue
        if valid is not None and name not in valid:
            problems.append(f"--value {item!r}: {name!r} is not measured by this campaign; valid: {', '.join(valid)}")
            continue
        if name in out:
            problems.append(f"--value {item!r}: {name!r} given twice")
            continue
        out[name] = (value, sigma)
    if problems:
        raise ConfigError(problems)
    return out


def parse_assignments(items: Iterable[str], what: str = "--set") -> dict[str, str]:
    """``["x=1", "atmosphere=argon"]`` → ``{"x": "1", "atmosphere": "argon"}``; an item without ``=`` is an error."""
    out: dict[str, str] = {}
    problems = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            problems.append(f"{what} {item!r}: expected NAME=VALUE")
            continue
        out[name.strip()] = value.strip()
    if problems:
        raise ConfigError(problems)
    return out


__all__ = [
    "Approver",
    "Decision",
    "DecisionKind",
    "InvalidEdit",
    "ProposalInfo",
    "ScriptedApprover",
    "coerce_conditions",
    "edit_problems",
    "parse_assignments",
    "parse_values",
]
