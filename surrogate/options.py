"""Options of the built-in strategies: frozen pydantic models that reject unknown fields, kept apart from
the strategies so that a campaign file is validated without importing Ax or torch."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StrategyOptions(BaseModel):
    """Base of strategy options: frozen, unknown fields are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class RandomOptions(StrategyOptions):
    """Uniform random search. ``max_draws``: cube points tried per ask before giving up on a feasible
    region too small for rejection sampling."""

    max_draws: int = Field(default=100_000, ge=1)


class SobolOptions(StrategyOptions):
    """Scrambled Sobol search; ``max_draws`` as for random search."""

    max_draws: int = Field(default=100_000, ge=1)


class AxOptions(StrategyOptions):
    """Ax's Center + Sobol + BoTorch generation strategy.

    ``initial_points``: quasi-random points (the centre included) before Bayesian optimization; None
    keeps Ax's default (5). ``method``: "fast" (Ax's modular BoTorch defaults) or "quality" (SAAS with
    input warping: slower, for many inputs and few points). ``log_level``: the level of Ax's own loggers
    (Ax logs every trial at INFO)."""

    initial_points: int | None = Field(default=None, ge=0)
    method: Literal["fast", "quality"] = "fast"
    initialize_with_center: bool = True
    torch_device: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"


class BotorchOptions(StrategyOptions):
    """Direct BoTorch: a GP per metric, qLogNoisyExpectedImprovement for one objective and
    qLogNoisyExpectedHypervolumeImprovement for several, outcome constraints and learned feasibility as smoothed
    constraints, pending points as ``X_pending``.

    ``initial_points``: scrambled Sobol points before the first model (at least two successes are needed to fit).
    ``model``: ``gp`` (maximum-likelihood hyperparameters) or ``saas`` (fully Bayesian, sparse axis-aligned subspace
    priors sampled with Pyro NUTS: for many inputs and few points; slower). ``noise``: ``known`` uses each
    measurement's σ as its noise (heteroscedastic), ``inferred`` learns one level, ``auto`` is ``known`` when every
    point has a positive σ. ``feasibility``: learn where experiments fail and steer away. ``impute_failures``: a
    failed experiment also enters each objective's model at the worst value observed so far, so that the model itself
    stops promising improvement where samples fail (the classifier alone only down-weights it). ``cost_aware``:
    divide the acquisition by the predicted duration raised to ``cost_exponent`` (needs instrument durations).
    ``num_restarts``/``raw_samples``: acquisition optimizer starts; ``mc_samples``: quasi-MC samples of the
    posterior. ``fit_points``: hyperparameters are fitted on at most this many points (the best and a spread of the
    rest) and the model then conditions on all of them, which keeps proposals fast at thousands of points."""

    initial_points: int = Field(default=5, ge=1, le=10_000)
    model: Literal["gp", "saas"] = "gp"
    noise: Literal["auto", "known", "inferred"] = "auto"
    feasibility: bool = True
    impute_failures: bool = True
    cost_aware: bool = False
    cost_exponent: float = Field(default=1.0, gt=0.0, le=2.0)
    num_restarts: int = Field(default=8, ge=1, le=256)
    raw_samples: int = Field(default=256, ge=8, le=65_536)
    mc_samples: int = Field(default=128, ge=16, le=4096)
    fit_points: int = Field(default=300, ge=10)
    saas_warmup: int = Field(default=256, ge=8)
    saas_samples: int = Field(default=256, ge=8)
    saas_thinning: int = Field(default=16, ge=1)
