"""Why an experiment was run: what the model believed when it proposed it (predicted mean and σ per
objective, acquisition value, length scales, feasibility), what was then measured, and what people did.

Strategies put their beliefs in ``Proposal.predictions``, ``acquisition_value`` and ``model_state``; the
loop stores them with the experiment. Keys read from ``model_state``: ``model``, ``acquisition``,
``lengthscales`` ``{input: float}``, ``relevance`` ``{input: float}``, ``feasibility`` (probability that
the point is feasible). Random and Sobol proposals have none of them: "no model".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.spec import CampaignSpec
from agent.store import Event, Experiment, Measurement

_SHOWN_KEYS = {"predictions", "acquisition_value", "lengthscales", "relevance", "feasibility", "model", "acquisition"}


@dataclass(frozen=True)
class HumanAction:
    """One thing a person did to this experiment (approve, edit, veto, enter a result)."""

    kind: str
    who: str
    when: datetime
    detail: dict[str, Any]


@dataclass(frozen=True)
class Explanation:
    index: int
    state: str
    generator: str
    conditions: dict[str, Any]
    original_conditions: dict[str, Any] | None  # before a person edited them
    predictions: dict[str, tuple[float, float]]  # objective -> (mean, sigma) when proposed
    measured: dict[str, tuple[float, float, str]]  # name -> (value, sigma, unit)
    acquisition_value: float | None
    acquisition: str
    model: str
    lengthscales: list[tuple[str, float]]  # shortest (most influential) first
    relevance: list[tuple[str, float]]  # largest first
    feasibility: float | None
    failure: str
    other_state: dict[str, Any] = field(default_factory=dict)  # the rest of model_state (e.g. Ax trial)
    actions: list[HumanAction] = field(default_factory=list)

    @property
    def has_model(self) -> bool:
        return bool(self.predictions or self.lengthscales or self.acquisition_value is not None or self.model)


def _floats(d: Any) -> dict[str, float]:
    if not isinstance(d, Mapping):
        return {}
    out = {}
    for k, v in d.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out[str(k)] = f
    return out


def _opt_float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def explain(
    spec: CampaignSpec, exp: Experiment, measurements: Sequence[Measurement], events: Sequence[Event]
) -> Explanation:
    """The explanation of one stored experiment (model beliefs from ``exp.model_state``, people from ``events``)."""
    ms: dict[str, Any] = dict(exp.model_state or {})
    preds: dict[str, tuple[float, float]] = {}
    for name, v in (ms.get("predictions") or {}).items():
        try:
            preds[str(name)] = (float(v[0]), float(v[1]))
        except (TypeError, ValueError, IndexError):
            continue
    actions = [
        HumanAction(
            kind=e.kind
            if e.kind != "transition"
            else (
                f"result entered ({e.to_state})"
                if e.payload.get("manual")
                else f"{e.payload.get('decision', 'moved')} → {e.to_state}"
            ),
            who=e.actor,
            when=e.ts,
            detail=dict(e.payload),
        )
        for e in events
        if e.actor != "agent"
    ]
    original = next((dict(e.payload.get("original", {})) for e in events if e.kind == "edit"), None)
    ls = _floats(ms.get("lengthscales"))
    rel = _floats(ms.get("relevance"))
    failure = f"{exp.failure_code}: {exp.failure_reason}" if exp.failure_code else ""
    return Explanation(
        index=exp.index,
        state=exp.state,
        generator=exp.generator,
        conditions=dict(exp.conditions),
        original_conditions=original,
        predictions=preds,
        measured={m.name: (m.value, m.sigma, m.unit) for m in measurements},
        acquisition_value=_opt_float(ms.get("acquisition_value")),
        acquisition=str(ms.get("acquisition") or ""),
        model=str(ms.get("model") or ""),
        lengthscales=sorted(ls.items(), key=lambda kv: kv[1]),
        relevance=sorted(rel.items(), key=lambda kv: -kv[1]),
        feasibility=_opt_float(ms.get("feasibility")),
        failure=failure,
        other_state={k: v for k, v in ms.items() if k not in _SHOWN_KEYS},
        actions=actions,
    )


__all__ = ["Explanation", "HumanAction", "explain"]
