"""``matloop run --dry-run``: what the next batch would send to the hardware, without sending or recording it.

The lab is built (drivers are configured, nothing is contacted), the strategy is told what the store already
holds (warm start, finished experiments) and asked for one batch; each request is checked against the space and
the drivers' hard limits and shown as the driver would put it on the wire (tokens redacted by the driver).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.assemble import build_lab, build_strategy
from agent.campaign import Campaign
from agent.lab import Lab
from agent.safety import request_problems
from agent.spec import CampaignSpec
from agent.warmstart import load_warm_start
from instruments.base import SynthesisRequest, WireDescriber
from surrogate.base import Proposal

log = logging.getLogger("matloop.dryrun")


@dataclass(frozen=True)
class DryRequest:
    """One request that would be sent: the conditions, where from, the wire form, and why it would be refused."""

    conditions: dict[str, Any]
    generator: str
    wire: Mapping[str, Any] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)


def dry_run(campaign: Campaign, n: int | None = None) -> list[DryRequest]:
    """The next ``n`` requests (default: one per lane) for ``campaign``; nothing is sent and nothing is recorded."""
    spec = campaign.spec
    lab = build_lab(spec, campaign.location.workdir)
    strategy = build_strategy(spec)
    prior = load_warm_start(spec, campaign.store, Path(campaign.source).parent)
    told = list(prior.observations) if prior is not None else []
    if campaign.row is not None:
        told += campaign.observations()
    if told:
        strategy.tell(told)
    try:
        return _describe(spec, lab, strategy.ask(n or spec.budget.lanes, []))
    finally:
        asyncio.run(lab.aclose())  # nothing was contacted, but drivers may hold clients from their construction


def _describe(spec: CampaignSpec, lab: Lab, proposals: Sequence[Proposal]) -> list[DryRequest]:
    out = []
    for i, p in enumerate(proposals):
        conditions = dict(p.conditions)
        refused = spec.space.check(conditions) + request_problems(lab, conditions)
        request = SynthesisRequest(key=f"dry-run-{i + 1}", conditions=conditions, campaign=spec.name)
        synth = lab.synthesizer
        wire = dict(synth.wire_request(request)) if isinstance(synth, WireDescriber) else {"conditions": conditions}
        item = DryRequest(conditions, p.generator, wire, refused)
        log.info("dry run: would send %s%s", wire, f" (refused: {'; '.join(refused)})" if refused else "")
        out.append(item)
    return out
