"""Bayesian optimization through Ax's `Client`: Ax (BoTorch underneath) does the modelling and the
acquisition; this module translates the space, the goal, pending points and observations."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np


class _WarningsOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


# Ax announces its SQL storage at INFO while it is imported, before any level can be set.
logging.getLogger("ax.storage.sqa_store.with_db_settings_base").addFilter(_WarningsOnly())

from ax import Client  # noqa: E402
from ax.core.trial_status import TrialStatus  # noqa: E402
from ax.exceptions.core import AxError  # noqa: E402
from ax.utils.common.logger import set_ax_logger_levels, set_stderr_log_level  # noqa: E402

from surrogate.base import (  # noqa: E402
    Conditions,
    ConditionValue,
    Observation,
    Proposal,
    StrategyError,
    StrategyWarning,
)
from surrogate.encoding import (  # noqa: E402
    AxEncoding,
    Key,
    UnitEncoding,
    ax_alias,
    canonical_key,
    check_proposals,
    draw_new,
)
from surrogate.objectives import Goal  # noqa: E402
from surrogate.options import AxOptions  # noqa: E402
from surrogate.space import SearchSpace  # noqa: E402

_AX_INFO_EXCEPTIONS = (AxError, NotImplementedError)


class GoalEncoding:
    """A `Goal` in Ax's terms: the objective string, the outcome-constraint strings and the data to attach.

    * maximize / minimize ``m`` → metric ``y_m``, objective ``y_m`` / ``-y_m``;
    * target ``t`` for ``m`` → metric ``y_m_distance`` = |m − t| (σ kept: the fold changes it only near
      the target), minimized;
    * several objectives → multi-objective ``"y_a, -y_b"``; each objective's ``threshold`` becomes an
      outcome constraint on its own metric, which Ax turns into the objective threshold (reference
      point); a target's threshold is the largest acceptable distance. A single objective's threshold
      has no meaning to Ax and is not passed;
    * outcome constraints ``m <= b`` → ``"y_m <= b"``, on the raw measured value.
    """

    def __init__(self, goal: Goal) -> None:
        self.goal = goal
        self.metric_of: dict[str, str] = {}  # Ax metric → our name (the distance metric for targets)
        terms: list[str] = []
        self.constraints: list[str] = []
        multi = len(goal.objectives) > 1
        for o in goal.objectives:
            name = f"{o.name}_distance" if o.direction == "target" else o.name
            alias = self._metric(name)
            terms.append(f"-{alias}" if o.direction in ("minimize", "target") else alias)
            if multi and o.threshold is not None:
                op = ">=" if o.direction == "maximize" else "<="
                self.constraints.append(f"{alias} {op} {float(o.threshold)!r}")
        objective_names = {o.name for o in goal.objectives if o.direction != "target"}
        for c in goal.outcome_constraints:
            if c.name in objective_names:
                raise StrategyError(
                    f"outcome constraint on {c.name!r}, which is also an objective: Ax cannot constrain an "
                    "objective; give the objective a 'threshold' (multi-objective) or drop the constraint"
                )
            self.constraints.append(f"{self._metric(c.name)} {c.op} {float(c.bound)!r}")
        self.objective = ", ".join(terms)

    def _metric(self, name: str) -> str:
        alias = ax_alias(name, "y_")
        if alias in self.metric_of and self.metric_of[alias] != name:  # pragma: no cover - names are unique
            raise StrategyError(f"two goal metrics map onto Ax metric {alias!r}")
        self.metric_of[alias] = name
        return alias

    def raw_data(self, values: Mapping[str, tuple[float, float]]) -> dict[str, float | tuple[float, float]]:
        """Ax's ``raw_data`` for one observation: goal metrics only, σ as known SEM when finite."""
        out: dict[str, float | tuple[float, float]] = {}

        def put(name: str, value: float, sigma: float) -> None:
            if math.isfinite(value):
                alias = ax_alias(name, "y_")
                out[alias] = (value, sigma) if math.isfinite(sigma) and sigma >= 0 else value

        for o in self.goal.objectives:
            if o.name in values:
                v, s = (float(x) for x in values[o.name])
                if o.direction == "target":
                    assert o.target is not None
                    put(f"{o.name}_distance", abs(v - o.target), s)
                else:
                    put(o.name, v, s)
        for c in self.goal.outcome_constraints:
            if c.name in values:
                v, s = (float(x) for x in values[c.name])
                put(c.name, v, s)
        return out


def set_ax_log_level(level: str) -> None:
    """Sets every Ax logger (Ax gives each module logger INFO as it is created) and Ax's stderr handler
    (which also covers loggers created later) to ``level``; warnings always pass."""
    lvl = logging.getLevelName(level)
    set_ax_logger_levels(lvl)
    set_stderr_log_level(lvl)


@contextmanager
def _ax_logging(level: str) -> Iterator[None]:
    set_ax_log_level(level)
    try:
        yield
    finally:
        set_ax_log_level(level)  # loggers first created inside the call


class AxStrategy:
    """Ax's Center + Sobol + BoTorch generation with a known-noise GP (σ from imaging as SEM).

    Pending conditions that Ax does not know are attached as RUNNING trials so that generation accounts
    for them; proposals neither pending nor told by the next ask are marked STALE (never run). Told
    conditions find their trial by a canonical key, or are attached (after a resume). Proposals are
    checked against the space and deduplicated; Ax is asked once more for any duplicate and what is
    still missing is filled with seeded random points (generator ``"ax:random-fill"``)."""

    Options = AxOptions

    def __init__(self, space: SearchSpace, goal: Goal, seed: int = 0, options: AxOptions | None = None) -> None:
        self.space = space
        self.goal = goal
        self.seed = seed
        self.options = options or AxOptions()
        self.encoding = AxEncoding(space)
        self.metrics = GoalEncoding(goal)
        self._trial_of: dict[Key, int] = {}  # conditions → RUNNING trial we know of
        self._generated: set[int] = set()  # trials we proposed and nobody told yet
        self._told: set[Key] = set()
        self._fill: UnitEncoding | None = None
        o = self.options
        with _ax_logging(o.log_level):
            self.client = Client(random_seed=seed)
            self.client.configure_experiment(
                parameters=self.encoding.parameters,
                parameter_constraints=self.encoding.constraints or None,
                name="matloop",
            )
            self.client.configure_optimization(
                objective=self.metrics.objective, outcome_constraints=self.metrics.constraints or None
            )
            self.client.configure_generation_strategy(
                method=o.method,
                initialization_budget=o.initial_points,
                initialization_random_seed=seed,
                initialize_with_center=o.initialize_with_center,
                # a lab runs several lanes: keep proposing Sobol points while results are outstanding
                allow_exceeding_initialization_budget=True,
                torch_device=o.torch_device,
            )

    # ----------------------------------------------------------------------------------------- ask
    def ask(self, n: int, pending: Sequence[Conditions]) -> list[Proposal]:
        """``n`` new conditions, jointly chosen by Ax with ``pending`` counted as running."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        with _ax_logging(self.options.log_level):
            pending_keys = self._sync_pending(pending)
            exclude = self._told | pending_keys
            proposals = self._generate(n, exclude)
            if len(proposals) < n:  # Ax repeated a point: ask once more
                proposals += self._generate(n - len(proposals), exclude)
            if len(proposals) < n:
                proposals += self._fill_random(n - len(proposals), exclude)
            check_proposals(self.space, [p.conditions for p in proposals], "ax")
            return self._with_predictions(proposals)

    def _sync_pending(self, pending: Sequence[Conditions]) -> set[Key]:
        keys: set[Key] = set()
        for c in pending:
            key = canonical_key(c)
            keys.add(key)
            if key in self._told:
                continue
            idx = self._trial_of.get(key)
            if idx is None or self._status(idx) != TrialStatus.RUNNING:
                attached = self._attach(c, "pending point")
                if attached is not None:
                    self._trial_of[key] = attached
        live = {self._trial_of[k] for k in keys if k in self._trial_of}
        for idx in sorted(self._generated - live):  # proposed earlier, now neither pending nor told
            self.client._experiment.trials[idx].mark_stale(unsafe=True)
            self._forget(idx)
        return keys

    def _generate(self, n: int, exclude: set[Key]) -> list[Proposal]:
        if n == 0:
            return []
        out: list[Proposal] = []
        for idx, params in self.client.get_next_trials(max_trials=n).items():
            conditions = self.encoding.from_ax(params)
            key = canonical_key(conditions)
            if key in exclude:
                self.client._experiment.trials[idx].mark_stale(unsafe=True)
                continue
            exclude.add(key)
            self._trial_of[key] = idx
            self._generated.add(idx)
            gr = self.client._experiment.trials[idx].generator_runs[0]
            node = gr._generation_node_name or "unknown"
            acq = (gr.gen_metadata or {}).get("expected_acquisition_value")
            out.append(
                Proposal(
                    conditions=conditions,
                    generator=f"ax:{node}",
                    acquisition_value=float(np.ravel(acq)[0]) if acq is not None and np.size(acq) else None,
                    model_state={"ax_trial": idx, "ax_node": node, "ax_strategy": self._gs_name()},
                )
            )
        return out

    def _fill_random(self, n: int, exclude: set[Key]) -> list[Proposal]:
        if self._fill is None:
            self._fill = UnitEncoding(self.space)
        fill = self._fill
        rng = np.random.default_rng([self.seed, len(self.client._experiment.trials)])
        out = []
        for c in draw_new(fill, lambda k: rng.random((k, fill.dim)), n, exclude, 100_000):
            key = canonical_key(c)
            exclude.add(key)
            idx = self.client.attach_trial(parameters=self.encoding.to_ax(c))
            self._trial_of[key] = idx
            self._generated.add(idx)
            out.append(Proposal(conditions=c, generator="ax:random-fill", model_state={"ax_trial": idx}))
        return out

    def _with_predictions(self, proposals: list[Proposal]) -> list[Proposal]:
        """Adds the model's mean and σ per goal metric, when the current node has a fitted model."""
        if not proposals or all(p.generator in ("ax:CenterOfSearchSpace", "ax:Sobol") for p in proposals):
            return proposals
        try:
            preds = self.client.predict([self.encoding.to_ax(p.conditions) for p in proposals])
        except _AX_INFO_EXCEPTIONS:
            return proposals
        out = []
        for p, pred in zip(proposals, preds, strict=True):
            named = {
                self.metrics.metric_of[m]: (float(mean), float(sem))
                for m, (mean, sem) in pred.items()
                if m in self.metrics.metric_of
            }
            out.append(
                Proposal(
                    conditions=p.conditions,
                    generator=p.generator,
                    predictions=named,
                    acquisition_value=p.acquisition_value,
                    model_state=p.model_state,
                )
            )
        return out

    # ---------------------------------------------------------------------------------------- tell
    def tell(self, results: Sequence[Observation]) -> None:
        """Completes each observation's trial with its goal metrics (σ as known SEM), or marks it
        failed; an observation with none of the goal metrics counts as failed."""
        with _ax_logging(self.options.log_level):
            for r in results:
                key = canonical_key(r.conditions)
                idx = self._trial_of.get(key)
                if idx is None or self._status(idx) != TrialStatus.RUNNING:
                    idx = self._attach(r.conditions, "observation")
                self._told.add(key)
                if idx is None:
                    continue
                data = {} if r.failed else self.metrics.raw_data(r.values)
                if data:
                    self.client.complete_trial(trial_index=idx, raw_data=data)
                else:
                    if not r.failed:
                        warnings.warn(
                            f"observation at {r.conditions} has none of the goal metrics "
                            f"{self.goal.metric_names()}: told to Ax as failed",
                            StrategyWarning,
                            stacklevel=2,
                        )
                    reason = r.reason or ("failed" if r.failed else "no goal metric measured")
                    self.client.mark_trial_failed(trial_index=idx, failed_reason=reason)
                self._forget(idx)

    # ------------------------------------------------------------------------------------- helpers
    def _attach(self, conditions: Conditions, what: str) -> int | None:
        """A new RUNNING trial for ``conditions``; None (with a warning) for a point outside the space,
        e.g. recorded before the space was narrowed: Ax would refuse it or leave it out of the model."""
        problems = self.space.check(conditions)
        if problems:
            warnings.warn(
                f"{what} {dict(conditions)} lies outside the search space ({'; '.join(problems)}): not given to Ax",
                StrategyWarning,
                stacklevel=3,
            )
            return None
        return self.client.attach_trial(parameters=self.encoding.to_ax(conditions))

    def _status(self, idx: int) -> TrialStatus:
        return self.client._experiment.trials[idx].status

    def _forget(self, idx: int) -> None:
        self._generated.discard(idx)
        for k in [k for k, i in self._trial_of.items() if i == idx]:
            del self._trial_of[k]

    def _gs_name(self) -> str:
        try:
            return str(self.client._generation_strategy.name)
        except AssertionError:  # pragma: no cover - configured in __init__
            return ""

    def trials(self) -> dict[int, tuple[dict[str, ConditionValue], str]]:
        """Every Ax trial as ``index → (conditions, status name)``, for debugging and ``explain``."""
        return {
            i: (self.encoding.from_ax(t.arms[0].parameters), t.status.name)
            for i, t in self.client._experiment.trials.items()
            if t.arms
        }

    def __repr__(self) -> str:
        return f"AxStrategy(seed={self.seed}, options={self.options!r})"
