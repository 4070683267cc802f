"""Plain BoTorch, as a lab would write it from the BoTorch tutorials: the peer that matloop's ``botorch`` strategy
must beat.

* Model: `SingleTaskGP` with ``ScaleKernel(MaternKernel(nu=2.5, ard_num_dims=d))`` set explicitly (BoTorch ≥ 0.12
  defaults to an RBF kernel with dimension-scaled priors), with the tutorials' classic priors (length scales
  Gamma(3, 6), output scale Gamma(2, 0.15)), BoTorch's default Gaussian likelihood (noise inferred: the measurement
  σ is not used), ``Normalize`` inputs and ``Standardize`` outcome, fitted from scratch by `fit_gpytorch_mll` at
  every ask on the successful observations of the one objective (its score: larger is better, so minimized values
  are negated and targets become ``−|value − target|``).
* Acquisition: ``botorch-logei``: analytic `LogExpectedImprovement` with ``best_f`` the best observed score;
  ``botorch-ucb``: analytic `UpperConfidenceBound` with ``beta`` (default 2.0, see `DEFAULT_BETA`). For a batch
  (``n > 1``) or with pending points the q-versions (`qLogExpectedImprovement`, `qUpperConfidenceBound`, quasi-MC,
  pending points as ``X_pending``) are used, as the tutorials do for batches: optimized jointly over the q points
  by `optimize_acqf` on continuous spaces, sequential greedy (each pick then pending, as
  `optimize_acqf_discrete`) on pools.
* Continuous spaces: `optimize_acqf` over `BotorchSpace`'s [0, 1] columns with its composition (equality) and
  linear (inequality) constraints; integers are rounded by `BotorchSpace.decode`; a proposal that rounds onto an
  observed, pending or already chosen point is replaced by the next new Sobol point. Categorical inputs are refused
  (plain BoTorch has no categorical kernel; matloop's ``botorch`` has one).
* Limits, by design of the peer: one objective and no outcome constraints (refused by name); failed experiments are
  skipped (plain BoTorch has no failure model; on pools their candidate is still used up). Fewer than two successes:
  Sobol points (continuous) or the pool's seeded random order (pools).
* Determinism: the fit, the optimizer's random starts and the quasi-MC samplers are seeded from the strategy seed and
  the number of observations plus pending points, so the same history gives the same proposals.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from botorch.acquisition import AcquisitionFunction, LogExpectedImprovement, UpperConfidenceBound
from botorch.acquisition.logei import qLogExpectedImprovement
from botorch.acquisition.monte_carlo import qUpperConfidenceBound
from botorch.exceptions.warnings import OptimizationWarning
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.input import Normalize
from botorch.models.transforms.outcome import Standardize
from botorch.optim import optimize_acqf
from botorch.sampling import SobolQMCNormalSampler
from gpytorch.kernels import MaternKernel, ScaleKernel
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import GammaPrior
from torch import Tensor

from surrogate.base import Conditions, Observation, Proposal
from surrogate.botorch_space import BotorchSpace
from surrogate.encoding import Key, canonical_key, check_proposals
from surrogate.objectives import Goal, Objective
from surrogate.options import SobolOptions
from surrogate.peers.common import ACQUISITIONS, numeric_columns, single_objective
from surrogate.peers.options import PlainLogEIOptions, PlainUCBOptions
from surrogate.sobol import SobolStrategy
from surrogate.space import SearchSpace


def training_data(
    observations: Sequence[Observation], objective: Objective, columns: BotorchSpace, space: SearchSpace
) -> tuple[Tensor, Tensor]:
    """``n x d`` columns and ``n x 1`` scores of the successful observations in the space (failures skipped)."""
    rows = [
        o
        for o in observations
        if not o.failed
        and objective.name in o.values
        and math.isfinite(float(o.values[objective.name][0]))
        and not space.check(o.conditions)
    ]
    X = columns.encode([o.conditions for o in rows])
    y = torch.tensor([[objective.score(float(o.values[objective.name][0]))] for o in rows], dtype=torch.float64)
    return X, y.reshape(-1, 1)


def plain_gp(X: Tensor, y: Tensor, bounds: Tensor) -> SingleTaskGP:
    """A fitted SingleTaskGP with a Matérn-5/2 ARD kernel: ``X`` ``n x d`` within ``bounds`` (``2 x d``), ``y``
    ``n x 1``."""
    d = X.shape[-1]
    kernel = ScaleKernel(
        MaternKernel(nu=2.5, ard_num_dims=d, lengthscale_prior=GammaPrior(3.0, 6.0)),
        outputscale_prior=GammaPrior(2.0, 0.15),
    )
    model = SingleTaskGP(
        X,
        y,
        covar_module=kernel,
        input_transform=Normalize(d=d, bounds=bounds),
        outcome_transform=Standardize(m=1),
    )
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizationWarning)  # a fit stopped at its iteration cap still improves
        fit_gpytorch_mll(mll)
    model.eval()
    return model


def make_acquisition(
    kind: str,
    model: SingleTaskGP,
    best_f: float,
    *,
    beta: float,
    joint: bool,
    X_pending: Tensor | None,
    mc_samples: int,
    seed: int,
) -> AcquisitionFunction:
    """Analytic LogEI or UCB (``joint`` False: one point, nothing pending), else their q-versions with
    ``X_pending``."""
    if not joint:
        if kind == "LogEI":
            return LogExpectedImprovement(model, best_f=best_f)
        return UpperConfidenceBound(model, beta=beta)
    sampler = SobolQMCNormalSampler(torch.Size([mc_samples]), seed=seed)
    if kind == "LogEI":
        return qLogExpectedImprovement(model, best_f=best_f, sampler=sampler, X_pending=X_pending)
    return qUpperConfidenceBound(model, beta=beta, sampler=sampler, X_pending=X_pending)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Torch's global RNG set to ``seed`` inside, restored after (the fit and the optimizer draw from it)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed % 2**63)
        yield


def kernel_summary(model: SingleTaskGP) -> dict[str, Any]:
    """What the fitted model's kernel is (for ``explain`` and for checking the peer is what it claims)."""
    base = model.covar_module.base_kernel  # type: ignore[union-attr]
    return {
        "kernel": f"{type(model.covar_module).__name__}({type(base).__name__}(nu={getattr(base, 'nu', None)}))",
        "lengthscales": [round(float(v), 6) for v in base.lengthscale.detach().reshape(-1)],
    }


def predict(model: SingleTaskGP, X: Tensor, objective: Objective) -> list[tuple[float, float]]:
    """Posterior mean and σ of the objective's measured value at each row of ``X`` (the model is of the score: the
    sign is turned back for minimized objectives; for targets it stays the score, ``−|value − target|``)."""
    with torch.no_grad():
        post = model.posterior(X.unsqueeze(-2))
        mean = post.mean.reshape(-1)
        sd = post.variance.clamp_min(0).sqrt().reshape(-1)
    sign = -1.0 if objective.direction == "minimize" else 1.0
    return [(sign * float(m), float(s)) for m, s in zip(mean, sd, strict=True)]


# ------------------------------------------------------------------------------------------ continuous strategy
class PlainBotorchStrategy:
    """Plain BoTorch on a continuous space; see the module docstring. Subclasses fix the acquisition."""

    name = "botorch-logei"
    Options: type[PlainLogEIOptions] = PlainLogEIOptions

    def __init__(self, space: SearchSpace, goal: Goal, seed: int = 0, options: PlainLogEIOptions | None = None) -> None:
        self.space, self.goal, self.seed = space, goal, seed
        self.options = options if options is not None else self.Options()
        self.objective = single_objective(goal, self.name)
        self.columns = BotorchSpace(space)
        numeric_columns(self.columns, self.name)
        self.kind = ACQUISITIONS[self.name]
        self._sobol = SobolStrategy(space, goal, seed, SobolOptions())
        self._observations: list[Observation] = []
        self.last_model: SingleTaskGP | None = None

    def tell(self, results: Sequence[Observation]) -> None:
        """Keeps the observations; the model is refitted from scratch at the next ask."""
        self._observations.extend(results)
        self._sobol.tell(results)

    def ask(self, n: int, pending: Sequence[Conditions]) -> list[Proposal]:
        """``n`` new points: Sobol until two successes, then the acquisition's maximizers."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n == 0:
            return []
        pending = list(pending)
        step = len(self._observations) + len(pending)
        X, y = training_data(self._observations, self.objective, self.columns, self.space)
        if X.shape[0] < 2:
            return [
                Proposal(conditions=p.conditions, generator=f"{self.name}:sobol", model_state={"phase": "initial"})
                for p in self._sobol.ask(n, pending)
            ]
        inside = [c for c in pending if not self.space.check(c)]
        X_pending = self.columns.encode(inside) if inside else None
        bounds = self.columns.bounds()
        beta = float(getattr(self.options, "beta", 0.0))
        with seeded(self.seed * 104_729 + step):
            model = plain_gp(X, y, bounds)
            acq = make_acquisition(
                self.kind,
                model,
                float(y.max()),
                beta=beta,
                joint=n > 1 or X_pending is not None,
                X_pending=X_pending,
                mc_samples=self.options.mc_samples,
                seed=self.seed * 7919 + step,
            )
            with warnings.catch_warnings():
                # L-BFGS-B stopping "ABNORMAL" on a flat acquisition is routine; the best start is still returned
                warnings.simplefilter("ignore", RuntimeWarning)
                warnings.simplefilter("ignore", OptimizationWarning)
                cand, _ = optimize_acqf(
                    acq,
                    bounds,
                    q=n,
                    num_restarts=self.options.num_restarts,
                    raw_samples=self.options.raw_samples,
                    equality_constraints=self.columns.equality_constraints or None,
                    inequality_constraints=self.columns.inequality_constraints or None,
                    options={"batch_limit": 5, "maxiter": 200},
                    retry_on_optimization_warning=False,
                )
        self.last_model = model
        chosen = self._decode_new(cand.detach().reshape(-1, self.columns.dim), pending)
        Xc = self.columns.encode([c for c, _ in chosen])
        preds = predict(model, Xc, self.objective)
        state: dict[str, Any] = {
            **kernel_summary(model),
            "acquisition": acq.__class__.__name__,
            "n_train": int(X.shape[0]),
        }
        return [
            Proposal(conditions=c, generator=g, predictions={self.objective.name: preds[i]}, model_state=dict(state))
            for i, (c, g) in enumerate(chosen)
        ]

    def _decode_new(self, X: Tensor, pending: Sequence[Conditions]) -> list[tuple[dict[str, Any], str]]:
        """Decoded proposals, each new; a repeat after rounding (or a point outside the space) becomes the next new
        Sobol point."""
        seen: set[Key] = {canonical_key(o.conditions) for o in self._observations}
        seen |= {canonical_key(c) for c in pending}
        out: list[tuple[dict[str, Any], str]] = []
        for c in self.columns.decode(X):
            key = canonical_key(c)
            if key in seen or self.space.check(c):
                fill = self._sobol.ask(1, [*pending, *(x for x, _ in out)])[0].conditions
                out.append((fill, f"{self.name}:sobol-fill"))
                seen.add(canonical_key(fill))
            else:
                out.append((c, self.name))
                seen.add(key)
        check_proposals(self.space, [c for c, _ in out], self.name)
        return out


class PlainLogEIStrategy(PlainBotorchStrategy):
    """Plain BoTorch with LogEI (qLogEI for batches and pending points)."""

    name = "botorch-logei"
    Options = PlainLogEIOptions


class PlainUCBStrategy(PlainBotorchStrategy):
    """Plain BoTorch with UCB (qUCB for batches and pending points)."""

    name = "botorch-ucb"
    Options = PlainUCBOptions
    options: PlainUCBOptions
