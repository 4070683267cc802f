"""Bayesian optimization earns its keep: at an equal budget of experiments, the direct-BoTorch strategy ends better
than scrambled Sobol search, on Hartmann-6 and on the simulated lab (the ceramic_pareto campaign), over a dozen or
more seeds and by a one-sided Wilcoxon signed-rank test paired by seed (a statistical statement, not one lucky seed).

Both strategies of a pair share the seed, so BoTorch's initial points are the first points of the very Sobol stream
the baseline walks (the strategy draws them from a `SobolStrategy` with the same seed; checked below), and the
measurement noise of the i-th experiment is the same random draw in both runs: the runs differ only in what the
model chose after the initial points. Proposals are asked one at a time and every result is told before the next ask.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from botorch.test_functions import Hartmann
from scipy.stats import wilcoxon

from agent.spec import load_spec
from instruments.base import Sample
from instruments.registry import InstrumentContext
from instruments.sim.characterizer import SimTester
from instruments.sim.seeding import rng_for
from instruments.sim.systems import porous_ceramic
from surrogate.base import ConditionValue, Observation
from surrogate.objectives import Goal, Objective
from surrogate.registry import make_strategy
from surrogate.space import FloatParameter, SearchSpace

#: quick acquisition settings (the defaults are 8 / 256 / 128); measured p-values below are with these
OPTIONS = {"num_restarts": 4, "raw_samples": 128, "mc_samples": 64}
CAMPAIGN = Path(__file__).resolve().parents[2] / "campaigns" / "ceramic_pareto.yaml"

Conditions = dict[str, ConditionValue]
#: runs one experiment: (index, conditions) -> (observation to tell, score of the experiment or None)
Experiment = Callable[[int, Conditions], tuple[Observation, Any]]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def campaign(
    name: str, space: SearchSpace, goal: Goal, seed: int, budget: int, experiment: Experiment, options: Any = None
) -> tuple[list[Conditions], list[Any], list[str]]:
    """``budget`` experiments proposed by strategy ``name``, one per ask; the conditions, the experiments' scores and
    the proposals' generators, in order."""
    strategy = make_strategy(name, space, goal, seed, options)
    conditions: list[Conditions] = []
    scores: list[Any] = []
    generators: list[str] = []
    for i in range(budget):
        (proposal,) = strategy.ask(1, [])
        observation, score = experiment(i, proposal.conditions)
        strategy.tell([observation])
        conditions.append(proposal.conditions)
        scores.append(score)
        generators.append(proposal.generator)
    return conditions, scores, generators


def paired_runs(
    space: SearchSpace,
    goal: Goal,
    budget: int,
    initial_points: int,
    experiment_for: Callable[[int], Experiment],
    summary: Callable[[list[Any]], float],
    seeds: range,
) -> tuple[list[float], list[float]]:
    """Per seed, the summary of a BoTorch run and of a Sobol run at the same budget."""
    bo: list[float] = []
    sobol: list[float] = []
    for seed in seeds:
        options = {**OPTIONS, "initial_points": initial_points}
        bo_x, bo_scores, generators = campaign("botorch", space, goal, seed, budget, experiment_for(seed), options)
        sobol_x, sobol_scores, _ = campaign("sobol", space, goal, seed, budget, experiment_for(seed))
        # the same scrambled Sobol points start both runs; after them, the model proposes
        assert bo_x[:initial_points] == sobol_x[:initial_points], seed
        assert all(g == "botorch:sobol" for g in generators[:initial_points]), generators
        assert all(g in ("botorch", "botorch:sobol-fill") for g in generators[initial_points:]), generators
        assert len({tuple(sorted(c.items())) for c in bo_x}) == budget  # never the same experiment twice
        bo.append(summary(bo_scores))
        sobol.append(summary(sobol_scores))
    return bo, sobol


# --- Hartmann-6 ------------------------------------------------------------------------------------------------


HARTMANN = Hartmann(dim=6, negate=True)  # maximum 3.32237 at (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)
HARTMANN_SIGMA = 0.01


def hartmann(c: Conditions) -> float:
    x = torch.tensor([[float(c[f"x{i}"]) for i in range(6)]], dtype=torch.float64)
    with torch.no_grad():
        return float(HARTMANN(x))


def test_bo_beats_sobol_on_hartmann6() -> None:
    space = SearchSpace(parameters=tuple(FloatParameter(name=f"x{i}", low=0.0, high=1.0, unit="1") for i in range(6)))
    goal = Goal(objectives=(Objective(name="f", direction="maximize", unit="1"),))

    def experiment_for(seed: int) -> Experiment:
        noise = np.random.default_rng(seed)

        def experiment(i: int, c: Conditions) -> tuple[Observation, float]:
            true = hartmann(c)
            measured = true + HARTMANN_SIGMA * float(noise.standard_normal())
            return Observation(c, {"f": (measured, HARTMANN_SIGMA)}), true

        return experiment

    # 25 evaluations each, the first 8 shared Sobol points. Measured (seeds 0-11, about 40 s on one core): median
    # best true value BO 2.94 vs Sobol 1.50 (optimum 3.32), BO ahead on all 12 seeds, one-sided Wilcoxon
    # p = 0.00024 (the smallest possible with 12 pairs); seeds 0-19: 20 of 20, p = 9.5e-7. With the strategy's
    # earlier per-call seeding (before commit a944fdb) 10 of 12, p = 0.0012: p < 0.01 holds with margin either way.
    bo, sobol = paired_runs(
        space, goal, budget=25, initial_points=8, experiment_for=experiment_for, summary=max, seeds=range(12)
    )
    p = wilcoxon(bo, sobol, alternative="greater").pvalue
    message = f"BO {np.round(bo, 3).tolist()} vs Sobol {np.round(sobol, 3).tolist()}: p = {p:.3g}"
    assert p < 0.01, message
    assert np.median(bo) > np.median(sobol) + 0.5, message


# --- the simulated lab: the ceramic_pareto campaign on the porous ceramic ----------------------------------------

#: the tester measures strength and conductivity; the porosity of the outcome constraint comes from the micrographs
#: in a real campaign, here from the true porosity with this absolute σ (the SEM and imaging are far too slow here)
POROSITY_SIGMA = 0.005
TRUE_PROPERTIES = ("flexural_strength", "thermal_conductivity", "porosity")


def ceramic_experiment_for(seed: int) -> Experiment:
    """The furnace's physics (process scatter, failures) and the campaign's tester (Weibull strength, 4 % Gaussian
    conductivity, rare outliers), called directly; scored by the noise-free properties at the requested conditions,
    or None for a failed sample."""
    tester = SimTester(context=InstrumentContext(seed=seed, workdir=Path(".")), system="porous_ceramic", duration_h=0.0)
    system = porous_ceramic.SYSTEM

    def experiment(i: int, c: Conditions) -> tuple[Observation, dict[str, float] | None]:
        rng = rng_for(seed, i, "sample")
        made = system.outcome(c, rng)
        if made.failure is not None:
            return Observation(c, {}, failed=True, reason=made.failure.reason), None
        sample = Sample(sample_id=f"s{i}", key=f"k{i}", conditions=c, duration_s=0.0, truth=made.truth)
        values = {m.name: (m.value, m.sigma) for m in asyncio.run(tester.measure(sample))}
        porosity = float(made.truth["porosity"]) + POROSITY_SIGMA * float(rng.standard_normal())
        values["porosity"] = (porosity, POROSITY_SIGMA)
        true = porous_ceramic.model(**c)
        return Observation(c, values), {k: float(true[k]) for k in TRUE_PROPERTIES}

    return experiment


def hypervolume_2d(points: list[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by ``points`` (both maximized) above ``reference``."""
    inside = sorted(
        ((a - reference[0], b - reference[1]) for a, b in points if a > reference[0] and b > reference[1]), reverse=True
    )
    area, height = 0.0, 0.0
    for width, h in inside:  # by decreasing first objective: each point adds the strip above the previous ones
        if h > height:
            area += width * (h - height)
            height = h
    return area


def test_hypervolume_2d() -> None:
    assert hypervolume_2d([], (0, 0)) == 0.0
    assert hypervolume_2d([(2, 1), (1, 2), (0.5, 0.5), (-1, 5)], (0, 0)) == pytest.approx(3.0)


@pytest.mark.slow
def test_bo_beats_sobol_on_the_simulated_ceramic_lab() -> None:
    spec, _ = load_spec(CAMPAIGN)
    goal = Goal(objectives=spec.objectives, outcome_constraints=spec.outcome_constraints)
    (strength, conductivity) = spec.objectives
    (porosity,) = spec.outcome_constraints
    assert (strength.name, conductivity.name, porosity.name) == TRUE_PROPERTIES
    reference = (float(strength.threshold), float(conductivity.threshold))  # type: ignore[arg-type]

    def summary(scores: list[dict[str, float] | None]) -> float:
        """Two objectives: the hypervolume above the campaign's thresholds of the true properties of the samples that
        survived and truly meet the porosity limit (the two-objective form of "the best true objective")."""
        ok = [s for s in scores if s is not None and porosity.satisfied(s["porosity"])]
        return hypervolume_2d([(s["flexural_strength"], s["thermal_conductivity"]) for s in ok], reference)

    # 20 experiments each, the first 6 shared Sobol points, 12 seeds (about 2.5 minutes on one core). Measured on seeds
    # 0-19: median hypervolume BO 1851 vs Sobol 1644 MPa·W/(m·K), BO ahead on 17 of 20 seeds, one-sided Wilcoxon
    # p = 3.1e-5; on the 12 seeds kept here (to hold the suite's time): 10 of 12 ahead, p = 0.0017, medians 264 apart.
    # Before failed samples entered the objective models (impute_failures) and the failure classifier got a label
    # noise, 20 seeds gave 1735 vs 1644, 13 of 20, p = 0.062: runs spent most model-chosen experiments on cracked
    # samples.
    bo, sobol = paired_runs(
        spec.space,
        goal,
        budget=20,
        initial_points=6,
        experiment_for=ceramic_experiment_for,
        summary=summary,
        seeds=range(12),
    )
    p = wilcoxon(bo, sobol, alternative="greater").pvalue
    message = f"BO {np.round(bo).tolist()} vs Sobol {np.round(sobol).tolist()}: p = {p:.3g}"
    assert p < 0.01, message
    assert np.median(bo) > np.median(sobol) + 100, message
