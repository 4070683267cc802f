"""A CNN that regresses scalar properties of a micrograph with uncertainty.

Each member has a heteroscedastic Gaussian head (mean and log-variance per target: the aleatoric σ); an ensemble of
``ensemble`` independently initialized members and/or Monte-Carlo dropout gives the epistemic σ. Predictive variance
= mean of the members' (and MC passes') variances + variance of their means. Everything here is in standardized
target units; ``imaging.properties`` converts to physical units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from imaging.models.classifier import Encoder, enable_mc_dropout
from imaging.models.unet import Norm

LOGVAR_MIN, LOGVAR_MAX = -12.0, 6.0


class GaussianRegressor(nn.Module):
    """One member. x: (B, C_in, H, W) → (mean (B, T), log-variance (B, T))."""

    def __init__(self, in_channels: int, n_targets: int, base_channels: int, depth: int, dropout: float, norm: Norm):
        super().__init__()
        self.encoder = Encoder(in_channels, base_channels, depth, dropout, norm)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(self.encoder.out_channels, 2 * n_targets)
        self.n_targets = n_targets

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.head(self.drop(self.encoder(x)))
        mean, logvar = out[:, : self.n_targets], out[:, self.n_targets :]
        return mean, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)


class RegressorEnsemble(nn.Module):
    """``ensemble`` members. x → (means (M, B, T), log-variances (M, B, T))."""

    def __init__(self, members: list[GaussianRegressor]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        outs = [m(x) for m in self.members]
        return torch.stack([o[0] for o in outs]), torch.stack([o[1] for o in outs])


class RegressorConfig(BaseModel):
    """Architecture of a ``RegressorEnsemble``, stored in its checkpoint; ``build()`` makes a fresh one."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["cnn_regressor"] = "cnn_regressor"
    version: Literal[1] = 1
    in_channels: int = Field(default=1, ge=1)
    n_targets: int = Field(default=1, ge=1)
    base_channels: int = Field(default=16, ge=1)
    depth: int = Field(default=4, ge=1, le=8)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    norm: Literal["batch", "group"] = "batch"
    ensemble: int = Field(default=1, ge=1, le=16, description="independently initialized members (deep ensemble)")

    @property
    def min_size(self) -> int:
        return int(2 ** (self.depth - 1))

    def build(self) -> RegressorEnsemble:
        return RegressorEnsemble(
            [
                GaussianRegressor(
                    self.in_channels, self.n_targets, self.base_channels, self.depth, self.dropout, self.norm
                )
                for _ in range(self.ensemble)
            ]
        )


@dataclass(frozen=True)
class GaussianPrediction:
    """Predictive mean and variances, each (B, T), in standardized units; ``total`` = aleatoric + epistemic."""

    mean: Tensor
    aleatoric: Tensor
    epistemic: Tensor

    @property
    def total(self) -> Tensor:
        return self.aleatoric + self.epistemic


def combine(means: Tensor, logvars: Tensor) -> GaussianPrediction:
    """Mixture moments of S Gaussian samples (S, B, T): mean of means, mean variance, variance of the means."""
    mean = means.mean(0)
    epistemic = means.var(0, unbiased=False) if means.shape[0] > 1 else torch.zeros_like(mean)
    return GaussianPrediction(mean, logvars.exp().mean(0), epistemic)


def predict_gaussian(model: RegressorEnsemble, x: Tensor, mc_samples: int = 0) -> GaussianPrediction:
    """Every member's prediction (with ``mc_samples`` > 0: that many dropout passes each), combined by ``combine``.
    Leaves the model in eval mode."""
    if mc_samples > 0:
        enable_mc_dropout(model)
        outs = [model(x) for _ in range(mc_samples)]
        means, logvars = torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
    else:
        model.eval()
        means, logvars = model(x)
    prediction = combine(means, logvars)
    model.eval()
    return prediction


def gaussian_nll(mean: Tensor, logvar: Tensor, target: Tensor) -> Tensor:
    """Mean Gaussian negative log-likelihood without the constant, ½(log σ² + (y − μ)²/σ²)."""
    return 0.5 * (logvar + (target - mean) ** 2 * torch.exp(-logvar)).mean()
