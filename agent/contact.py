"""First contact with a campaign's instruments before it starts: build each one, ping it, report its state and
its hard limits. Building the lab also checks that the campaign's space lies inside those limits."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from agent.assemble import build_lab
from agent.errors import MatloopError
from agent.lab import Lab
from agent.spec import CampaignSpec
from instruments.base import Health, Pingable
from instruments.safety import limits_of


class InstrumentsNotReady(MatloopError):
    """An instrument did not answer its first contact, or answered that it is not ready."""


@dataclass(frozen=True)
class ContactReport:
    """One instrument's answer. ``ok`` is None when the driver has no way to be pinged."""

    role: str
    type: str
    ok: bool | None
    state: str
    detail: str
    limits: str


async def _ping(inst: object, timeout_s: float) -> Health | None:
    if not isinstance(inst, Pingable):
        return None
    try:
        return await asyncio.wait_for(inst.ping(), timeout_s)
    except TimeoutError:
        return Health(False, "unreachable", f"no answer within {timeout_s:g} s")
    except Exception as exc:  # any driver failure is a finding of the check, not a crash of it
        return Health(False, "error", f"{type(exc).__name__}: {exc}")


async def first_contact(spec: CampaignSpec, workdir: Path, timeout_s: float = 10.0) -> list[ContactReport]:
    """Builds the campaign's lab and pings every instrument concurrently; nothing is made or measured."""
    lab = build_lab(spec, workdir)
    try:
        return await contact(lab, spec, timeout_s)
    finally:
        await lab.aclose()


async def contact(lab: Lab, spec: CampaignSpec, timeout_s: float = 10.0) -> list[ContactReport]:
    """Pings every instrument of ``lab`` concurrently and reports each one's state and hard limits."""
    refs = {"synthesizer": spec.instruments.synthesizer, "imager": spec.instruments.imager}
    refs["characterizer"] = spec.instruments.characterizer
    parts = {"synthesizer": lab.synthesizer, "imager": lab.imager, "characterizer": lab.characterizer}
    roles = [r for r, inst in parts.items() if inst is not None]
    answers = await asyncio.gather(*(_ping(parts[r], timeout_s) for r in roles))
    reports = []
    for role, health in zip(roles, answers, strict=True):
        ref = refs[role]
        name = ref.type if ref is not None else type(parts[role]).__name__
        limits = limits_of(parts[role])
        described = (
            ", ".join(f"{k} {v.describe()}" for k, v in limits.limits.items())
            if limits is not None and limits.limits
            else "none declared"
        )
        if health is None:
            reports.append(ContactReport(role, name, None, "-", "the driver has no ping", described))
        else:
            detail = health.detail + ("; " if health.detail and health.info else "")
            detail += ", ".join(f"{k}={v}" for k, v in health.info.items())
            reports.append(ContactReport(role, name, health.ok, health.state, detail, described))
    return reports


async def require_ready(lab: Lab, spec: CampaignSpec, timeout_s: float = 10.0) -> list[ContactReport]:
    """First contact before a campaign starts: raises ``InstrumentsNotReady`` naming each instrument that is
    unreachable or not ready (instruments without a ping are not held against the campaign)."""
    reports = await contact(lab, spec, timeout_s)
    bad = [r for r in reports if r.ok is False]
    if bad:
        raise InstrumentsNotReady(
            "first contact failed, nothing was started or recorded: "
            + "; ".join(f"{r.role} {r.type}: {r.state}" + (f" ({r.detail})" if r.detail else "") for r in bad)
            + " — fix the instrument, or pass --no-check to start anyway"
        )
    return reports
