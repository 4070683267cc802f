"""Unit spellings that mean the same thing, so that a campaign written with ``µm`` matches an instrument's ``um``."""

from __future__ import annotations

_DIMENSIONLESS = {"", "1", "-", "fraction", "frac", "dimensionless"}
_SAME = {"µ": "u", "μ": "u", "°C": "degC", "℃": "degC", "·": "*", "⋅": "*", " ": "", "^": "", "**": ""}


def canonical(unit: str) -> str:
    """A normal form for comparison: dimensionless spellings → ``1``; µ/°/· variants → ASCII."""
    u = unit.strip()
    if u.lower() in _DIMENSIONLESS:
        return "1"
    for a, b in _SAME.items():
        u = u.replace(a, b)
    return u


def same_unit(a: str, b: str) -> bool:
    return canonical(a) == canonical(b)
