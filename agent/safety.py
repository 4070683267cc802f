"""The agent's side of hardware safety: a campaign whose space reaches past a driver's hard limits is refused
before it starts, and every request (proposed or edited by a person) is checked again before it is sent.

The driver checks once more on its side (``instruments.safety``); two checks, so that neither a strategy bug nor a
driver bug alone can send a furnace to 2000 °C.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.errors import ConfigError
from agent.lab import Lab
from agent.units import same_unit
from instruments.base import ConditionValue
from instruments.safety import HardLimit, HardLimits, limits_of
from surrogate.space import CategoricalParameter, CompositionParameter, SearchSpace

# an input's reach in the space: (low, high, unit) or the tuple of its choices
Reach = tuple[float, float, str] | tuple[str, ...]


def _reach(space: SearchSpace) -> dict[str, Reach]:
    out: dict[str, Reach] = {}
    for p in space.parameters:
        if isinstance(p, CategoricalParameter):
            out[p.name] = tuple(str(c) for c in p.choices)
        elif isinstance(p, CompositionParameter):
            out.update({c.name: (c.low, c.high, p.unit) for c in p.components})
        else:
            out[p.name] = (float(p.low), float(p.high), p.unit)
    return out


def _limit_problems(name: str, reach: Reach, limit: HardLimit) -> list[str]:
    if limit.choices is not None:
        if len(reach) == 3 and not isinstance(reach[0], str):
            return [f"{name}: the driver allows only the choices {list(limit.choices)}, the space makes it numeric"]
        extra = [c for c in reach if str(c) not in limit.choices]
        allowed = list(limit.choices)
        return [f"{name}: choices {extra} are not allowed by the driver (allowed: {allowed})"] if extra else []
    if isinstance(reach[0], str):
        return [f"{name}: the driver limits it as a number {limit.describe()}, the space makes it categorical"]
    low, high, unit = reach  # type: ignore[misc]
    assert limit.unit is not None
    if not same_unit(str(unit), limit.unit):
        return [f"{name}: the space is in {unit!r}, the driver's hard limit in {limit.unit!r}; write both in one unit"]
    problems = []
    if limit.low is not None and float(low) < limit.low:
        problems.append(f"{name}: the space goes down to {float(low):g} {unit}, below the limit {limit.describe()}")
    if limit.high is not None and float(high) > limit.high:
        problems.append(f"{name}: the space goes up to {float(high):g} {unit}, above the limit {limit.describe()}")
    return problems


def space_problems(space: SearchSpace, limits: HardLimits) -> list[str]:
    """Where the campaign's space reaches past the limits (empty when every point of the space is safe)."""
    reach = _reach(space)
    out = [p for name, lim in limits.limits.items() if name in reach for p in _limit_problems(name, reach[name], lim)]
    if limits.require_all:
        out += [f"{name}: the driver declares no hard limit for it" for name in reach if name not in limits.limits]
    return out


def lab_limits(lab: Lab) -> dict[str, HardLimits]:
    """Declared hard limits of the lab's instruments, by role (only those that declare some)."""
    parts = {"synthesizer": lab.synthesizer, "imager": lab.imager, "characterizer": lab.characterizer}
    return {role: lim for role, inst in parts.items() if inst is not None and (lim := limits_of(inst)) is not None}


def check_space_fits(space: SearchSpace, lab: Lab, source: str = "campaign") -> None:
    """Raises ``ConfigError`` naming each input whose range in the space is outside a driver's hard limits."""
    problems = [
        f"{source}: space reaches past the {role}'s hard limits: {p}"
        for role, lim in lab_limits(lab).items()
        for p in space_problems(space, lim)
    ]
    if problems:
        raise ConfigError(problems)


def request_problems(lab: Lab, conditions: Mapping[str, ConditionValue]) -> list[str]:
    """Why these conditions must not be sent to the lab's synthesizer (empty when they are inside its limits)."""
    lim = limits_of(lab.synthesizer)
    return lim.problems(conditions) if lim is not None else []
