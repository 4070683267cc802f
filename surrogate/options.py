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
