"""The pool versions of the plain-BoTorch and BayBE peers (see `surrogate.peers.plain_botorch` and
`surrogate.peers.baybe_peer` for what each does). `surrogate.pool` imports this module after defining `PoolBase` and
registers its classes in ``POOL_STRATEGIES``: build them with `surrogate.pool.make_pool_strategy`. BoTorch and BayBE
are imported when a strategy is built or asked, not with this module."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from surrogate.base import Conditions, Observation, Proposal, StrategyError
from surrogate.botorch_space import BotorchSpace
from surrogate.encoding import canonical_key
from surrogate.objectives import Goal
from surrogate.peers.baybe_peer import PEER as BAYBE
from surrogate.peers.baybe_peer import baybe_objective, baybe_settings, measured_rows, require_baybe
from surrogate.peers.common import ACQUISITIONS, numeric_columns, single_objective
from surrogate.peers.options import BaybeOptions, PoolPlainLogEIOptions, PoolPlainUCBOptions
from surrogate.pool import PoolBase
from surrogate.space import CategoricalParameter, SearchSpace


# ------------------------------------------------------------------------------------------------ plain BoTorch
class PoolPlainBotorch(PoolBase):
    """Plain BoTorch on a pool: the acquisition on every remaining candidate, its argmax (sequential greedy with the
    q-version for batches and pending points); the pool's seeded random order before two successes."""

    generator = "botorch-logei"
    Options: Any = PoolPlainLogEIOptions
    options: PoolPlainLogEIOptions

    def __init__(
        self,
        space: SearchSpace,
        goal: Goal,
        seed: int,
        candidates: Sequence[Conditions],
        options: PoolPlainLogEIOptions | None = None,
    ) -> None:
        super().__init__(space, goal, seed, candidates, options)
        self.objective = single_objective(goal, self.generator)
        self.columns = BotorchSpace(space)
        numeric_columns(self.columns, self.generator)
        self.kind = ACQUISITIONS[self.generator]
        self._X = self.columns.encode(self._conditions)
        self.last_model: Any = None

    def _choose(self, n: int, free: np.ndarray, pending: list[Conditions]) -> list[Proposal]:
        from surrogate.peers.plain_botorch import (
            kernel_summary,
            make_acquisition,
            plain_gp,
            predict,
            seeded,
            training_data,
        )

        left = int(free.sum())
        X, y = training_data(self._observations, self.objective, self.columns, self.space)
        if X.shape[0] < 2:
            initial = {"phase": "initial"}
            return [self._proposal(i, f"{self.generator}:random", left, state=initial) for i in self._in_order(n, free)]
        step = len(self._observations) + len(pending)
        inside = [c for c in pending if not self.space.check(c)]
        X_pending = self.columns.encode(inside) if inside else None
        free_idx = np.flatnonzero(free)
        choices = self._X[torch.from_numpy(free_idx)]
        with seeded(self.seed * 104_729 + step):
            model = plain_gp(X, y, self.columns.bounds())
            acq = make_acquisition(
                self.kind,
                model,
                float(y.max()),
                beta=float(getattr(self.options, "beta", 0.0)),
                joint=n > 1 or X_pending is not None,
                X_pending=X_pending,
                mc_samples=self.options.mc_samples,
                seed=self.seed * 7919 + step,
            )
            from surrogate.pool import greedy_pick  # imported here: surrogate.pool imports this module

            picks, values = greedy_pick(acq, choices, n, self.options.chunk_size)
        self.last_model = model
        chosen = [int(free_idx[j]) for j in picks]
        preds = predict(model, self._X[chosen], self.objective)
        state: dict[str, Any] = {
            **kernel_summary(model),
            "acquisition": acq.__class__.__name__,
            "n_train": int(X.shape[0]),
        }
        return [
            self._proposal(
                i,
                self.generator,
                left,
                state=dict(state),
                predictions={self.objective.name: preds[k]},
                acquisition_value=values[k] if math.isfinite(values[k]) else None,
            )
            for k, i in enumerate(chosen)
        ]


class PoolPlainLogEI(PoolPlainBotorch):
    """Plain BoTorch LogEI on a pool."""

    generator = "botorch-logei"
    Options = PoolPlainLogEIOptions


class PoolPlainUCB(PoolPlainBotorch):
    """Plain BoTorch UCB on a pool."""

    generator = "botorch-ucb"
    Options = PoolPlainUCBOptions


# ------------------------------------------------------------------------------------------------------ BayBE
class BaybePoolStrategy(PoolBase):
    """BayBE's default recommender over a discrete search space built from the pool; see
    `surrogate.peers.baybe_peer`."""

    generator = BAYBE
    Options = BaybeOptions

    def __init__(
        self,
        space: SearchSpace,
        goal: Goal,
        seed: int,
        candidates: Sequence[Conditions],
        options: BaybeOptions | None = None,
    ) -> None:
        super().__init__(space, goal, seed, candidates, options)
        require_baybe()
        import pandas as pd
        from baybe import Campaign
        from baybe.parameters import CategoricalParameter as BaybeCategorical
        from baybe.parameters import NumericalDiscreteParameter
        from baybe.searchspace import SearchSpace as BaybeSpace
        from baybe.searchspace import SubspaceDiscrete

        self.objective, bb_objective = baybe_objective(goal)
        categorical = {p.name for p in space.parameters if isinstance(p, CategoricalParameter)}
        frame = pd.DataFrame(self._conditions, columns=space.input_names())
        params: list[Any] = []
        for name in space.input_names():
            values = sorted(set(frame[name].tolist()))
            if len(values) < 2:  # constant over the pool: nothing to learn from it, and BayBE needs two values
                continue
            if name in categorical:
                params.append(BaybeCategorical(name=name, values=tuple(str(v) for v in values)))
            else:
                params.append(NumericalDiscreteParameter(name=name, values=tuple(float(v) for v in values)))
        if not params:
            raise StrategyError("the baybe peer needs a pool whose candidates differ in at least one input")
        self._names = [p.name for p in params]
        self._categorical = categorical
        exp_rep = self._frame(self._conditions)
        # built directly: SubspaceDiscrete.from_dataframe validates each value against every allowed value (quadratic)
        subspace = SubspaceDiscrete(parameters=params, exp_rep=exp_rep)
        self.campaign = Campaign(
            BaybeSpace(discrete=subspace),
            bb_objective,
            allow_recommending_already_measured=False,
            allow_recommending_already_recommended=True,
            allow_recommending_pending_experiments=False,
        )

    def _frame(self, rows: Sequence[Conditions]) -> Any:
        import pandas as pd

        return pd.DataFrame(
            [{n: (str(c[n]) if n in self._categorical else float(c[n])) for n in self._names} for c in rows],
            columns=self._names,
        )

    def tell(self, results: Sequence[Observation]) -> None:
        """Marks the candidates used; measured pool candidates go to BayBE, failed ones are excluded from its
        candidates, observations outside the pool are not told to it."""
        super().tell(results)
        in_pool = [r for r in results if canonical_key(r.conditions) in self._index]
        ok = measured_rows(in_pool, self.objective)
        failed = [r for r in in_pool if r not in ok]
        with baybe_settings(preprocess=False):  # values are the pool's own: nothing to validate
            if ok:
                df = self._frame([r.conditions for r in ok])
                df[self.objective.name] = [float(r.values[self.objective.name][0]) for r in ok]
                self.campaign.add_measurements(df)
            if failed:
                self.campaign.toggle_discrete_candidates(self._frame([r.conditions for r in failed]), exclude=True)

    def _choose(self, n: int, free: np.ndarray, pending: list[Conditions]) -> list[Proposal]:
        left = int(free.sum())
        in_pool = [c for c in pending if canonical_key(c) in self._index]
        pend = self._frame(in_pool) if in_pool else None
        step = len(self._observations) + len(pending)
        phase = "random" if len(self.campaign.measurements) < 1 else "botorch"
        with baybe_settings(seed=self.seed * 7919 + step, preprocess=False):
            rec = self.campaign.recommend(batch_size=n, pending_experiments=pend)
        out = []
        for label in rec.index:
            i = int(label)  # the subspace's index is the pool's
            if not (0 <= i < self.size and all(_same(rec.at[label, k], self._conditions[i][k]) for k in self._names)):
                raise StrategyError(f"baybe recommended row {label}, which does not match pool candidate {i}")
            out.append(self._proposal(i, f"{BAYBE}:{phase}", left, state={"recommender": phase}))
        return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(b, str):
        return str(a) == b
    return float(a) == float(b)
