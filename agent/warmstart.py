"""Warm start: a campaign learns from an earlier one before its first ask (``strategy.warm_start``).

The earlier campaign's finished experiments whose conditions lie in this campaign's space are told to the
strategy. They are not copied into this campaign and do not count against its budget; on resume the same
data is read and told again, since strategies are rebuilt from the store. The inputs must be the same
(names, kinds, and every categorical choice of the earlier campaign valid here); numeric ranges may
differ, and points outside this space are skipped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import ConfigError, StoreError
from agent.lifecycle import ExperimentState
from agent.spec import CampaignSpec, parse_spec
from agent.store import Store
from surrogate.base import Observation
from surrogate.space import CategoricalParameter, CompositionParameter, SearchSpace


@dataclass(frozen=True)
class WarmStartData:
    """What was read from the earlier campaign: the observations to tell, and what was left out and why."""

    source: str
    store: str
    observations: list[Observation] = field(default_factory=list)
    completed: int = 0
    failed: int = 0
    skipped_outside: int = 0  # conditions outside this campaign's space
    skipped_missing: int = 0  # a metric this campaign needs was not measured

    @property
    def used(self) -> int:
        return len(self.observations)

    def summary(self) -> dict[str, Any]:
        """The payload of the ``warm_start`` event."""
        return {
            "source": self.source,
            "store": self.store,
            "used": self.used,
            "completed": self.completed,
            "failed": self.failed,
            "skipped_outside_space": self.skipped_outside,
            "skipped_missing_metric": self.skipped_missing,
        }

    def describe(self) -> str:
        skipped = self.skipped_outside + self.skipped_missing
        text = f"warm start from {self.source!r}: {self.used} experiments told to the strategy"
        if skipped:
            text += (
                f", {skipped} skipped ({self.skipped_outside} outside this space, "
                f"{self.skipped_missing} missing a metric)"
            )
        return text


def _kinds(space: SearchSpace) -> dict[str, tuple[str, tuple[str, ...]]]:
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for p in space.parameters:
        if isinstance(p, CompositionParameter):
            out.update({c.name: (f"composition {p.name}", ()) for c in p.components})
        elif isinstance(p, CategoricalParameter):
            out[p.name] = ("categorical", p.choices)
        else:
            out[p.name] = ("numeric", ())
    return out


def compatibility_problems(here: SearchSpace, there: SearchSpace, source: str) -> list[str]:
    """Why data of campaign ``source`` (space ``there``) cannot be told in space ``here`` (empty: it can)."""
    mine, theirs = _kinds(here), _kinds(there)
    where = "strategy.warm_start.campaign"
    common = set(mine) & set(theirs)
    if not common:
        return [
            f"{where}: {source!r} has no input in common with this campaign (it has {', '.join(theirs)}; "
            f"this one has {', '.join(mine)})"
        ]
    problems = []
    for name in mine:
        if name not in theirs:
            problems.append(f"{where}: input {name!r} of this campaign is not an input of {source!r}")
    for name in theirs:
        if name not in mine:
            problems.append(f"{where}: input {name!r} of {source!r} is not an input of this campaign")
    for name in sorted(common):
        (k1, c1), (k2, c2) = mine[name], theirs[name]
        kind1, kind2 = k1.split()[0], k2.split()[0]
        if kind1 != kind2:
            problems.append(f"{where}: input {name!r} is {k1} here but {k2} in {source!r}")
        elif kind1 == "categorical" and set(c2) - set(c1):
            problems.append(
                f"{where}: input {name!r} has choices {sorted(set(c2) - set(c1))} in {source!r} that are not valid "
                f"here; valid: {list(c1)}"
            )
    return problems


def _source_store(url: str | None, own: Store, base_dir: Path) -> tuple[Store, bool]:
    """The store holding the earlier campaign (this campaign's own unless ``url``), and whether we opened it."""
    if url is None or url == own.url:
        return own, False
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        url = f"sqlite:///{(base_dir / url.removeprefix('sqlite:///')).resolve()}"
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            raise ConfigError([f"strategy.warm_start.store: no store at {path}"])
    return Store(url, base_dir), True


def load_warm_start(spec: CampaignSpec, own: Store, base_dir: Path) -> WarmStartData | None:
    """Reads the earlier campaign named in ``spec.strategy.warm_start`` (None when there is none); raises
    ``ConfigError`` naming the input when the spaces are incompatible, ``StoreError`` when it is not found."""
    ws = spec.strategy.warm_start
    if ws is None:
        return None
    store, opened = _source_store(ws.store, own, base_dir)
    try:
        row = store.campaign(ws.campaign)
        if row is None or row.id is None:
            known = ", ".join(c.name for c in store.campaigns() if c.name != spec.name) or "none"
            hint = "" if opened else "; if it is recorded elsewhere, give its store URL as strategy.warm_start.store"
            raise StoreError(
                f"strategy.warm_start.campaign: no campaign {ws.campaign!r} in {store.url}; campaigns there: {known}"
                + hint
            )
        try:
            source_spec = parse_spec(row.spec_yaml, f"{row.source_path} (as recorded)")
        except ConfigError as exc:
            raise StoreError(
                f"strategy.warm_start: the recorded spec of {ws.campaign!r} no longer parses: {exc}"
            ) from exc
        problems = compatibility_problems(spec.space, source_spec.space, ws.campaign)
        if problems:
            raise ConfigError(problems)
        metrics = [o.name for o in spec.objectives]
        metrics += [c.name for c in spec.outcome_constraints if c.name not in metrics]
        measured = store.measurements(row.id)
        obs: list[Observation] = []
        completed = failed = outside = missing = 0
        for exp in store.experiments(row.id):
            state = ExperimentState(exp.state)
            if state not in (ExperimentState.COMPLETED, ExperimentState.FAILED):
                continue
            conditions = dict(exp.conditions)
            if spec.space.check(conditions):
                outside += 1
                continue
            if state == ExperimentState.FAILED:
                failed += 1
                obs.append(Observation(conditions, {}, failed=True, reason=exp.failure_reason))
                continue
            values = {m.name: (m.value, m.sigma) for m in measured.get(exp.id or -1, []) if m.name in metrics}
            if any(m not in values for m in metrics):
                missing += 1
                continue
            completed += 1
            obs.append(Observation(conditions, values))
        return WarmStartData(
            source=ws.campaign,
            store=store.engine.url.render_as_string(hide_password=True),
            observations=obs,
            completed=completed,
            failed=failed,
            skipped_outside=outside,
            skipped_missing=missing,
        )
    finally:
        if opened:
            store.close()


__all__ = ["WarmStartData", "compatibility_problems", "load_warm_start"]
