"""Pool-based strategies: a campaign that may only choose among a fixed, finite set of candidate conditions (a
benchmark that replays measured data, as in Liang et al. 2021, npj Comput. Mater. 7:188, or a lab's library of
candidate compositions). Each candidate is chosen at most once.

Build one with `make_pool_strategy(name, space, goal, seed, candidates, options)`; ``name`` is a key of
`POOL_STRATEGIES` (``random``, ``sobol``, ``botorch``; add more there). Every strategy satisfies the `Strategy`
protocol of `surrogate.base` and the `PoolStrategy` protocol below. An ``ask(n, pending)`` returns ``n`` distinct
candidates that are neither told nor pending (matched by `canonical_key`), fewer when fewer remain, and raises
`StrategyError` ("pool exhausted") when none remain. Failed observations use up their candidate. Observations of
conditions outside the pool are accepted (the model-based strategy learns from them) but use up nothing.

* ``random``: a seeded random permutation of the pool, taken in order skipping used and pending candidates
  (uniform without replacement, and the same history gives the same proposals).
* ``sobol``: one scrambled Sobol sequence in `UnitEncoding`'s cube (uniform on composition simplexes, log scales
  honoured), each point mapped to the nearest unused candidate in `BotorchSpace`'s [0, 1] columns (Euclidean;
  categoricals must match when an unused candidate with that category exists). Like the continuous Sobol baseline,
  an ask starts at ``max(previous end, told + pending)``, so a resumed campaign continues the same sequence.
* ``botorch``: ``initial_points`` random candidates (until at least two successes), then a GP per metric
  (`metric_model`) on everything observed and the acquisition evaluated on every remaining candidate, in chunks of
  ``chunk_size`` without gradients. ``auto`` (the default): ``UCB`` for one unconstrained objective while nothing
  has failed, else ``qLogNEI``. ``qLogNEI``: qLogNoisyExpectedImprovement (several objectives:
  qLogNoisyExpectedHypervolumeImprovement, reference point from the thresholds or inferred from the observed
  front), outcome constraints and the learned feasibility as smoothed constraints, exactly as the continuous
  strategy; ``UCB``: qUpperConfidenceBound with ``beta`` on the objective score (one objective; constraints are
  ignored); ``TS``: Thompson sampling, one joint posterior draw over the remaining candidates per proposal (one
  objective). For ``n > 1`` proposals are chosen sequentially greedy with the chosen ones as ``X_pending`` (what
  BoTorch's ``optimize_acqf_discrete`` does), TS with one draw per proposal.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from pydantic import BaseModel, Field
from scipy.stats import qmc
from torch import Tensor

from surrogate.base import Conditions, ConditionValue, Observation, Proposal, Strategy, StrategyError, StrategyWarning
from surrogate.botorch_space import BotorchSpace
from surrogate.encoding import Key, UnitEncoding, canonical_key
from surrogate.objectives import Goal
from surrogate.options import StrategyOptions
from surrogate.space import SearchSpace

#: distance added per mismatched categorical in the Sobol strategy's nearest-candidate search (columns are in [0, 1])
_CATEGORY_MISMATCH = 1e6
_SOBOL_CHUNK = 64


# --------------------------------------------------------------------------------------------- protocol & options
@runtime_checkable
class PoolStrategy(Strategy, Protocol):
    """A `Strategy` that proposes only candidates of a fixed pool, each at most once."""

    @property
    def candidates(self) -> list[dict[str, ConditionValue]]:
        """The pool (duplicates removed), in the order given."""
        ...

    def remaining(self, pending: Sequence[Conditions] = ()) -> int:
        """How many candidates are neither told nor in ``pending``."""
        ...


class PoolRandomOptions(StrategyOptions):
    """Uniform random choice among the unused candidates (no options)."""


class PoolSobolOptions(StrategyOptions):
    """Scrambled Sobol points, each mapped to the nearest unused candidate (no options)."""


class PoolBotorchOptions(StrategyOptions):
    """GP-based choice among the candidates; see the module docstring.

    ``initial_points``: random candidates before the first model (more are drawn until two successes).
    ``acquisition``: ``auto`` (the default: ``UCB`` for one objective with no outcome constraint while no experiment
    has failed, ``qLogNEI`` otherwise, which handles several objectives, constraints and failures), ``qLogNEI``
    (qLogNEHVI for several objectives), ``UCB`` (``beta``: the weight of the posterior standard deviation is
    ``sqrt(beta)``) or ``TS`` (Thompson sampling). ``auto`` was chosen on the two measured pools of
    ``benchmarks/bench_sweeps/peers_pool.yaml``: UCB with β = 2 needed 20 % and 29 % fewer experiments than qLogNEI
    to find 80 % of the top 5 % (``benchmarks/pool_screen.py``; ``docs/benchmarks.md`` compares it with the peers).
    ``mc_samples``: quasi-MC samples of the posterior. ``noise`` as for the continuous strategy (``known`` uses each
    σ). ``feasibility``: learn where experiments fail and steer away (qLogNEI only). ``fit_points``: hyperparameters
    are fitted on at most this many observations (the best quarter and a spread of the rest), the model then
    conditions on all (150 keeps an ask under a second at 300 observations and 5,000 candidates). ``chunk_size``:
    candidates per batched acquisition evaluation.
    ``ts_exact_max``: TS draws jointly from the exact posterior up to this many remaining candidates, beyond that
    from a pathwise (random Fourier feature) approximation; with categorical inputs (no feature map for their
    kernel) from the exact posterior on a random subset of ``ts_exact_max`` of them."""

    initial_points: int = Field(default=2, ge=1, le=10_000)
    acquisition: Literal["auto", "qLogNEI", "UCB", "TS"] = "auto"
    beta: float = Field(default=2.0, gt=0.0, le=1000.0)
    mc_samples: int = Field(default=128, ge=16, le=4096)
    noise: Literal["auto", "known", "inferred"] = "auto"
    feasibility: bool = True
    fit_points: int = Field(default=150, ge=10)
    chunk_size: int = Field(default=512, ge=1, le=65_536)
    ts_exact_max: int = Field(default=2000, ge=1, le=20_000)


# ------------------------------------------------------------------------------------------------------ the base
class PoolBase:
    """The bookkeeping shared by pool strategies: the pool (validated against the space, duplicates removed with a
    `StrategyWarning`), which candidates are used, and the ask/tell protocol. A subclass implements `_choose`, and
    is built as ``Subclass(space, goal, seed, candidates, options)`` with an ``Options`` pydantic model."""

    generator = "pool"
    Options: type[StrategyOptions] = StrategyOptions

    def __init__(
        self,
        space: SearchSpace,
        goal: Goal | None,
        seed: int,
        candidates: Sequence[Conditions],
        options: StrategyOptions | None = None,
    ) -> None:
        self.space, self.goal, self.seed = space, goal, seed
        self.options = options if options is not None else self.Options()
        self._conditions: list[dict[str, ConditionValue]] = []
        self._index: dict[Key, int] = {}
        duplicates = 0
        for i, c in enumerate(candidates):
            problems = space.check(c)
            if problems:
                raise StrategyError(f"candidate {i} {dict(c)} is outside the space: {'; '.join(problems)}")
            key = canonical_key(c)
            if key in self._index:
                duplicates += 1
                continue
            self._index[key] = len(self._conditions)
            self._conditions.append({n: c[n] for n in space.input_names()})
        if not self._conditions:
            raise StrategyError("the candidate pool is empty")
        if duplicates:
            warnings.warn(
                f"{duplicates} duplicate candidate(s) dropped from the pool ({len(self._conditions)} remain)",
                StrategyWarning,
                stacklevel=3,
            )
        self.size = len(self._conditions)
        self._used = np.zeros(self.size, dtype=bool)
        self._observations: list[Observation] = []
        # a fixed random order of the pool: the random strategy and the model's initial design take it in turn
        self._order = np.random.default_rng([seed, 0x9001]).permutation(self.size)

    # --- the protocol -------------------------------------------------------------------------------------------
    @property
    def candidates(self) -> list[dict[str, ConditionValue]]:
        return [dict(c) for c in self._conditions]

    def remaining(self, pending: Sequence[Conditions] = ()) -> int:
        return int(self._free(pending).sum())

    def tell(self, results: Sequence[Observation]) -> None:
        """Marks the candidates of ``results`` as used (failed ones too) and keeps the observations."""
        for r in results:
            i = self._index.get(canonical_key(r.conditions))
            if i is not None:
                self._used[i] = True
        self._observations.extend(results)

    def ask(self, n: int, pending: Sequence[Conditions]) -> list[Proposal]:
        """``min(n, remaining)`` distinct unused candidates; `StrategyError` when the pool is exhausted."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n == 0:
            return []
        pending = list(pending)
        free = self._free(pending)
        left = int(free.sum())
        if left == 0:
            n_pending = sum(1 for c in pending if canonical_key(c) in self._index)
            raise StrategyError(
                f"pool exhausted: all {self.size} candidates are observed ({int(self._used.sum())}) "
                f"or pending ({n_pending})"
            )
        proposals = self._choose(min(n, left), free, pending)
        seen: set[Key] = set()
        for p in proposals:  # the guarantee, checked: inside the pool, unused, distinct
            key = canonical_key(p.conditions)
            i = self._index.get(key)
            if i is None or not free[i] or key in seen:
                raise StrategyError(f"{self.generator} proposed {p.conditions}, which is not an unused candidate")
            seen.add(key)
        return proposals

    # --- for subclasses -----------------------------------------------------------------------------------------
    def _free(self, pending: Sequence[Conditions]) -> np.ndarray:
        free = ~self._used
        for c in pending:
            i = self._index.get(canonical_key(c))
            if i is not None:
                free[i] = False
        return free

    def _proposal(self, i: int, generator: str, left: int, **extra: Any) -> Proposal:
        state = {"pool_index": int(i), "pool_size": self.size, "pool_remaining": left, **extra.pop("state", {})}
        return Proposal(conditions=dict(self._conditions[i]), generator=generator, model_state=state, **extra)

    def _in_order(self, n: int, free: np.ndarray) -> list[int]:
        """The first ``n`` free candidates of the fixed random order."""
        order = self._order[free[self._order]]
        return [int(i) for i in order[:n]]

    def _choose(self, n: int, free: np.ndarray, pending: list[Conditions]) -> list[Proposal]:
        """``n`` (at most the number free) proposals among the ``free`` candidates."""
        raise NotImplementedError


class PoolRandomStrategy(PoolBase):
    """Uniform without replacement, seeded; see the module docstring."""

    generator = "pool_random"
    Options = PoolRandomOptions

    def _choose(self, n: int, free: np.ndarray, pending: list[Conditions]) -> list[Proposal]:
        left = int(free.sum())
        return [self._proposal(i, self.generator, left) for i in self._in_order(n, free)]


class PoolSobolStrategy(PoolBase):
    """Scrambled Sobol points mapped to the nearest unused candidates; see the module docstring."""

    generator = "pool_sobol"
    Options = PoolSobolOptions

    def __init__(
        self,
        space: SearchSpace,
        goal: Goal | None,
        seed: int,
        candidates: Sequence[Conditions],
        options: StrategyOptions | None = None,
    ) -> None:
        super().__init__(space, goal, seed, candidates, options)
        self.unit = UnitEncoding(space)
        self.columns = BotorchSpace(space)
        X = self.columns.encode(self._conditions).numpy()
        self._categorical = np.array([c.kind == "categorical" for c in self.columns.columns])
        self._numeric_X = X[:, ~self._categorical]
        self._category_X = X[:, self._categorical]
        self._engine = qmc.Sobol(d=self.unit.dim, scramble=True, seed=np.random.default_rng(seed))
        self._stream = np.empty((0, self.unit.dim))
        self._cursor = 0

    def _choose(self, n: int, free: np.ndarray, pending: list[Conditions]) -> list[Proposal]:
        left = int(free.sum())
        start = max(self._cursor, len(self._observations) + len(pending))
        while self._stream.shape[0] < start + n:
            self._stream = np.vstack([self._stream, self._engine.random(_SOBOL_CHUNK)])
        free = free.copy()
        out = []
        for pos in range(start, start + n):
            target = self.columns.encode([self.unit.from_unit(self._stream[pos])]).numpy()[0]
            d = ((self._numeric_X - target[~self._categorical]) ** 2).sum(axis=1)
            d += _CATEGORY_MISMATCH * (self._category_X != target[self._categorical]).sum(axis=1)
            d[~free] = np.inf
            i = int(np.argmin(d))
            free[i] = False
            out.append(self._proposal(i, self.generator, left, state={"stream_position": pos}))
        self._cursor = start + n
        return out


# ------------------------------------------------------------------------------------------------ the GP strategy
class PoolBotorchStrategy(PoolBase):
    """A GP per metric and an acquisition over the remaining candidates; see the module docstring and
    `PoolBotorchOptions`."""

    generator = "pool_botorch"
    Options = PoolBotorchOptions
    options: PoolBotorchOptions

    def __init__(
        self,
        space: SearchSpace,
        goal: Goal,
        seed: int,
        candidates: Sequence[Conditions],
        options: PoolBotorchOptions | None = None,
    ) -> None:
        super().__init__(space, goal, seed, candidates, options)
        if goal is None:
            raise StrategyError("the botorch pool strategy needs a goal")
        self.columns = BotorchSpace(space)
        self._X = self.columns.encode(self._conditions)
        objective_names = [o.name for o in goal.objectives]
        constraint_names = [c.name for c in goal.outcome_constraints]
        self._metrics = objective_names + [n for n in dict.fromkeys(constraint_names) if n not in objective_names]
        if len(goal.objectives) > 1 and self.options.acquisition not in ("auto", "qLogNEI"):
            raise StrategyError(
                f"acquisition {self.options.acquisition!r} handles one objective; this goal has "
                f"{len(goal.objectives)}: use 'qLogNEI' (qLogNEHVI over the pool)"
            )

    @property
    def acquisition(self) -> Literal["qLogNEI", "UCB", "TS"]:
        """The acquisition of the next ask: ``auto`` resolved on the goal and what has been observed."""
        chosen = self.options.acquisition
        if chosen != "auto":
            return chosen
        goal = self.goal
        simple = goal is not None and len(goal.objectives) == 1 and not goal.outcome_constraints
        return "UCB" if simple and not any(o.failed for o in self._observations) else "qLogNEI"

    def tell(self, results: Sequence[Observation]) -> None:
        for r in results:
            if not r.failed and self.space.check(r.conditions):
                raise StrategyError(f"observation outside the space: {r.conditions}: {self.space.check(r.conditions)}")
        super().tell(results)

    def _choose(self, n: int, free: np.ndarray, pending: list[Conditions]) -> list[Proposal]:
        left = int(free.sum())
        objectives = [o.name for o in self.goal.objectives]  # type: ignore[union-attr]
        ok = [o for o in self._observations if not o.failed]
        successes = [o for o in ok if all(m in o.values and math.isfinite(o.values[m][0]) for m in objectives)]
        if len(successes) < 2 or len(self._observations) < self.options.initial_points:
            state = {"phase": "initial"}
            return [self._proposal(i, f"{self.generator}:random", left, state=state) for i in self._in_order(n, free)]
        return self._bayes(n, free, pending, ok, successes)

    # --- models -------------------------------------------------------------------------------------------------
    def _fit(self, ok: list[Observation]) -> tuple[list[Any], Any]:
        from surrogate.botorch_models import feasibility_model

        cat = list(self.columns.cat_dims())
        models = []
        for m in self._metrics:
            rows = [o for o in ok if m in o.values and math.isfinite(o.values[m][0])]
            if len(rows) < 2:
                raise StrategyError(f"metric {m!r} has {len(rows)} measured values; at least 2 are needed to model it")
            X = self.columns.encode([o.conditions for o in rows])
            y = torch.tensor([[o.values[m][0]] for o in rows], dtype=torch.float64)
            s = torch.tensor([[abs(o.values[m][1])] for o in rows], dtype=torch.float64)
            models.append(self._metric_model(X, y, s, cat))
        feas = None
        failed = torch.tensor([[1.0 if o.failed else 0.0] for o in self._observations], dtype=torch.float64)
        n_failed = int(failed.sum())
        if self.options.feasibility and self.acquisition == "qLogNEI" and 0 < n_failed < failed.shape[0]:
            feas = feasibility_model(self.columns.encode([o.conditions for o in self._observations]), failed, cat)
        return models, feas

    def _metric_model(self, X: Tensor, y: Tensor, s: Tensor, cat: list[int]) -> Any:
        from surrogate.botorch_models import metric_model

        return metric_model(X, y, s, cat, self.options.noise, fit_points=self.options.fit_points)

    # --- acquisition --------------------------------------------------------------------------------------------
    def _bayes(
        self, n: int, free: np.ndarray, pending: list[Conditions], ok: list[Observation], successes: list[Observation]
    ) -> list[Proposal]:
        from botorch.models import ModelListGP

        from surrogate.botorch_models import lengthscales

        left = int(free.sum())
        t0 = time.perf_counter()
        models, feas = self._fit(ok)
        fit_s = time.perf_counter() - t0
        outputs = models + ([feas] if feas is not None else [])
        model = outputs[0] if len(outputs) == 1 else ModelListGP(*outputs)
        free_idx = torch.from_numpy(np.flatnonzero(free))
        choices = self._X[free_idx]
        inside = [c for c in pending if not self.space.check(c)]
        X_pending = self.columns.encode(inside) if inside else None
        X_baseline = self.columns.encode([o.conditions for o in successes])
        t1 = time.perf_counter()
        screened = None
        if len(self.goal.objectives) > 1:  # type: ignore[union-attr]
            keep = self._hypervolume_screen(models, choices, X_baseline)
            if int(keep.sum()) >= n:
                free_idx, choices, screened = free_idx[keep], choices[keep], int(keep.sum())
        if self.acquisition == "TS":
            picks, values = self._thompson(models[0], choices, n)
            name = "TS"
        else:
            acq, name = self._acquisition(model, len(models) if feas is not None else None, X_baseline, X_pending)
            picks, values = greedy_pick(acq, choices, n, self.options.chunk_size)
        acq_s = time.perf_counter() - t1
        chosen = [int(free_idx[j]) for j in picks]
        X = self._X[chosen]
        with torch.no_grad():
            preds = [_mean_sd(m, X) for m in models]
            p_ok = _feasible(feas, X) if feas is not None else None
        info: dict[str, Any] = {
            "acquisition": name,
            "lengthscales": lengthscales(models[0], self.columns.names()),
            "n_train": len(self._observations),
            "fit_s": round(fit_s, 4),
            "acquisition_s": round(acq_s, 4),
        }
        if screened is not None:
            info["candidates_evaluated"] = screened
        out = []
        for k, i in enumerate(chosen):
            state = dict(info)
            if p_ok is not None:
                state["feasibility"] = round(float(p_ok[k]), 6)
            value = float(values[k])
            out.append(
                self._proposal(
                    i,
                    self.generator,
                    left,
                    state=state,
                    predictions={m: (mu[k], sd[k]) for m, (mu, sd) in zip(self._metrics, preds, strict=True)},
                    acquisition_value=value if math.isfinite(value) else None,
                )
            )
        return out

    def _sampler(self) -> Any:
        from botorch.sampling import SobolQMCNormalSampler

        seed = self.seed * 7919 + len(self._observations)  # the same history gives the same proposals
        return SobolQMCNormalSampler(torch.Size([self.options.mc_samples]), seed=seed)

    def _acquisition(
        self, model: Any, feasibility_index: int | None, X_baseline: Tensor, X_pending: Tensor | None
    ) -> tuple[Any, str]:
        from botorch.acquisition import qUpperConfidenceBound
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
        from botorch.acquisition.multi_objective.objective import GenericMCMultiOutputObjective
        from botorch.acquisition.objective import GenericMCObjective

        from surrogate.botorch_strategy import score_transform

        objectives = self.goal.objectives  # type: ignore[union-attr]
        if len(objectives) == 1:
            score = score_transform(objectives[0])

            def single(Z: Tensor, X: Tensor | None = None) -> Tensor:
                return score(Z[..., 0])

            if self.acquisition == "UCB":
                ucb = qUpperConfidenceBound(
                    model,
                    beta=self.options.beta,
                    sampler=self._sampler(),
                    objective=GenericMCObjective(single),
                    X_pending=X_pending,
                )
                return ucb, "UCB"
            nei = qLogNoisyExpectedImprovement(
                model,
                X_baseline=X_baseline,
                sampler=self._sampler(),
                objective=GenericMCObjective(single),
                constraints=self._constraints(feasibility_index) or None,
                X_pending=X_pending,
                prune_baseline=True,
            )
            return nei, "qLogNEI"
        scores = [score_transform(o) for o in objectives]

        def multi(Z: Tensor, X: Tensor | None = None) -> Tensor:
            return torch.stack([f(Z[..., i]) for i, f in enumerate(scores)], dim=-1)

        nehvi = qLogNoisyExpectedHypervolumeImprovement(
            model,
            ref_point=self._ref_point(),
            X_baseline=X_baseline,
            sampler=self._sampler(),
            objective=GenericMCMultiOutputObjective(multi),
            constraints=self._constraints(feasibility_index) or None,
            X_pending=X_pending,
            prune_baseline=True,
        )
        return nehvi, "qLogNEHVI"

    def _constraints(self, feasibility_index: int | None) -> list[Callable[[Tensor], Tensor]]:
        out: list[Callable[[Tensor], Tensor]] = []
        for c in self.goal.outcome_constraints:  # type: ignore[union-attr]
            j, b = self._metrics.index(c.name), float(c.bound)
            out.append(_upper(j, b) if c.op == "<=" else _lower(j, b))
        if feasibility_index is not None:
            out.append(_upper(feasibility_index, 0.5))
        return out

    def _ref_point(self) -> list[float]:
        from botorch.utils.multi_objective.hypervolume import infer_reference_point
        from botorch.utils.multi_objective.pareto import is_non_dominated

        from surrogate.botorch_strategy import reference_score, score_transform

        objectives = self.goal.objectives  # type: ignore[union-attr]
        refs = [reference_score(o) for o in objectives]
        if all(r is not None for r in refs):
            return [float(r) for r in refs]  # type: ignore[arg-type]
        names = [o.name for o in objectives]
        rows = [
            [o.values[m][0] for m in names]
            for o in self._observations
            if not o.failed and all(m in o.values and math.isfinite(o.values[m][0]) for m in names)
        ]
        Y = torch.tensor(rows, dtype=torch.float64)
        Y = torch.stack([score_transform(o)(Y[:, i]) for i, o in enumerate(objectives)], dim=-1)
        inferred = infer_reference_point(Y[is_non_dominated(Y)]).tolist()
        return [float(r) if r is not None else inferred[i] for i, r in enumerate(refs)]

    def _hypervolume_screen(self, models: list[Any], choices: Tensor, X_baseline: Tensor) -> Tensor:
        """The candidates worth an evaluation of qLogNEHVI (a mask over ``choices``): those whose optimistic score
        (posterior mean + 3σ, per objective) beats the reference point and is not dominated by the front of the
        posterior means at the observed points. The others' hypervolume improvement is negligible."""
        from botorch.utils.multi_objective.pareto import is_non_dominated

        chunk = self.options.chunk_size
        upper, front = [], []
        with torch.no_grad():
            for o, m in zip(self.goal.objectives, models, strict=False):  # type: ignore[union-attr]
                parts = [_mean_sd_tensor(m, choices[s : s + chunk]) for s in range(0, choices.shape[0], chunk)]
                mu, sd = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
                mb = _mean_sd_tensor(m, X_baseline)[0]
                if o.direction == "maximize":
                    upper.append(mu + 3 * sd)
                    front.append(mb)
                elif o.direction == "minimize":
                    upper.append(-mu + 3 * sd)
                    front.append(-mb)
                else:
                    t = float(o.target)  # type: ignore[arg-type]
                    upper.append(-((mu - t).abs() - 3 * sd).clamp_min(0.0))
                    front.append(-(mb - t).abs())
        U, B = torch.stack(upper, dim=-1), torch.stack(front, dim=-1)
        B = B[is_non_dominated(B)]
        ref = torch.tensor(self._ref_point(), dtype=U.dtype)
        keep = (U - ref > 0).all(dim=-1)
        for s in range(0, U.shape[0], chunk):
            dominated = (B.unsqueeze(0) >= U[s : s + chunk].unsqueeze(1)).all(dim=-1).any(dim=-1)
            keep[s : s + chunk] &= ~dominated
        return keep

    def _thompson(self, model: Any, choices: Tensor, n: int) -> tuple[list[int], list[float]]:
        """One posterior draw of the objective score over the remaining candidates per proposal; its argmax among
        those not yet chosen. Exact joint draws up to ``ts_exact_max`` candidates, pathwise draws beyond."""
        from surrogate.botorch_strategy import score_transform

        score = score_transform(self.goal.objectives[0])  # type: ignore[union-attr]
        picks: list[int] = []
        values: list[float] = []
        taken = torch.zeros(choices.shape[0], dtype=torch.bool)
        with torch.random.fork_rng():
            torch.manual_seed(self.seed * 104_729 + len(self._observations))
            for _ in range(n):
                f = score(_draw(model, choices, self.options.ts_exact_max, self.options.chunk_size))
                f[taken] = -math.inf
                j = int(torch.argmax(f))
                taken[j] = True
                picks.append(j)
                values.append(float(f[j]))
        return picks, values


# ------------------------------------------------------------------------------------------------------- helpers
def greedy_pick(acq: Any, choices: Tensor, q: int, chunk: int) -> tuple[list[int], list[float]]:
    """Sequential greedy maximization of ``acq`` over the rows of ``choices`` (``m x d``), each pick then pending;
    indices into ``choices`` and the acquisition values at the time of each pick (as `optimize_acqf_discrete`)."""
    base_pending = getattr(acq, "X_pending", None)  # analytic acquisitions (one pick) have none
    picks: list[int] = []
    values: list[float] = []
    taken = torch.zeros(choices.shape[0], dtype=torch.bool)
    X = choices.unsqueeze(-2)  # m x 1 x d: each candidate on its own
    try:
        for _ in range(q):
            with torch.no_grad():
                a = torch.cat([acq(X[s : s + chunk]).reshape(-1) for s in range(0, X.shape[0], chunk)])
            a = torch.nan_to_num(a, nan=-math.inf)
            a[taken] = -math.inf
            j = int(torch.argmax(a))
            taken[j] = True
            picks.append(j)
            values.append(float(a[j]))
            if len(picks) < q:
                chosen = choices[picks]
                acq.set_X_pending(chosen if base_pending is None else torch.cat([base_pending, chosen], dim=-2))
    finally:
        if q > 1:  # only a batch changed the pending points (analytic acquisitions cannot take them)
            acq.set_X_pending(base_pending)
    return picks, values


def _draw(model: Any, X: Tensor, exact_max: int, chunk: int) -> Tensor:
    """One joint posterior draw of output 0 at the rows of ``X`` (``m``)."""
    with torch.no_grad():
        if X.shape[0] <= exact_max:
            return model.posterior(X).rsample(torch.Size([1])).reshape(-1)
        try:
            from botorch.sampling.pathwise import draw_matheron_paths

            path = draw_matheron_paths(model, sample_shape=torch.Size([1]))
            return torch.cat([path(X[s : s + chunk]).reshape(-1) for s in range(0, X.shape[0], chunk)])
        except Exception:  # a kernel without a feature map (mixed inputs): exact on a random subset, −inf elsewhere
            out = torch.full((X.shape[0],), -math.inf, dtype=X.dtype)
            sub = torch.randperm(X.shape[0])[:exact_max]
            out[sub] = model.posterior(X[sub]).rsample(torch.Size([1])).reshape(-1)
            return out


def _mean_sd(model: Any, X: Tensor) -> tuple[list[float], list[float]]:
    post = model.posterior(X.unsqueeze(-2))
    return post.mean.reshape(-1).tolist(), post.variance.clamp_min(0).sqrt().reshape(-1).tolist()


def _mean_sd_tensor(model: Any, X: Tensor) -> tuple[Tensor, Tensor]:
    post = model.posterior(X.unsqueeze(-2))
    return post.mean.reshape(-1), post.variance.clamp_min(0).sqrt().reshape(-1)


def _feasible(model: Any, X: Tensor) -> list[float]:
    from surrogate.botorch_models import feasible_probability

    return feasible_probability(model, X).tolist()


def _upper(j: int, bound: float) -> Callable[[Tensor], Tensor]:
    return lambda Z: Z[..., j] - bound


def _lower(j: int, bound: float) -> Callable[[Tensor], Tensor]:
    return lambda Z: bound - Z[..., j]


# ------------------------------------------------------------------------------------------------------ registry
# the peers (surrogate.peers) subclass PoolBase: imported once it is defined
from surrogate.peers.ax_pool import AxPoolStrategy  # noqa: E402
from surrogate.peers.pool_peers import BaybePoolStrategy, PoolPlainLogEI, PoolPlainUCB  # noqa: E402

#: pool strategies by name; each has an ``Options`` pydantic model and is built as
#: ``factory(space, goal, seed, candidates, options)``
POOL_STRATEGIES: dict[str, type[PoolBase]] = {
    "random": PoolRandomStrategy,
    "sobol": PoolSobolStrategy,
    "botorch": PoolBotorchStrategy,
    "botorch-logei": PoolPlainLogEI,
    "botorch-ucb": PoolPlainUCB,
    "ax-pool": AxPoolStrategy,
    "baybe": BaybePoolStrategy,
}


def pool_strategy_names() -> list[str]:
    return list(POOL_STRATEGIES)


def validate_pool_options(name: str, options: Mapping[str, Any] | None = None) -> BaseModel:
    """The validated options of pool strategy ``name``: `ValueError` for an unknown name, pydantic's
    `ValidationError` (a `ValueError`) for bad options."""
    if name not in POOL_STRATEGIES:
        raise ValueError(f"unknown pool strategy {name!r}; valid: {', '.join(POOL_STRATEGIES)}")
    return POOL_STRATEGIES[name].Options.model_validate(dict(options or {}))


def make_pool_strategy(
    name: str,
    space: SearchSpace,
    goal: Goal,
    seed: int,
    candidates: Sequence[Conditions],
    options: Mapping[str, Any] | None = None,
) -> PoolBase:
    """Builds pool strategy ``name`` over ``candidates`` (each must lie in ``space``), seeded by ``seed``."""
    opts = validate_pool_options(name, options)
    return POOL_STRATEGIES[name](space, goal, seed, candidates, opts)  # type: ignore[arg-type]
