"""Simulated material systems, chosen by the instruments' ``system`` option."""

from __future__ import annotations

from instruments.sim.systems import porous_ceramic, two_phase_alloy
from instruments.sim.systems.base import Failure, InputSpec, MaterialSystem, Optimum, Outcome, condition_problems

SYSTEMS: dict[str, MaterialSystem] = {s.name: s for s in (two_phase_alloy.SYSTEM, porous_ceramic.SYSTEM)}


def get_system(name: str) -> MaterialSystem:
    """The system called ``name``; ValueError naming the valid ones otherwise."""
    try:
        return SYSTEMS[name]
    except KeyError:
        raise ValueError(f"unknown material system {name!r}; valid systems: {', '.join(SYSTEMS)}") from None


__all__ = [
    "SYSTEMS",
    "Failure",
    "InputSpec",
    "MaterialSystem",
    "Optimum",
    "Outcome",
    "condition_problems",
    "get_system",
]
