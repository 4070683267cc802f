"""The Gaussian-process models of the direct BoTorch strategy, one per measured metric, plus the two that
steer the acquisition: a feasibility model learned from failed experiments and a cost model learned from
instrument durations. All are BoTorch models on the columns of `BotorchSpace` (double precision).

* Metric models: `SingleTaskGP` (`MixedSingleTaskGP` when there are categorical columns) with BoTorch's
  default priors; outputs standardized. With ``noise="known"`` each point's σ² enters as its own noise
  variance (heteroscedastic: a blurry micrograph's large σ counts less); with ``"inferred"`` one noise level
  is learned. ``"auto"`` uses the known σ when every point has a positive one.
* Feasibility: least-squares GP classification (Rasmussen & Williams 2006, §6.5): a GP regression on the
  failure indicator (1 failed, 0 made), with its noise learned. Its posterior enters the acquisition as the
  outcome constraint ``indicator <= 1/2``, which qLogNEI and qLogNEHVI weight smoothly, so the acquisition falls
  where samples melted, cracked or failed to sinter.
* Cost: a GP on log duration; the acquisition is divided by the predicted duration (expected improvement per
  unit of lab time, Snoek et al. 2012)."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Sequence
from typing import Literal

import torch
from botorch.exceptions.warnings import OptimizationWarning
from botorch.fit import fit_gpytorch_mll
from botorch.models import MixedSingleTaskGP, SingleTaskGP
from botorch.models.model import Model
from gpytorch.mlls import ExactMarginalLogLikelihood
from torch import Tensor

NoiseMode = Literal["auto", "known", "inferred"]
#: L-BFGS iterations of one hyperparameter fit: enough to converge on smooth data; caps runaway fits (a categorical
#: kernel on a handful of 0/1 labels took thousands of iterations and seconds per ask without it)
MAX_FIT_ITERATIONS = 200
#: noise variance of the failure labels (0/1): the classifier smooths rather than interpolates single failures
LABEL_NOISE = 0.05
#: smallest known noise variance, relative to the variance of the data (keeps the kernel matrix well posed)
MIN_RELATIVE_NOISE = 1e-6


def make_gp(X: Tensor, Y: Tensor, Yvar: Tensor | None, cat_dims: Sequence[int]) -> SingleTaskGP:
    """An unfitted GP: `MixedSingleTaskGP` when there are categorical columns, else `SingleTaskGP`."""
    if cat_dims:
        return MixedSingleTaskGP(X, Y, cat_dims=list(cat_dims), train_Yvar=Yvar)
    return SingleTaskGP(X, Y, train_Yvar=Yvar)


def fit_gp(model: SingleTaskGP, warm_state: dict[str, Tensor] | None = None) -> SingleTaskGP:
    """Fits the hyperparameters by maximum marginal likelihood (L-BFGS-B), starting from ``warm_state`` (the
    previous fit's hyperparameters) when it fits the model, which saves most iterations as data grow."""
    if warm_state is not None:
        with contextlib.suppress(RuntimeError):  # shapes changed (new column or category): start from the priors
            model.load_state_dict(warm_state, strict=False)
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizationWarning)  # a fit stopped at maxiter still improves on priors
        fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": MAX_FIT_ITERATIONS}})
    model.eval()
    return model


def known_noise(sigmas: Tensor, y: Tensor, mode: NoiseMode) -> Tensor | None:
    """Noise variances for `SingleTaskGP` (``n x 1``) when the σ are to be used, else None (noise inferred)."""
    if mode == "inferred":
        return None
    positive = bool((sigmas > 0).all()) and bool(torch.isfinite(sigmas).all())
    if mode == "auto" and not positive:
        return None
    if not positive:
        raise ValueError("noise 'known' needs a positive σ on every observation")
    floor = MIN_RELATIVE_NOISE * max(float(y.var()) if y.numel() > 1 else 1.0, 1e-12)
    return (sigmas**2).clamp_min(floor)


def metric_model(
    X: Tensor,
    y: Tensor,
    sigmas: Tensor,
    cat_dims: Sequence[int],
    noise: NoiseMode,
    warm_state: dict[str, Tensor] | None = None,
    fit_points: int | None = None,
) -> SingleTaskGP:
    """A fitted GP of one metric: ``X`` ``n x d``, ``y`` and ``sigmas`` ``n x 1``. With ``fit_points`` below n the
    hyperparameters are fitted on that many points (`fit_subset`) and the returned GP conditions on all n."""
    fit_X, fit_y, fit_s = (X, y, sigmas) if fit_points is None else fit_subset(X, y, sigmas, fit_points)
    model = fit_gp(make_gp(fit_X, fit_y, known_noise(fit_s, fit_y, noise), cat_dims), warm_state)
    if fit_X.shape[0] == X.shape[0]:
        return model
    hyper = {k: v for k, v in model.state_dict().items() if "raw_" in k}
    full = make_gp(X, y, known_noise(sigmas, y, noise), cat_dims)
    full.load_state_dict(hyper, strict=False)
    full.eval()
    return full


def fit_subset(X: Tensor, y: Tensor, s: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """At most ``k`` points for the hyperparameter fit: the best quarter by value and an even spread of the rest
    (deterministic), so the length scales see both the optimum's neighbourhood and the whole space."""
    n = X.shape[0]
    if n <= k:
        return X, y, s
    order = torch.argsort(y.reshape(-1), descending=True)
    top = order[: k // 4]
    rest = order[k // 4 :]
    spread = rest[torch.linspace(0, rest.numel() - 1, k - top.numel()).round().long()]
    idx = torch.cat([top, spread])
    return X[idx], y[idx], s[idx]


def feasibility_model(X: Tensor, failed: Tensor, cat_dims: Sequence[int]) -> SingleTaskGP:
    """Least-squares GP classifier of failure: ``failed`` ``n x 1`` in {0, 1}, with a fixed label noise."""
    return fit_gp(make_gp(X, failed.double(), torch.full_like(failed.double(), LABEL_NOISE), cat_dims))


def cost_model(X: Tensor, duration_s: Tensor, cat_dims: Sequence[int]) -> SingleTaskGP:
    """A GP of log duration (``duration_s`` ``n x 1``, positive)."""
    return fit_gp(make_gp(X, duration_s.clamp_min(1e-9).log(), None, cat_dims))


def feasible_probability(model: Model, X: Tensor) -> Tensor:
    """``P(indicator <= 1/2)`` under the classifier's Gaussian posterior at ``X`` (``n x d`` → ``n``)."""
    with torch.no_grad():
        post = model.posterior(X.unsqueeze(-2))
        mean = post.mean.reshape(-1)  # type: ignore[attr-defined]
        sd = post.variance.clamp_min(1e-12).sqrt().reshape(-1)  # type: ignore[attr-defined]
    return torch.special.ndtr((0.5 - mean) / sd)


def lengthscales(model: Model, names: Sequence[str]) -> dict[str, float]:
    """The ARD length scales of a fitted GP by input name (unit-cube columns; shorter = more influential). For
    models with several kernels (mixed inputs), each kernel's ``active_dims`` says which columns it scales."""
    out: dict[str, float] = {}
    for module in model.modules():
        ls = getattr(module, "lengthscale", None)
        ard = getattr(module, "ard_num_dims", None)
        if not isinstance(ls, Tensor) or ard is None or ls.shape[-1] != ard:
            continue
        active = getattr(module, "active_dims", None)
        dims = [int(i) for i in active] if active is not None else list(range(ard))
        if len(dims) != ard:
            continue
        values = ls.detach().reshape(-1, ard).median(dim=0).values  # fully Bayesian models: median over samples
        for i, v in zip(dims, values.tolist(), strict=True):
            if i < len(names) and names[i] not in out and math.isfinite(v):
                out[names[i]] = float(v)
    return out
