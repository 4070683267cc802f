"""What a campaign has found so far: feasible experiments, best-so-far, the Pareto front."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent.spec import CampaignSpec

Values = Mapping[str, tuple[float, float]]  # name -> (value, sigma)


@dataclass(frozen=True)
class Scored:
    index: int
    values: Values
    feasible: bool
    scores: tuple[float, ...]  # one per objective, larger is better


def score(spec: CampaignSpec, index: int, values: Values) -> Scored | None:
    """Scores one completed experiment; None if an objective was not measured."""
    if any(o.name not in values for o in spec.objectives):
        return None
    feasible = all(c.name in values and c.satisfied(values[c.name][0]) for c in spec.outcome_constraints)
    return Scored(index, values, feasible, tuple(o.score(values[o.name][0]) for o in spec.objectives))


def best(spec: CampaignSpec, scored: Sequence[Scored]) -> list[Scored]:
    """Single objective: feasible experiments best first. Several: the feasible Pareto front."""
    pool = [s for s in scored if s.feasible]
    if len(spec.objectives) == 1:
        return sorted(pool, key=lambda s: (-s.scores[0], s.index))
    front = [s for s in pool if not any(_dominates(o.scores, s.scores) for o in pool if o is not s)]
    return sorted(front, key=lambda s: s.index)


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(x > y for x, y in zip(a, b, strict=True))


def target_reached(spec: CampaignSpec, s: Scored) -> bool:
    """True when ``s`` is feasible and meets every ``stopping.target`` (for ``target`` objectives the value is
    the tolerance on |value − target|)."""
    targets = spec.stopping.target
    if not targets or not s.feasible:
        return False
    for obj in spec.objectives:
        if obj.name not in targets:
            continue
        v, goal = s.values[obj.name][0], targets[obj.name]
        ok = {
            "maximize": v >= goal,
            "minimize": v <= goal,
            "target": obj.target is not None and abs(v - obj.target) <= goal,
        }[obj.direction]
        if not ok:
            return False
    return True


def stale_for(spec: CampaignSpec, scored_in_order: Sequence[Scored]) -> int:
    """Completed experiments since the single objective last improved by more than ``min_delta``."""
    rule = spec.stopping.no_improvement
    delta = rule.min_delta if rule else 0.0
    best_score: float | None = None
    since = 0
    for s in scored_in_order:
        if s.feasible and (best_score is None or s.scores[0] > best_score + delta):
            best_score, since = s.scores[0], 0
        else:
            since += 1
    return since
