"""Finds instruments by name: entry points in the group ``matloop.instruments``, from any installed package.

An instrument class is built as ``cls(**options, context=context)``; it may declare
``outputs(options) -> dict[name, unit]`` (a classmethod) so that a campaign can be checked before it runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from instruments.base import Characterizer, Imager, Synthesizer

GROUP = "matloop.instruments"
ROLES: dict[str, type] = {"synthesizer": Synthesizer, "imager": Imager, "characterizer": Characterizer}


class InstrumentSpecError(ValueError):
    """An instrument named in a campaign cannot be found or built; the message says what would be valid."""


class InstrumentContext(BaseModel):
    """What the agent tells an instrument about where it runs: seed and a folder for its files."""

    model_config = ConfigDict(frozen=True)
    seed: int
    workdir: Path
    campaign: str = ""


def available() -> dict[str, str]:
    """Registered instrument names and the object each points to."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def instrument_class(name: str) -> Any:
    eps = {ep.name: ep for ep in entry_points(group=GROUP)}
    if name not in eps:
        valid = ", ".join(sorted(eps)) or "(none installed)"
        raise InstrumentSpecError(f"unknown instrument {name!r}; installed instruments: {valid}")
    return eps[name].load()


def instrument_outputs(name: str, options: Mapping[str, Any]) -> dict[str, str]:
    """Measurement names (with units) the instrument produces with these options; empty if it does not say."""
    cls = instrument_class(name)
    outputs = getattr(cls, "outputs", None)
    return dict(outputs(dict(options))) if callable(outputs) else {}


def validate_options(name: str, options: Mapping[str, Any]) -> None:
    """Checks options without building the instrument (no connection, no files) when the class can."""
    cls = instrument_class(name)
    check = getattr(cls, "validate_options", None)
    if callable(check):
        try:
            check(dict(options))
        except (ValueError, TypeError) as exc:
            raise InstrumentSpecError(f"instrument {name!r}: {exc}") from exc


def load_instrument(name: str, role: str, options: Mapping[str, Any], context: InstrumentContext) -> Any:
    """Builds the named instrument and checks that it speaks the protocol of ``role``."""
    if role not in ROLES:
        raise InstrumentSpecError(f"unknown instrument role {role!r}; valid roles: {', '.join(ROLES)}")
    cls = instrument_class(name)
    try:
        inst = cls(**dict(options), context=context)
    except (TypeError, ValueError) as exc:
        raise InstrumentSpecError(f"instrument {name!r} rejected its options: {exc}") from exc
    if not isinstance(inst, ROLES[role]):
        raise InstrumentSpecError(f"instrument {name!r} does not implement the {role} protocol")
    return inst
