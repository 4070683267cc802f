"""Builds a campaign's lab and strategy from its spec, through the plug-in registries."""

from __future__ import annotations

from pathlib import Path

from agent.lab import Lab
from agent.safety import check_space_fits
from agent.spec import CampaignSpec
from imaging.registry import make_analyzer
from instruments.registry import InstrumentContext, load_instrument
from surrogate.base import Strategy
from surrogate.objectives import Goal
from surrogate.registry import make_strategy


def build_lab(spec: CampaignSpec, workdir: Path) -> Lab:
    ctx = InstrumentContext(seed=spec.seed, workdir=workdir, campaign=spec.name)
    workdir.mkdir(parents=True, exist_ok=True)
    inst = spec.instruments
    lab = Lab(
        synthesizer=load_instrument(inst.synthesizer.type, "synthesizer", inst.synthesizer.options, ctx),
        imager=load_instrument(inst.imager.type, "imager", inst.imager.options, ctx) if inst.imager else None,
        characterizer=(
            load_instrument(inst.characterizer.type, "characterizer", inst.characterizer.options, ctx)
            if inst.characterizer
            else None
        ),
        analyzer=make_analyzer(spec.imaging.pipeline, spec.imaging.options) if spec.imaging else None,
        overlays=spec.imaging.overlays if spec.imaging else False,
    )
    check_space_fits(spec.space, lab, spec.name)
    return lab


def build_strategy(spec: CampaignSpec) -> Strategy:
    goal = Goal(objectives=spec.objectives, outcome_constraints=spec.outcome_constraints)
    return make_strategy(spec.strategy.name, spec.space, goal, spec.seed, dict(spec.strategy.options))
