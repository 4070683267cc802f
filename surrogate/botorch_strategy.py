"""Bayesian optimization directly on BoTorch: the glue between a campaign's space and goal and BoTorch's
models, acquisition functions and optimizers (models in `surrogate.botorch_models`, columns in
`surrogate.botorch_space`).

One objective: qLogNoisyExpectedImprovement; several: qLogNoisyExpectedHypervolumeImprovement with the
objectives' thresholds as the reference point (inferred from the observed front where a threshold is missing).
Minimized objectives are negated and targets become ``−|value − target|`` inside the Monte-Carlo objective, so the
models stay in measured units and explanations read naturally. Outcome constraints and the learned feasibility are
smoothed constraints on the posterior samples. Pending experiments enter as ``X_pending``; the q proposals are
chosen jointly. A proposal that rounds onto an observed, pending or already chosen point is replaced by the next
new scrambled-Sobol point, so two identical proposals never leave this strategy."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from botorch.acquisition import AcquisitionFunction
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from botorch.acquisition.multi_objective.objective import GenericMCMultiOutputObjective
from botorch.acquisition.objective import GenericMCObjective
from botorch.exceptions.warnings import OptimizationWarning
from botorch.models import ModelListGP
from botorch.models.model import Model
from botorch.optim import optimize_acqf, optimize_acqf_mixed_alternating
from botorch.sampling import SobolQMCNormalSampler
from botorch.utils.multi_objective.hypervolume import infer_reference_point
from botorch.utils.multi_objective.pareto import is_non_dominated
from torch import Tensor

from surrogate.base import Conditions, Observation, Proposal, StrategyError
from surrogate.botorch_models import (
    cost_model,
    feasibility_model,
    feasible_probability,
    known_noise,
    lengthscales,
    metric_model,
)
from surrogate.botorch_space import BotorchSpace
from surrogate.encoding import Key, canonical_key, check_proposals
from surrogate.objectives import Goal, Objective
from surrogate.options import BotorchOptions, SobolOptions
from surrogate.sobol import SobolStrategy
from surrogate.space import SearchSpace

Transform = Callable[[Tensor], Tensor]


def score_transform(o: Objective) -> Transform:
    """Measured value → larger is better, on posterior samples."""
    if o.direction == "maximize":
        return lambda z: z
    if o.direction == "minimize":
        return lambda z: -z
    target = float(o.target)  # type: ignore[arg-type]
    return lambda z: -(z - target).abs()


def reference_score(o: Objective) -> float | None:
    """The objective's threshold in score space (targets: the largest acceptable distance)."""
    if o.threshold is None:
        return None
    t = float(o.threshold)
    return t if o.direction == "maximize" else -t if o.direction == "minimize" else -abs(t)


@dataclass
class _Data:
    """Training data per model output, in the order objectives, constraint-only metrics, feasibility."""

    metrics: list[str]
    X: list[Tensor]
    y: list[Tensor]
    sigma: list[Tensor]
    X_success: Tensor  # points with every objective measured: the baseline of the acquisition
    X_all: Tensor
    failed: Tensor


class BotorchStrategy:
    """Direct BoTorch Bayesian optimization; see the module docstring and `BotorchOptions`."""

    generator = "botorch"
    Options = BotorchOptions

    def __init__(self, space: SearchSpace, goal: Goal, seed: int = 0, options: BotorchOptions | None = None) -> None:
        self.space, self.goal, self.seed = space, goal, seed
        self.options = options or BotorchOptions()
        self.columns = BotorchSpace(space)
        self._sobol = SobolStrategy(space, goal, seed, SobolOptions())
        self._observations: list[Observation] = []
        self._step = 0  # observations + pending at this ask: seeds follow the campaign's state, not call counts
        constraint_names = [c.name for c in goal.outcome_constraints]
        objective_names = [o.name for o in goal.objectives]
        self._metrics = objective_names + [n for n in dict.fromkeys(constraint_names) if n not in objective_names]

    # --- the protocol -----------------------------------------------------------------------------------------
    def tell(self, results: Sequence[Observation]) -> None:
        """Keeps the observations (failures too); models are refitted on the next ask."""
        for r in results:
            if not r.failed and self.space.check(r.conditions):
                raise StrategyError(f"observation outside the space: {r.conditions}: {self.space.check(r.conditions)}")
        self._observations.extend(results)
        self._sobol.tell(results)

    def ask(self, n: int, pending: Sequence[Conditions]) -> list[Proposal]:
        """``n`` new conditions chosen jointly, conditioned on ``pending``; Sobol until enough data to model."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n == 0:
            return []
        self._step = len(self._observations) + len(pending)
        data = self._data()
        if data.X_success.shape[0] < 2 or len(self._observations) < self.options.initial_points:
            return [self._sobol_proposal(p, "initial") for p in self._sobol.ask(n, pending)]
        return self._bayes(n, list(pending), data)

    # --- data ---------------------------------------------------------------------------------------------------
    def _data(self) -> _Data:
        enc = self.columns.encode
        ok = [o for o in self._observations if not o.failed]
        failed_obs = [o for o in self._observations if o.failed]
        objectives = {o.name: o for o in self.goal.objectives}
        X, y, s = [], [], []
        for m in self._metrics:
            rows = [o for o in ok if m in o.values and math.isfinite(o.values[m][0])]
            conditions = [o.conditions for o in rows]
            values = [o.values[m][0] for o in rows]
            sigmas = [abs(o.values[m][1]) for o in rows]
            if m in objectives and self.options.impute_failures and failed_obs and values:
                worst = min(values, key=lambda v: float(score_transform(objectives[m])(torch.tensor(v))))
                sigma = float(np.median(sigmas))
                conditions += [o.conditions for o in failed_obs]
                values += [worst] * len(failed_obs)
                sigmas += [sigma] * len(failed_obs)
            X.append(enc(conditions))
            y.append(torch.tensor(values, dtype=torch.float64).reshape(-1, 1))
            s.append(torch.tensor(sigmas, dtype=torch.float64).reshape(-1, 1))
        success = [o for o in ok if all(m in o.values and math.isfinite(o.values[m][0]) for m in objectives)]
        failed = torch.tensor([[1.0 if o.failed else 0.0] for o in self._observations], dtype=torch.float64)
        return _Data(
            self._metrics,
            X,
            y,
            s,
            enc([o.conditions for o in success]),
            enc([o.conditions for o in self._observations]),
            failed.reshape(-1, 1),
        )

    # --- Bayesian optimization ---------------------------------------------------------------------------------
    def _fit(self, data: _Data) -> tuple[list[Model], Model | None, Model | None, dict[str, Any]]:
        cat = list(self.columns.cat_dims())
        t0 = time.perf_counter()
        models: list[Model] = []
        info: dict[str, Any] = {"model": self.options.model, "noise": {}}
        for m, X, y, s in zip(data.metrics, data.X, data.y, data.sigma, strict=True):
            if X.shape[0] < 2:
                raise StrategyError(f"metric {m!r} has {X.shape[0]} measured values; at least 2 are needed to model it")
            models.append(self._metric_model(m, X, y, s, cat))
            info["noise"][m] = "known" if _has_fixed_noise(models[-1]) else "inferred"
        feas = None
        n_failed = int(data.failed.sum())
        if self.options.feasibility and n_failed and n_failed < data.failed.shape[0]:
            feas = feasibility_model(data.X_all, data.failed, cat)
        cost = None
        if self.options.cost_aware:
            timed = [o for o in self._observations if o.duration_s is not None and o.duration_s > 0]
            if len(timed) < 2:
                raise StrategyError(
                    "cost_aware needs the duration of at least two finished experiments; the instruments report none"
                )
            X_t = self.columns.encode([o.conditions for o in timed])
            d = torch.tensor([[float(o.duration_s)] for o in timed], dtype=torch.float64)  # type: ignore[arg-type]
            cost = cost_model(X_t, d, cat)
        info["fit_s"] = round(time.perf_counter() - t0, 4)
        return models, feas, cost, info

    def _metric_model(self, name: str, X: Tensor, y: Tensor, s: Tensor, cat: list[int]) -> Model:
        if self.options.model == "saas":
            if cat:
                raise StrategyError("model 'saas' takes numeric inputs only; this space has categorical inputs")
            from surrogate.saas import SaasOptions, fit_saas_gp

            opts = SaasOptions(
                warmup=self.options.saas_warmup,
                num_samples=self.options.saas_samples,
                thinning=min(self.options.saas_thinning, self.options.saas_samples),
            )
            return fit_saas_gp(X, y, known_noise(s, y, self.options.noise), options=opts, seed=self.seed + self._step)
        # always fitted from the priors, never from the previous fit: the same observations give the same model,
        # so a campaign rebuilt from its store proposes what the uninterrupted one would have
        return metric_model(X, y, s, cat, self.options.noise, fit_points=self.options.fit_points)

    def _bayes(self, n: int, pending: list[Conditions], data: _Data) -> list[Proposal]:
        models, feas, cost, info = self._fit(data)
        outputs = models + ([feas] if feas is not None else [])
        model: Model = outputs[0] if len(outputs) == 1 else ModelListGP(*outputs)  # type: ignore[arg-type]
        constraints = self._constraints(len(models) if feas is not None else None)
        sampler = SobolQMCNormalSampler(torch.Size([self.options.mc_samples]), seed=self.seed * 7919 + self._step)
        X_pending = self._pending_tensor(pending)
        acq: AcquisitionFunction
        objectives = self.goal.objectives
        if len(objectives) == 1:
            score = score_transform(objectives[0])

            def single(Z: Tensor, X: Tensor | None = None) -> Tensor:
                return score(Z[..., 0])

            acq = qLogNoisyExpectedImprovement(
                model,
                X_baseline=data.X_success,
                sampler=sampler,
                objective=GenericMCObjective(single),
                constraints=constraints or None,
                X_pending=X_pending,
                prune_baseline=True,
            )
            info["acquisition"] = "qLogNEI"
        else:
            scores = [score_transform(o) for o in objectives]
            k = len(objectives)

            def multi(Z: Tensor, X: Tensor | None = None) -> Tensor:
                return torch.stack([f(Z[..., i]) for i, f in enumerate(scores)], dim=-1)

            acq = qLogNoisyExpectedHypervolumeImprovement(
                model,
                ref_point=self._ref_point(k),
                X_baseline=data.X_success,
                sampler=sampler,
                objective=GenericMCMultiOutputObjective(multi),
                constraints=constraints or None,
                X_pending=X_pending,
                prune_baseline=True,
            )
            info["acquisition"] = "qLogNEHVI"
        if cost is not None:
            acq = _CostWeighted(acq, cost, self.options.cost_exponent)
            info["acquisition"] += "/cost"
        X = self._optimize(acq, n)
        chosen = self._decode_new(X, pending)
        return self._explain(chosen, models, feas, cost, acq, info)

    def _constraints(self, feasibility_index: int | None) -> list[Transform]:
        out: list[Transform] = []
        for c in self.goal.outcome_constraints:
            j, b = self._metrics.index(c.name), float(c.bound)
            out.append(_upper(j, b) if c.op == "<=" else _lower(j, b))
        if feasibility_index is not None:
            out.append(_upper(feasibility_index, 0.5))
        return out

    def _ref_point(self, k: int) -> list[float]:
        refs = [reference_score(o) for o in self.goal.objectives]
        if all(r is not None for r in refs):
            return [float(r) for r in refs]  # type: ignore[arg-type]
        names = [o.name for o in self.goal.objectives]
        rows = [
            [o.values[m][0] for m in names]
            for o in self._observations
            if not o.failed and all(m in o.values and math.isfinite(o.values[m][0]) for m in names)
        ]
        columns = zip(*rows, strict=True)
        pairs = zip(self.goal.objectives, columns, strict=True)
        Y = torch.stack([score_transform(o)(torch.tensor(col, dtype=torch.float64)) for o, col in pairs], dim=-1)
        inferred = infer_reference_point(Y[is_non_dominated(Y)]).tolist()
        return [float(r) if r is not None else inferred[i] for i, r in enumerate(refs)]

    def _pending_tensor(self, pending: Sequence[Conditions]) -> Tensor | None:
        inside = [c for c in pending if not self.space.check(c)]
        return self.columns.encode(inside) if inside else None

    def _optimize(self, acq: AcquisitionFunction, q: int) -> Tensor:
        torch.manual_seed(self.seed * 104_729 + self._step)
        cols = self.columns
        common: dict[str, Any] = {
            "q": q,
            "num_restarts": self.options.num_restarts,
            "raw_samples": self.options.raw_samples,
            "inequality_constraints": cols.inequality_constraints or None,
            "equality_constraints": cols.equality_constraints or None,
        }
        with warnings.catch_warnings():
            # L-BFGS-B stopping "ABNORMAL" on a flat log-acquisition is routine; the best start is still returned
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", OptimizationWarning)
            if cols.cat_dims() or cols.discrete_dims():
                X, _ = optimize_acqf_mixed_alternating(
                    acq, cols.bounds(), discrete_dims=cols.discrete_dims(), cat_dims=cols.cat_dims(), **common
                )
            else:
                X, _ = optimize_acqf(
                    acq,
                    cols.bounds(),
                    options={"batch_limit": 8, "maxiter": 200},
                    retry_on_optimization_warning=False,
                    **common,
                )
        return X.detach().reshape(-1, cols.dim)

    def _decode_new(self, X: Tensor, pending: Sequence[Conditions]) -> list[tuple[dict[str, Any], str]]:
        """Decoded proposals, each new; a repeat (after rounding) or a point outside the space is replaced by the
        next new Sobol point."""
        seen: set[Key] = {canonical_key(o.conditions) for o in self._observations}
        seen |= {canonical_key(c) for c in pending}
        out: list[tuple[dict[str, Any], str]] = []
        for c in self.columns.decode(X):
            key = canonical_key(c)
            if key in seen or self.space.check(c):
                fill = self._sobol.ask(1, [*pending, *(x for x, _ in out)])[0].conditions
                out.append((fill, "botorch:sobol-fill"))
                seen.add(canonical_key(fill))
            else:
                out.append((c, self.generator))
                seen.add(key)
        check_proposals(self.space, [c for c, _ in out], self.generator)
        return out

    def _explain(
        self,
        chosen: list[tuple[dict[str, Any], str]],
        models: list[Model],
        feas: Model | None,
        cost: Model | None,
        acq: AcquisitionFunction,
        info: dict[str, Any],
    ) -> list[Proposal]:
        X = self.columns.encode([c for c, _ in chosen])
        names = self.columns.names()
        scales = lengthscales(models[0], names)
        out: list[Proposal] = []
        with torch.no_grad():
            acq_values = [float(acq(X[i : i + 1].unsqueeze(0))) for i in range(X.shape[0])]
            preds = [_mean_sd(m, X) for m in models]
            p_ok = feasible_probability(feas, X).tolist() if feas is not None else None
            durations = cost.posterior(X).mean.exp().reshape(-1).tolist() if cost is not None else None  # type: ignore[attr-defined]
        for i, (conditions, generator) in enumerate(chosen):
            state: dict[str, Any] = {**info, "lengthscales": scales, "n_train": len(self._observations)}
            if self.options.model == "saas":
                from surrogate.saas import SaasPyroGP, relevance

                if isinstance(models[0], SaasPyroGP):
                    state["relevance"] = relevance(models[0], names)
            if p_ok is not None:
                state["feasibility"] = round(float(p_ok[i]), 6)
            if durations is not None:
                state["predicted_duration_s"] = round(float(durations[i]), 3)
            out.append(
                Proposal(
                    conditions=conditions,
                    generator=generator,
                    predictions={m: (mu[i], sd[i]) for m, (mu, sd) in zip(self._metrics, preds, strict=True)},
                    acquisition_value=acq_values[i] if math.isfinite(acq_values[i]) else None,
                    model_state=state,
                )
            )
        return out

    def _sobol_proposal(self, p: Proposal, why: str) -> Proposal:
        return Proposal(conditions=p.conditions, generator=f"{self.generator}:sobol", model_state={"phase": why})


class _CostWeighted(AcquisitionFunction):
    """``log acq(X) − exponent · log(predicted duration of the batch)``: improvement per unit of lab time."""

    def __init__(self, base: AcquisitionFunction, cost: Model, exponent: float) -> None:
        super().__init__(model=base.model)
        self.base, self.cost, self.exponent = base, cost, exponent

    def forward(self, X: Tensor) -> Tensor:
        """X: ``b x q x d`` → ``b``."""
        log_d = self.cost.posterior(X).mean.squeeze(-1)  # type: ignore[attr-defined]  # b x q, log seconds
        return self.base(X) - self.exponent * torch.logsumexp(log_d, dim=-1)


def _upper(j: int, bound: float) -> Transform:
    """Constraint ``output j <= bound`` in BoTorch's form (feasible where negative)."""
    return lambda Z: Z[..., j] - bound


def _lower(j: int, bound: float) -> Transform:
    return lambda Z: bound - Z[..., j]


def _mean_sd(model: Model, X: Tensor) -> tuple[list[float], list[float]]:
    post = model.posterior(X.unsqueeze(-2))  # n x 1 x d: each point on its own
    mean, var = post.mean, post.variance  # type: ignore[attr-defined]
    if mean.dim() > 3:  # fully Bayesian: a mixture over MCMC samples (dim -4 after the point batch)
        mixture_mean = mean.mean(dim=-4)
        var = (var + mean**2).mean(dim=-4) - mixture_mean**2
        mean = mixture_mean
    return mean.reshape(-1).tolist(), var.clamp_min(0).sqrt().reshape(-1).tolist()


def _has_fixed_noise(model: Model) -> bool:
    from gpytorch.likelihoods import FixedNoiseGaussianLikelihood

    return isinstance(getattr(model, "likelihood", None), FixedNoiseGaussianLikelihood)
