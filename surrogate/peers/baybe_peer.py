"""BayBE's default recommender as a peer, through its Campaign API, as a lab would use BayBE out of the box.

BayBE (emdgroup/baybe, ``pip install matloop[peers]``) ships ``TwoPhaseMetaRecommender``: a ``RandomRecommender``
until the campaign has one measurement, then a ``BotorchRecommender`` (its GP surrogate with BayBE's own kernel
and priors, its default acquisition). The peer builds a ``Campaign`` with that default recommender and a
``NumericalTarget`` (maximize or minimize the one objective; targets and several objectives are refused by name).

* Pools (`surrogate.peers.pool_peers.BaybePoolStrategy`): a discrete search space built from the pool (a
  ``NumericalDiscreteParameter`` per numeric input, a ``CategoricalParameter`` per categorical one, the pool as the
  experimental representation), ``allow_recommending_already_measured=False`` and
  ``allow_recommending_pending_experiments=False`` with the pending candidates passed as ``pending_experiments``,
  so a measured or pending candidate is never proposed; failed candidates are excluded with
  ``toggle_discrete_candidates``. ``allow_recommending_already_recommended=True``: a proposal never run may come
  again, so the proposals depend on the history alone. The subspace is built directly (``SubspaceDiscrete(...)``)
  and measurements are added with BayBE's dataframe preprocessing off, because BayBE's value validation compares
  every value with every allowed value (quadratic: 30 s for 1,000 candidates, hours for 5,000); the values come
  from the pool itself, so there is nothing to validate. Observations outside the pool are not told to BayBE (its
  discrete space cannot hold them).
* Continuous spaces (`BaybeStrategy`): a ``NumericalContinuousParameter`` per float input and per free composition
  component (in measured units: BayBE has no log scale, so log-scaled inputs are searched linearly), each
  composition's sum as a ``ContinuousLinearConstraint`` with ``=``, linear constraints with ``<=``/``>=``. Integer
  and categorical inputs are refused (they would make a hybrid space). Recommendations are mapped onto the space
  (sums restored within the component bounds); a repeat is replaced by the next new Sobol point.
* Pending experiments go to ``recommend(pending_experiments=...)``. Failed experiments are not told (BayBE's
  default recommender has no failure model). Each recommendation runs under ``Settings(random_seed=...)`` seeded from
  the strategy seed and the number of observations plus pending points, so runs are reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from surrogate.base import Conditions, Observation, Proposal, StrategyError
from surrogate.encoding import FIXED_WIDTH, Key, canonical_key, check_proposals
from surrogate.objectives import Goal, Objective
from surrogate.options import SobolOptions
from surrogate.peers.common import single_objective
from surrogate.peers.options import BaybeOptions
from surrogate.space import CategoricalParameter, CompositionParameter, FloatParameter, IntParameter, SearchSpace

PEER = "baybe"
INSTALL_HINT = "pip install 'matloop[peers]' (baybe>=0.15)"


def require_baybe() -> None:
    """`StrategyError` naming the extra to install when BayBE is missing (or too old for the API used here)."""
    try:
        import baybe  # noqa: F401
        from baybe.settings import Settings  # noqa: F401  (0.15: seeding and preprocessing switches)
    except ImportError as e:
        raise StrategyError(f"the baybe peer needs BayBE: {INSTALL_HINT}; import failed: {e}") from e


def baybe_objective(goal: Goal | None) -> tuple[Objective, Any]:
    """The goal's one objective and BayBE's objective for it (a maximized or minimized ``NumericalTarget``)."""
    objective = single_objective(goal, PEER)
    if objective.direction == "target":
        raise StrategyError(
            f"the baybe peer maximizes or minimizes; objective {objective.name!r} has direction 'target': "
            "BayBE's match targets need bounds this goal does not give"
        )
    from baybe.targets import NumericalTarget

    target = NumericalTarget(name=objective.name, minimize=objective.direction == "minimize")
    return objective, target.to_objective()


@contextmanager
def baybe_settings(seed: int | None = None, preprocess: bool = True) -> Iterator[None]:
    """BayBE's settings for one call: its global RNG seeded (restored after), recommendation caching off (the
    proposals follow the history alone), dataframe preprocessing on or off."""
    from baybe.settings import Settings

    kwargs: dict[str, Any] = {"cache_campaign_recommendations": False, "preprocess_dataframes": preprocess}
    if seed is not None:
        kwargs["random_seed"] = int(seed % 2**32)
    with Settings(**kwargs):
        yield


def measured_rows(observations: Sequence[Observation], objective: Objective) -> list[Observation]:
    """The successful observations with a finite value of the objective (what BayBE is told)."""
    return [
        o
        for o in observations
        if not o.failed and objective.name in o.values and math.isfinite(float(o.values[objective.name][0]))
    ]


class BaybeStrategy:
    """BayBE's default recommender on a continuous space; see the module docstring."""

    name = PEER
    Options = BaybeOptions

    def __init__(self, space: SearchSpace, goal: Goal, seed: int = 0, options: BaybeOptions | None = None) -> None:
        require_baybe()
        from baybe import Campaign
        from baybe.constraints import ContinuousLinearConstraint
        from baybe.parameters import NumericalContinuousParameter
        from baybe.searchspace import SearchSpace as BaybeSpace

        from surrogate.botorch_space import BotorchSpace
        from surrogate.sobol import SobolStrategy

        self.space, self.goal, self.seed = space, goal, seed
        self.options = options if options is not None else BaybeOptions()
        self.objective, bb_objective = baybe_objective(goal)
        self.columns = BotorchSpace(space)
        self._sobol = SobolStrategy(space, goal, seed, SobolOptions())
        self._fixed: dict[str, float] = {}
        params: list[Any] = []
        constraints: list[Any] = []
        for p in space.parameters:
            if isinstance(p, FloatParameter):
                params.append(NumericalContinuousParameter(name=p.name, bounds=(p.low, p.high)))
            elif isinstance(p, (IntParameter, CategoricalParameter)):
                raise StrategyError(
                    f"the baybe peer searches continuous spaces of float inputs and compositions; {p.name!r} is "
                    f"{p.type}: BayBE would need a hybrid space, which this peer does not build"
                )
            else:
                constraints.extend(
                    self._composition(p, params, NumericalContinuousParameter, ContinuousLinearConstraint)
                )
        for con in space.constraints:
            names, coefs, rhs = [], [], float(con.bound)
            for n, a in con.coefficients.items():
                if n in self._fixed:
                    rhs -= a * self._fixed[n]
                else:
                    names.append(n)
                    coefs.append(float(a))
            if names:
                constraints.append(
                    ContinuousLinearConstraint(parameters=names, operator=con.op, coefficients=coefs, rhs=rhs)
                )
        self._names = [p.name for p in params]
        self.campaign = Campaign(BaybeSpace.from_product(params, constraints), bb_objective)
        self._observations: list[Observation] = []

    def _composition(self, p: CompositionParameter, params: list[Any], param_cls: Any, con_cls: Any) -> list[Any]:
        free = [c for c in p.components if c.high - c.low > FIXED_WIDTH]
        for c in p.components:
            if c.high - c.low <= FIXED_WIDTH:
                self._fixed[c.name] = c.low
        rhs = float(p.total) - sum(self._fixed.get(c.name, 0.0) for c in p.components)
        if len(free) == 1:  # determined by the sum
            self._fixed[free[0].name] = rhs
            return []
        params.extend(param_cls(name=c.name, bounds=(c.low, c.high)) for c in free)
        return [con_cls(parameters=[c.name for c in free], operator="=", coefficients=[1.0] * len(free), rhs=rhs)]

    def tell(self, results: Sequence[Observation]) -> None:
        """Adds the successful observations in the space to BayBE's campaign (failures skipped)."""
        import pandas as pd

        self._observations.extend(results)
        self._sobol.tell(results)
        rows = [o for o in measured_rows(results, self.objective) if not self.space.check(o.conditions)]
        if not rows:
            return
        df = pd.DataFrame(
            [
                {
                    **{n: float(o.conditions[n]) for n in self._names},
                    self.objective.name: float(o.values[self.objective.name][0]),
                }
                for o in rows
            ]
        )
        with baybe_settings():
            self.campaign.add_measurements(df, numerical_measurements_must_be_within_tolerance=False)

    def ask(self, n: int, pending: Sequence[Conditions]) -> list[Proposal]:
        """``n`` new points recommended by BayBE, with ``pending`` as its pending experiments."""
        import pandas as pd

        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n == 0:
            return []
        pending = list(pending)
        inside = [c for c in pending if not self.space.check(c)]
        pend = pd.DataFrame([{k: float(c[k]) for k in self._names} for c in inside]) if inside else None
        step = len(self._observations) + len(pending)
        with baybe_settings(seed=self.seed * 7919 + step):
            rec = self.campaign.recommend(batch_size=n, pending_experiments=pend)
        raw = [{**self._fixed, **{k: float(row[k]) for k in self._names}} for _, row in rec.iterrows()]
        # onto the space: clipped to the bounds, composition sums restored exactly
        mapped = self.columns.decode(self.columns.encode(raw))
        seen: set[Key] = {canonical_key(o.conditions) for o in self._observations} | {canonical_key(c) for c in pending}
        out: list[Proposal] = []
        for c in mapped:
            key = canonical_key(c)
            generator = PEER
            if key in seen or self.space.check(c):
                c = self._sobol.ask(1, [*pending, *(p.conditions for p in out)])[0].conditions
                key, generator = canonical_key(c), f"{PEER}:sobol-fill"
            seen.add(key)
            out.append(Proposal(conditions=dict(c), generator=generator, model_state={"recommender": self._phase()}))
        check_proposals(self.space, [p.conditions for p in out], PEER)
        return out

    def _phase(self) -> str:
        return "random" if len(self.campaign.measurements) < 1 else "botorch"
