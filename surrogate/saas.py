"""A fully Bayesian GP with sparse axis-aligned subspace (SAAS) priors, sampled with Pyro's NUTS and used
as a BoTorch model: for campaigns with many inputs and few experiments.

The priors are those of Eriksson & Jankowiak (2021) as BoTorch's ``SaasPyroModel`` writes them: a global
shrinkage ``tausq ~ HalfCauchy(0.1)``, per-input ``_kernel_inv_length_sq ~ HalfCauchy(1)``, lengthscale
``1 / sqrt(tausq * _kernel_inv_length_sq)``, outputscale ``~ Gamma(2, 0.15)``, noise ``~ Gamma(0.9, 10)``
(unless known per point), constant mean ``~ N(0, 1)``, Matérn-5/2 kernel, on standardized outcomes.

BoTorch 0.18 samples that model with JAX/NumPyro only; here it is sampled with Pyro (a project dependency).
:func:`saas_pyro_model` states the model with ``pyro.sample`` sites; NUTS runs on :func:`_potential`, the
same log joint written directly on unconstrained tensors: at n=30, d=20 about 2x faster than NUTS on the Pyro
model and 1.2x faster than with its ``jit_compile=True`` (which needs the deprecated ``torch.jit.trace``); a test
checks that the two log joints agree. The posterior samples are loaded into :class:`SaasPyroGP`, a batched
GPyTorch model (one batch per MCMC sample) that BoTorch's acquisition functions treat as fully Bayesian,
exactly like ``SaasFullyBayesianSingleTaskGP``.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from botorch.models.fully_bayesian import AbstractFullyBayesianSingleTaskGP
from botorch.models.transforms.outcome import OutcomeTransform, Standardize
from botorch.models.utils.gpytorch_modules import MIN_INFERRED_NOISE_LEVEL
from gpytorch.constraints import GreaterThan
from gpytorch.kernels import MaternKernel, ScaleKernel
from gpytorch.likelihoods import FixedNoiseGaussianLikelihood, GaussianLikelihood
from gpytorch.means import ConstantMean
from gpytorch.models.exact_gp import ExactGP
from pydantic import Field, model_validator
from pyro.infer.mcmc import MCMC, NUTS
from torch import Tensor

from surrogate.base import StrategyError
from surrogate.options import StrategyOptions

_LOG_2PI = math.log(2.0 * math.pi)
_SQRT5 = math.sqrt(5.0)
_TAU_SCALE = 0.1  # HalfCauchy scale of the global shrinkage tausq
_OUTPUTSCALE_PRIOR = (2.0, 0.15)  # Gamma(concentration, rate)
_NOISE_PRIOR = (0.9, 10.0)  # Gamma(concentration, rate)
_UNIT_CUBE_TOL = 1e-9


class SaasOptions(StrategyOptions):
    """NUTS settings of the SAAS GP. ``warmup`` adaptation steps, then ``num_samples`` draws of which every
    ``thinning``-th is kept (``ceil(num_samples / thinning)`` models in the batch). The defaults fit n=30, d=20
    in 17-24 s on one core; BoTorch's (512, 256, 16) took 28-30 s. ``target_accept`` is NUTS's step-size
    target; ``full_mass`` a dense mass matrix (measured no faster and no better here)."""

    warmup: int = Field(default=256, ge=1)
    num_samples: int = Field(default=256, ge=1)
    thinning: int = Field(default=16, ge=1)
    max_tree_depth: int = Field(default=6, ge=1, le=12)
    target_accept: float = Field(default=0.8, gt=0.0, lt=1.0)
    full_mass: bool = False
    disable_progbar: bool = True

    @model_validator(mode="after")
    def _thinning_keeps_a_sample(self) -> SaasOptions:
        if self.thinning > self.num_samples:
            raise ValueError(f"thinning ({self.thinning}) exceeds num_samples ({self.num_samples}): no sample kept")
        return self


@dataclass(frozen=True)
class SaasDiagnostics:
    """How the fit went: wall time (s), NUTS divergences after warmup, samples kept, final step size."""

    fit_seconds: float
    divergences: int
    num_kept: int
    step_size: float


# --------------------------------------------------------------------------------------------- the model


def matern52(X: Tensor, lengthscale: Tensor) -> Tensor:
    """Matérn-5/2 correlation of the rows of ``X`` (``n x d``) with ``lengthscale`` (``d``): ``n x n``."""
    Z = X / lengthscale
    sq = (Z.unsqueeze(-2) - Z.unsqueeze(-3)).pow(2).sum(-1)
    r = sq.clamp_min(1e-30).sqrt()  # the clamp keeps the gradient finite on the diagonal
    return (1.0 + _SQRT5 * r + 5.0 / 3.0 * sq) * torch.exp(-_SQRT5 * r)


def saas_pyro_model(train_X: Tensor, train_Y: Tensor, train_Yvar: Tensor | None = None) -> None:
    """The SAAS GP as a Pyro model (site names as BoTorch's ``SaasPyroModel``), on standardized data.

    train_X: ``n x d`` in the unit cube; train_Y: ``n``; train_Yvar: ``n`` known noise variances or None.
    """
    n, d = train_X.shape
    tkw: dict[str, Any] = {"dtype": train_X.dtype, "device": train_X.device}
    (os_a, os_b), (noise_a, noise_b) = _OUTPUTSCALE_PRIOR, _NOISE_PRIOR
    outputscale = pyro.sample("outputscale", dist.Gamma(torch.tensor(os_a, **tkw), torch.tensor(os_b, **tkw)))
    mean = pyro.sample("mean", dist.Normal(torch.tensor(0.0, **tkw), torch.tensor(1.0, **tkw)))
    if train_Yvar is None:
        noise = MIN_INFERRED_NOISE_LEVEL + pyro.sample(
            "noise", dist.Gamma(torch.tensor(noise_a, **tkw), torch.tensor(noise_b, **tkw))
        )
        noise_diag = noise.expand(n)
    else:
        noise_diag = train_Yvar
    tausq = pyro.sample("kernel_tausq", dist.HalfCauchy(torch.tensor(_TAU_SCALE, **tkw)))
    inv_length_sq = pyro.sample("_kernel_inv_length_sq", dist.HalfCauchy(torch.ones(d, **tkw)))
    lengthscale = 1.0 / torch.sqrt(tausq * inv_length_sq)
    K = outputscale * matern52(train_X, lengthscale) + torch.diag_embed(noise_diag)
    pyro.sample("Y", dist.MultivariateNormal(mean.expand(n), covariance_matrix=K), obs=train_Y)


def _log_half_cauchy_of_exp(u: Tensor, scale: float) -> Tensor:
    """log HalfCauchy(scale) density at ``exp(u)`` plus the log Jacobian ``u``."""
    return math.log(2.0 / math.pi) - math.log(scale) - torch.log1p(torch.exp(2.0 * u) / scale**2) + u


def _log_gamma_of_exp(u: Tensor, concentration: float, rate: float) -> Tensor:
    """log Gamma(concentration, rate) density at ``exp(u)`` plus the log Jacobian ``u``."""
    return concentration * math.log(rate) - math.lgamma(concentration) + concentration * u - rate * torch.exp(u)


def _potential(train_X: Tensor, train_Y: Tensor, train_Yvar: Tensor | None) -> Callable[[dict[str, Tensor]], Tensor]:
    """Negative log joint of :func:`saas_pyro_model` over unconstrained (log) parameters, for NUTS.

    Sites: ``log_outputscale``, ``mean``, ``log_noise`` (when inferred), ``log_kernel_tausq``,
    ``log_kernel_inv_length_sq`` (``d``). train_X: ``n x d``; train_Y: ``n``; train_Yvar: ``n`` or None.
    """
    n = train_X.shape[0]
    eye = torch.eye(n, dtype=train_X.dtype, device=train_X.device)

    def potential(p: dict[str, Tensor]) -> Tensor:
        log_os, mean, log_tausq, log_ils = (
            p["log_outputscale"],
            p["mean"],
            p["log_kernel_tausq"],
            p["log_kernel_inv_length_sq"],
        )
        log_prior = (
            _log_gamma_of_exp(log_os, *_OUTPUTSCALE_PRIOR)
            - 0.5 * mean**2
            - 0.5 * _LOG_2PI
            + _log_half_cauchy_of_exp(log_tausq, _TAU_SCALE)
            + _log_half_cauchy_of_exp(log_ils, 1.0).sum()
        )
        if train_Yvar is None:
            log_prior = log_prior + _log_gamma_of_exp(p["log_noise"], *_NOISE_PRIOR)
            noise = (MIN_INFERRED_NOISE_LEVEL + torch.exp(p["log_noise"])) * eye
        else:
            noise = torch.diag_embed(train_Yvar)
        lengthscale = torch.exp(-0.5 * (log_tausq + log_ils))
        K = torch.exp(log_os) * matern52(train_X, lengthscale) + noise
        L = torch.linalg.cholesky(K)
        a = torch.linalg.solve_triangular(L, (train_Y - mean).unsqueeze(-1), upper=False)
        log_lik = -0.5 * a.pow(2).sum() - torch.log(torch.diagonal(L)).sum() - 0.5 * n * _LOG_2PI
        return -(log_prior + log_lik)

    return potential


def _initial_params(d: int, infer_noise: bool, **tkw: Any) -> dict[str, Tensor]:
    """A fixed, prior-typical start (outputscale 1, noise 0.01, tausq 0.1, all inputs alike)."""
    init = {
        "log_outputscale": torch.zeros((), **tkw),
        "mean": torch.zeros((), **tkw),
        "log_kernel_tausq": torch.full((), math.log(_TAU_SCALE), **tkw),
        "log_kernel_inv_length_sq": torch.zeros(d, **tkw),
    }
    if infer_noise:
        init["log_noise"] = torch.full((), math.log(0.01), **tkw)
    return init


class SaasPyroGP(AbstractFullyBayesianSingleTaskGP):
    """BoTorch's fully Bayesian single-task GP with SAAS priors, without JAX: hyperparameters come from
    :func:`fit_saas_gp`'s Pyro NUTS. After :meth:`load_mcmc_samples` it is a batch of ``s`` exact GPs (one per
    MCMC sample); ``posterior(X)`` for X ``b x q x d`` is a ``GaussianMixturePosterior`` with mean
    ``b x s x q x 1`` (``MCMC_DIM = -3``), which BoTorch's acquisition functions average over.

    train_X: ``n x d`` in the unit cube; train_Y, train_Yvar: ``n x 1`` (known noise variances or None),
    untransformed; ``outcome_transform`` (e.g. ``Standardize(m=1)``) is applied here, as BoTorch models do.
    As in BoTorch, ``model.train()`` discards the fitted hyperparameters (an unfitted model cannot predict).
    """

    def __init__(
        self,
        train_X: Tensor,
        train_Y: Tensor,
        train_Yvar: Tensor | None = None,
        outcome_transform: OutcomeTransform | None = None,
    ) -> None:
        if outcome_transform is not None:
            outcome_transform.train()
            train_Y, train_Yvar = outcome_transform(Y=train_Y, Yvar=train_Yvar, X=train_X)
        if train_Yvar is not None:
            train_Yvar = train_Yvar.clamp_min(MIN_INFERRED_NOISE_LEVEL)
        self._validate_tensor_args(X=train_X, Y=train_Y)
        self._num_outputs = 1
        self._input_batch_shape = train_X.shape[:-2]
        X_tf, Y_tf, _ = self._transform_tensor_args(X=train_X, Y=train_Y)
        # BoTorch's AbstractFullyBayesianSingleTaskGP.__init__ insists on JAX; its ExactGP set-up is all we need
        ExactGP.__init__(self, train_inputs=X_tf, train_targets=Y_tf, likelihood=GaussianLikelihood())
        self.mean_module = None
        self.covar_module = None
        self.likelihood = None
        self.train_Yvar: Tensor | None = None if train_Yvar is None else train_Yvar.squeeze(-1)
        self.ard_num_dims: int = train_X.shape[-1]
        self.diagnostics: SaasDiagnostics | None = None
        if outcome_transform is not None:
            self.outcome_transform = outcome_transform

    def load_mcmc_samples(self, mcmc_samples: Mapping[str, Tensor]) -> None:  # type: ignore[override]
        """Builds the batched modules from ``mean`` (``s``), ``outputscale`` (``s``), ``lengthscale``
        (``s x d``) and, unless the noise is known, ``noise`` (``s``)."""
        d = self.ard_num_dims
        tkw: dict[str, Any] = {"dtype": self.train_targets.dtype, "device": self.train_targets.device}
        s = mcmc_samples["mean"].shape[0]
        batch = torch.Size([s])
        mean_module = ConstantMean(batch_shape=batch).to(**tkw)
        mean_module.constant.data = mcmc_samples["mean"].detach().clone().view_as(mean_module.constant).to(**tkw)
        covar_module = ScaleKernel(MaternKernel(nu=2.5, ard_num_dims=d, batch_shape=batch), batch_shape=batch).to(**tkw)
        covar_module.outputscale = mcmc_samples["outputscale"].detach().clone().view(s).to(**tkw)
        covar_module.base_kernel.lengthscale = mcmc_samples["lengthscale"].detach().clone().view(s, 1, d).to(**tkw)
        likelihood: FixedNoiseGaussianLikelihood | GaussianLikelihood
        if self.train_Yvar is not None:
            likelihood = FixedNoiseGaussianLikelihood(noise=self.train_Yvar.expand(s, -1), batch_shape=batch).to(**tkw)
        else:
            likelihood = GaussianLikelihood(
                batch_shape=batch, noise_constraint=GreaterThan(MIN_INFERRED_NOISE_LEVEL)
            ).to(**tkw)
            noise = mcmc_samples["noise"].detach().clone().clamp_min(MIN_INFERRED_NOISE_LEVEL)
            likelihood.noise_covar.noise = noise.view(s, 1).to(**tkw)
        self.mean_module, self.covar_module, self.likelihood = mean_module, covar_module, likelihood

    def load_state_dict(  # type: ignore[override]  # BoTorch's fully Bayesian models drop keep_transforms too
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> None:
        """Loads a saved fit: builds modules of the saved batch size first (they exist only once fitted)."""
        raw_mean = state_dict["mean_module.raw_constant"]
        s, d = raw_mean.shape[0], self.ard_num_dims
        ones = {"dtype": raw_mean.dtype, "device": raw_mean.device}
        dummy = {
            "mean": torch.ones(s, **ones),
            "outputscale": torch.ones(s, **ones),
            "lengthscale": torch.ones(s, d, **ones),
            "noise": torch.ones(s, **ones),
        }
        self.load_mcmc_samples(dummy)
        super().load_state_dict(state_dict, strict=strict, assign=assign)

    @property
    def median_lengthscale(self) -> Tensor:
        """Median lengthscale over the MCMC samples: ``d``."""
        self._check_if_fitted()
        assert isinstance(self.covar_module, ScaleKernel)
        return self.covar_module.base_kernel.lengthscale.median(0).values.squeeze(0)


# ------------------------------------------------------------------------------------------ fitting


def _validate(train_X: Tensor, train_Y: Tensor, train_Yvar: Tensor | None) -> None:
    """Raises StrategyError naming the first problem with the training data."""
    if not (isinstance(train_X, Tensor) and isinstance(train_Y, Tensor)):
        raise StrategyError("SAAS GP: train_X and train_Y must be torch tensors")
    if train_X.ndim != 2:
        raise StrategyError(f"SAAS GP: train_X must be n x d, got shape {tuple(train_X.shape)}")
    n, d = train_X.shape
    if n == 0 or d == 0:
        raise StrategyError(f"SAAS GP: needs at least one point and one input, got train_X {tuple(train_X.shape)}")
    if train_Y.shape != (n, 1):
        raise StrategyError(f"SAAS GP: train_Y must be {n} x 1 to match train_X, got {tuple(train_Y.shape)}")
    if train_Yvar is not None and train_Yvar.shape != (n, 1):
        raise StrategyError(f"SAAS GP: train_Yvar must be {n} x 1 like train_Y, got {tuple(train_Yvar.shape)}")
    for name, t in (("train_X", train_X), ("train_Y", train_Y), ("train_Yvar", train_Yvar)):
        if t is None:
            continue
        if not t.is_floating_point():
            raise StrategyError(f"SAAS GP: {name} must be a floating-point tensor, got {t.dtype}")
        bad = (~torch.isfinite(t)).nonzero()
        if len(bad):
            raise StrategyError(f"SAAS GP: {name} has {len(bad)} NaN or infinite entries, first at {bad[0].tolist()}")
    outside = ((train_X < -_UNIT_CUBE_TOL) | (train_X > 1 + _UNIT_CUBE_TOL)).nonzero()
    if len(outside):
        i, j = outside[0].tolist()
        raise StrategyError(
            f"SAAS GP: train_X must lie in the unit cube [0, 1]^d, but {len(outside)} entries do not "
            f"(first: row {i}, input {j} = {train_X[i, j].item():.6g})"
        )
    if train_Yvar is not None and bool((train_Yvar < 0).any()):
        raise StrategyError("SAAS GP: train_Yvar must be non-negative (they are noise variances)")


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """``pyro.set_rng_seed(seed)`` for the block, restoring the global random, NumPy and torch states."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        pyro.set_rng_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def fit_saas_gp(
    train_X: Tensor,
    train_Y: Tensor,
    train_Yvar: Tensor | None = None,
    *,
    options: SaasOptions | None = None,
    seed: int = 0,
) -> SaasPyroGP:
    """Fits the SAAS GP by NUTS and returns it in eval mode, with ``model.diagnostics`` set.

    train_X: ``n x d`` in the unit cube; train_Y: ``n x 1``; train_Yvar: ``n x 1`` known noise variances (then
    fixed per point, not sampled) or None. Outcomes are standardized by a ``Standardize`` outcome transform,
    so the posterior is on the original scale. Computation is in float64 on train_X's device. Same data,
    options and seed give the same model; the global random states are left as they were.
    """
    options = options or SaasOptions()
    _validate(train_X, train_Y, train_Yvar)
    tkw: dict[str, Any] = {"dtype": torch.float64, "device": train_X.device}
    X = train_X.to(**tkw).clamp(0.0, 1.0)
    Y = train_Y.to(**tkw)
    Yvar = None if train_Yvar is None else train_Yvar.to(**tkw)
    model = SaasPyroGP(X, Y, Yvar, outcome_transform=Standardize(m=1))
    y_tf = cast(Tensor, model.train_targets)  # standardized, `n`
    start = time.perf_counter()
    kernel = NUTS(
        potential_fn=_potential(X, y_tf, model.train_Yvar),
        full_mass=options.full_mass,
        max_tree_depth=options.max_tree_depth,
        target_accept_prob=options.target_accept,
    )
    mcmc = MCMC(
        kernel,
        num_samples=options.num_samples,
        warmup_steps=options.warmup,
        initial_params=_initial_params(X.shape[-1], model.train_Yvar is None, **tkw),
        disable_progbar=options.disable_progbar,
    )
    with _seeded(seed):
        try:
            mcmc.run()
        except (RuntimeError, ValueError) as e:  # e.g. a Cholesky failure on degenerate data
            raise StrategyError(f"SAAS GP: NUTS failed: {e}") from e
    raw = {k: v[:: options.thinning] for k, v in mcmc.get_samples().items()}
    samples = {
        "mean": raw["mean"],
        "outputscale": raw["log_outputscale"].exp(),
        "lengthscale": torch.exp(-0.5 * (raw["log_kernel_tausq"].unsqueeze(-1) + raw["log_kernel_inv_length_sq"])),
    }
    if "log_noise" in raw:
        samples["noise"] = MIN_INFERRED_NOISE_LEVEL + raw["log_noise"].exp()
    model.load_mcmc_samples(samples)
    model.eval()
    model.diagnostics = SaasDiagnostics(
        fit_seconds=time.perf_counter() - start,
        divergences=_divergences(mcmc),
        num_kept=int(samples["mean"].shape[0]),
        step_size=float(kernel.step_size),  # type: ignore[operator]
    )
    return model


def _divergences(mcmc: MCMC) -> int:
    """Divergent transitions after warmup, as Pyro records them (0 when it records none)."""
    per_chain = mcmc.diagnostics().get("divergences", {})
    return int(sum(len(v) for v in per_chain.values()))


def relevance(model: SaasPyroGP, input_names: Sequence[str]) -> dict[str, float]:
    """Median inverse lengthscale of each input over the MCMC samples: which inputs matter (SAAS shrinks the
    others towards 0). ``input_names`` in train_X's column order."""
    model._check_if_fitted()
    assert isinstance(model.covar_module, ScaleKernel)
    inv = 1.0 / model.covar_module.base_kernel.lengthscale.detach().squeeze(-2)  # s x d
    if len(input_names) != inv.shape[-1]:
        raise StrategyError(f"relevance: {len(input_names)} input names for a model of {inv.shape[-1]} inputs")
    if len(set(input_names)) != len(input_names):
        raise StrategyError("relevance: input names must be distinct")
    med = inv.median(0).values
    return {name: float(v) for name, v in zip(input_names, med, strict=True)}


# ------------------------------------------------------------------------------------------ benchmark


def sparse_test_function(X: Tensor, relevant: tuple[int, int, int] = (3, 7, 15)) -> Tensor:
    """A smooth function of three of X's inputs (``n x d`` -> ``n x 1``): the standard SAAS check problem."""
    a, b, c = (X[:, i] for i in relevant)
    return (2.0 * torch.sin(3.0 * a) + 4.0 * (b - 0.3) ** 2 + torch.cos(3.0 * c)).unsqueeze(-1)


def saas_fit_seconds(n: int = 30, d: int = 20, seed: int = 0, options: SaasOptions | None = None) -> float:
    """Wall time (s) of one :func:`fit_saas_gp` on ``n`` scrambled-Sobol points of a ``d``-input problem with
    three relevant inputs (d >= 16). Single-threaded torch is the caller's choice (``torch.set_num_threads``)."""
    if d < 16:
        raise StrategyError(f"saas_fit_seconds: the standard problem needs d >= 16 inputs, got {d}")
    X = torch.quasirandom.SobolEngine(d, scramble=True, seed=seed).draw(n, dtype=torch.float64)
    noise = 0.01 * torch.randn(n, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    Y = sparse_test_function(X) + noise
    start = time.perf_counter()
    fit_saas_gp(X, Y, options=options, seed=seed)
    return time.perf_counter() - start
