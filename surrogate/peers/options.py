"""Options of the peer strategies: frozen pydantic models that reject unknown fields, importable without torch (the
strategy registry reads them to validate a campaign)."""

from __future__ import annotations

from pydantic import Field

from surrogate.options import AxOptions, StrategyOptions

#: UCB's ``beta`` (the posterior σ is weighted by ``sqrt(beta)``): 2.0, BoTorch's closed-loop and UCB tutorials' value,
#: about the 0.92 one-sided normal quantile, a common lab choice that neither explores wildly nor greedily
DEFAULT_BETA = 2.0


class PlainLogEIOptions(StrategyOptions):
    """Plain BoTorch with (q)LogExpectedImprovement over the continuous space. ``num_restarts`` and ``raw_samples``:
    `optimize_acqf`'s starts (10 and 512, the tutorials' values); ``mc_samples``: quasi-MC samples of the q-version
    (batches and pending points)."""

    num_restarts: int = Field(default=10, ge=1, le=256)
    raw_samples: int = Field(default=512, ge=8, le=65_536)
    mc_samples: int = Field(default=128, ge=16, le=4096)


class PlainUCBOptions(PlainLogEIOptions):
    """Plain BoTorch with (q)UpperConfidenceBound; ``beta`` weights the posterior σ by ``sqrt(beta)``."""

    beta: float = Field(default=DEFAULT_BETA, gt=0.0, le=1000.0)


class PoolPlainLogEIOptions(StrategyOptions):
    """Plain BoTorch LogEI evaluated on every remaining pool candidate. ``chunk_size``: candidates per batched
    evaluation; ``mc_samples``: quasi-MC samples of the q-version (batches and pending points)."""

    chunk_size: int = Field(default=1024, ge=1, le=65_536)
    mc_samples: int = Field(default=128, ge=16, le=4096)


class PoolPlainUCBOptions(PoolPlainLogEIOptions):
    """Plain BoTorch UCB on every remaining pool candidate; ``beta`` as for the continuous peer."""

    beta: float = Field(default=DEFAULT_BETA, gt=0.0, le=1000.0)


class AxPoolOptions(AxOptions):
    """Ax's default generation strategy on a pool, with the ``ax`` strategy's options (`surrogate.peers.ax_pool`)."""


class BaybeOptions(StrategyOptions):
    """BayBE's default recommender (``TwoPhaseMetaRecommender``: random, then ``BotorchRecommender`` once there is
    one measurement), used as BayBE ships it: no options."""
