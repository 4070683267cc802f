"""The notebook-facing API: ``Campaign.from_yaml(path).run()``, ``.status()``, ``.export(...)``, ``.resume()``.
The CLI is a thin layer over this class."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from agent.assemble import build_lab, build_strategy
from agent.checks import check_spec
from agent.contact import require_ready
from agent.errors import ConfigError, StoreError
from agent.explain import Explanation, explain
from agent.human import Approver, coerce_conditions, edit_problems
from agent.lab import Lab
from agent.lifecycle import ExperimentState
from agent.loop import Agent, Observer, RunResult
from agent.results import Scored, best, score
from agent.safety import check_space_fits
from agent.spec import CampaignSpec, load_spec, parse_spec, spec_hash
from agent.store import Campaign as CampaignRow
from agent.store import Experiment, MeasuredValue, Store
from agent.vclock import VirtualTimeLoop
from agent.warmstart import load_warm_start
from surrogate.base import ConditionValue, Observation


@dataclass(frozen=True)
class Location:
    """Where a campaign's store, files and instrument work folders live."""

    url: str
    files: Path
    workdir: Path


def locate(spec: CampaignSpec, base_dir: Path) -> Location:
    """Resolves the store from the spec: relative SQLite paths are relative to the campaign file's folder."""
    home = base_dir / f"{spec.name}.matloop"
    url = spec.store.url or f"sqlite:///{(base_dir / f'{spec.name}.matloop.db').resolve()}"
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        url = f"sqlite:///{(base_dir / url.removeprefix('sqlite:///')).resolve()}"
    files = Path(spec.store.files) if spec.store.files else home / "files"
    if not files.is_absolute():
        files = base_dir / files
    return Location(url=url, files=files.resolve(), workdir=(home / "lab").resolve())


def validate(path: str | Path) -> tuple[CampaignSpec, dict[str, str]]:
    """Checks a campaign file without touching the store or the instruments."""
    spec, text = load_spec(path)
    return spec, check_spec(spec, text, str(path))


def _renamed(spec: CampaignSpec, text: str, name: str, source: str) -> tuple[CampaignSpec, str]:
    """The same campaign under another name; the recorded YAML says so, so that resume rebuilds it exactly."""
    new_text, n = re.subn(rf"^name:\s*{re.escape(spec.name)}\s*$", f"name: {name}", text, count=1, flags=re.M)
    if n != 1:
        raise ConfigError([f"{source}: cannot rename: no top-level 'name: {spec.name}' line found"])
    try:
        return parse_spec(new_text, source), new_text
    except ConfigError as exc:
        raise ConfigError([f"--as {name!r}: {p}" for p in exc.problems]) from None


class Campaign:
    """A campaign bound to its store. Build with ``from_yaml`` (new or existing) or ``open`` (by name)."""

    def __init__(self, spec: CampaignSpec, yaml_text: str, source: str, location: Location, store: Store) -> None:
        self.spec, self.yaml_text, self.source, self.location, self.store = spec, yaml_text, source, location, store

    # --- construction --------------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: str | Path, *, name: str | None = None) -> Campaign:
        """Binds a campaign file to its store; ``name`` runs the same file as another campaign."""
        spec, text = load_spec(path)
        check_spec(spec, text, str(path))
        if name is not None and name != spec.name:
            spec, text = _renamed(spec, text, name, str(path))
        p = Path(path).resolve()
        loc = locate(spec, p.parent)
        store = Store(loc.url, loc.files, sqlite_synchronous=spec.store.sqlite_synchronous)
        return cls(spec, text, str(p), loc, store)

    @classmethod
    def open(cls, name: str, store_url: str, files: str | Path | None = None) -> Campaign:
        """Opens a recorded campaign by name; its spec is the one recorded in the store."""
        probe = Store(store_url, Path(files or "."))
        row = probe.campaign(name)
        if row is None:
            known = ", ".join(c.name for c in probe.campaigns()) or "none"
            probe.close()
            raise StoreError(f"no campaign {name!r} in {store_url}; campaigns there: {known}")
        spec = parse_spec(row.spec_yaml, f"{row.source_path} (as recorded)")
        loc = locate(spec, Path(row.source_path).parent)
        loc = Location(store_url, Path(files).resolve() if files else loc.files, loc.workdir)
        probe.close()
        return cls(spec, row.spec_yaml, row.source_path, loc, Store(store_url, loc.files))

    def close(self) -> None:
        self.store.close()

    @property
    def row(self) -> CampaignRow | None:
        return self.store.campaign(self.spec.name)

    # --- running -------------------------------------------------------------------------------------
    def run(
        self,
        observer: Observer | None = None,
        *,
        virtual_time: bool | None = None,
        approver: Approver | None = None,
        lab: Lab | None = None,
        check_instruments: bool = True,
    ) -> RunResult:
        """Starts the campaign (it must not exist in the store yet) and runs it to a stop rule. ``approver``
        reviews every proposal before it is submitted (see `agent.human`); ``lab``: instruments built by the caller
        (a notebook, a test) instead of from the YAML's ``instruments``. With ``check_instruments`` every instrument
        that can be pinged must answer ready before anything is recorded (`agent.contact`)."""
        if self.row is not None:
            raise StoreError(
                f"campaign {self.spec.name!r} already exists in {self.location.url} (status: {self.row.status}); "
                f"use `matloop resume` to continue it, or give the campaign another name"
            )
        load_warm_start(self.spec, self.store, self._base_dir())  # a bad warm start fails before anything is recorded
        owned = lab is None
        lab = self._lab(lab)  # a space past the instruments' hard limits fails here, before anything is recorded
        return self._drive(observer, virtual_time, approver, lab, owned=owned, create=True, check=check_instruments)

    def resume(
        self,
        observer: Observer | None = None,
        *,
        virtual_time: bool | None = None,
        approver: Approver | None = None,
        check_instruments: bool = True,
    ) -> RunResult:
        """Continues a recorded campaign: reconciles in-flight experiments with the instruments, then goes on."""
        row = self.row
        if row is None:
            raise StoreError(f"campaign {self.spec.name!r} is not in {self.location.url}; start it with `matloop run`")
        if row.spec_hash != spec_hash(self.yaml_text):
            self.spec = parse_spec(row.spec_yaml, f"{row.source_path} (as recorded)")
            self.yaml_text = row.spec_yaml
        lab = self._lab(None)
        return self._drive(observer, virtual_time, approver, lab, owned=True, create=False, check=check_instruments)

    async def arun(
        self,
        observer: Observer | None = None,
        *,
        resume: bool = False,
        approver: Approver | None = None,
        lab: Lab | None = None,
        check_instruments: bool = True,
    ) -> RunResult:
        """For callers that already run an event loop (notebooks): real time, the loop they have."""
        if resume and self.row is None:
            raise StoreError(f"campaign {self.spec.name!r} is not in {self.location.url}")
        owned = lab is None
        lab = self._lab(lab)
        try:
            return await self._start(observer, approver, lab, create=self.row is None, check=check_instruments)
        finally:
            if owned:  # instruments this campaign built are released here; a caller's lab is the caller's
                await lab.aclose()

    def _base_dir(self) -> Path:
        return Path(self.source).parent

    def _lab(self, lab: Lab | None) -> Lab:
        """The campaign's instruments (built from the spec unless given), checked against the space."""
        if lab is None:
            return build_lab(self.spec, self.location.workdir)
        check_space_fits(self.spec.space, lab, self.spec.name)
        return lab

    async def _start(
        self, observer: Observer | None, approver: Approver | None, lab: Lab, *, create: bool, check: bool
    ) -> RunResult:
        if check:
            await require_ready(lab, self.spec)
        if create:
            self.store.create_campaign(
                self.spec.name, self.yaml_text, spec_hash(self.yaml_text), self.spec.seed, self.source
            )
        row = self.row
        assert row is not None
        agent = Agent(
            self.spec,
            self.store,
            row,
            lab,
            build_strategy(self.spec),
            observer=observer,
            approver=approver,
            prior=load_warm_start(self.spec, self.store, self._base_dir()),
        )
        return await agent.run()

    def _drive(
        self,
        observer: Observer | None,
        virtual_time: bool | None,
        approver: Approver | None,
        lab: Lab,
        *,
        owned: bool,
        create: bool,
        check: bool,
    ) -> RunResult:
        virtual = lab.simulated if virtual_time is None else virtual_time
        factory = VirtualTimeLoop if virtual else None
        with asyncio.Runner(loop_factory=factory) as runner:
            try:
                return runner.run(self._start(observer, approver, lab, create=create, check=check))
            finally:
                if owned:
                    runner.run(lab.aclose())

    # --- people --------------------------------------------------------------------------------------
    def _row_id(self) -> int:
        row = self.row
        if row is None or row.id is None:
            raise StoreError(f"campaign {self.spec.name!r} has not been run yet (store {self.location.url})")
        return row.id

    def experiment(self, index: int) -> Experiment:
        """Experiment ``index`` (1-based, as shown by ``status``)."""
        exp = self.store.experiment(self._row_id(), index)
        if exp is None:
            n = len(self.store.experiments(self._row_id()))
            raise StoreError(f"campaign {self.spec.name!r} has no experiment {index} (it has 1..{n})")
        return exp

    def _measured(self, values: Mapping[str, tuple[float, float] | float], who: str) -> list[MeasuredValue]:
        """Checks hand-entered values: every objective and constrained quantity, nothing else, finite numbers."""
        units = {o.name: o.unit for o in self.spec.objectives}
        for c in self.spec.outcome_constraints:
            units.setdefault(c.name, c.unit or "")
        problems = []
        out = []
        for name, v in values.items():
            value, sigma = (v, 0.0) if isinstance(v, (int, float)) else v
            if name not in units:
                problems.append(f"{name!r} is not measured by this campaign; valid: {', '.join(units)}")
            elif not (math.isfinite(value) and math.isfinite(sigma) and sigma >= 0):
                problems.append(f"{name}: value must be finite and σ finite and >= 0, got {value} ± {sigma}")
            else:
                out.append(MeasuredValue(name, float(value), float(sigma), units[name], f"manual:{who}"[:100]))
        missing = [n for n in units if n not in values]
        if missing:
            problems.append(f"missing values for {', '.join(missing)} (a completed experiment needs every one)")
        if problems:
            raise ConfigError(problems)
        return out

    @staticmethod
    def _one_of(values: Mapping[str, Any] | None, failed: str | None) -> None:
        if (values is None) == (failed is None):
            raise ConfigError(["give either the measured values or a failure reason, not both or neither"])

    def record(
        self,
        index: int,
        values: Mapping[str, tuple[float, float] | float] | None = None,
        *,
        failed: str | None = None,
        who: str,
        note: str = "",
    ) -> Experiment:
        """Enters the result measured by hand for waiting experiment ``index``: ``values`` ``{name: (value, σ)}``
        (or a bare value, σ 0), or ``failed`` with the reason. A running agent that drives the experiment
        takes the result at its next step (and drops its own); a stopped one on resume. The event records ``who``."""
        self._one_of(values, failed)
        exp = self.experiment(index)
        measured = self._measured(values, who) if values is not None else []
        row = self.row
        assert exp.id is not None and row is not None
        return self.store.enter_result(exp.id, measured, failed=failed, who=who, note=note, lab_time_s=row.lab_time_s)

    def add_experiment(
        self,
        conditions: Mapping[str, Any],
        values: Mapping[str, tuple[float, float] | float] | None = None,
        *,
        failed: str | None = None,
        who: str,
        note: str = "",
    ) -> Experiment:
        """Adds an experiment done entirely by hand (conditions in the space, and its result); it counts
        against the experiment budget like any other, and the strategy learns from it."""
        self._one_of(values, failed)
        cid = self._row_id()
        typed = coerce_conditions(self.spec.space, conditions)
        problems = edit_problems(self.spec.space, typed)
        if problems:
            raise ConfigError([f"conditions outside the space: {p}" for p in problems])
        measured = self._measured(values, who) if values is not None else []
        row = self.row
        assert row is not None
        return self.store.add_manual_experiment(
            cid,
            f"{self.spec.name}-{row.spec_hash[:10]}",
            dict(typed),
            measured,
            failed=failed,
            who=who,
            note=note,
            lab_time_s=row.lab_time_s,
        )

    # --- reading -------------------------------------------------------------------------------------
    def explain(self, index: int) -> Explanation:
        """What the model believed when it proposed experiment ``index``, what was measured, and who did what."""
        exp = self.experiment(index)
        assert exp.id is not None
        return explain(self.spec, exp, self.store.measurements_of(exp.id), self.store.experiment_events(exp.id))

    def observations(self) -> list[Observation]:
        """Every finished experiment as the strategy was told it (completed with values, failed with reason)."""
        cid = self._row_id()
        measured = self.store.measurements(cid)
        out = []
        for exp in self.store.experiments(cid):
            conditions: dict[str, ConditionValue] = dict(exp.conditions)
            if exp.state == ExperimentState.COMPLETED:
                vals = {m.name: (m.value, m.sigma) for m in measured.get(exp.id or -1, [])}
                out.append(Observation(conditions, vals))
            elif exp.state == ExperimentState.FAILED:
                out.append(Observation(conditions, {}, failed=True, reason=exp.failure_reason))
        return out

    def plot(self, out_dir: str | Path) -> list[Path]:
        """Writes PNGs: best-so-far per objective, the Pareto front (several objectives) and the partial
        dependence of a GP fitted on the completed experiments. Returns the files written."""
        from agent.plots import write_plots

        return write_plots(self, Path(out_dir))

    def table(self) -> pd.DataFrame:
        """One row per experiment: index, state, conditions, measured values and σ, who proposed it, timings."""
        row = self.row
        if row is None or row.id is None:
            raise StoreError(f"campaign {self.spec.name!r} is not in {self.location.url}")
        measured = self.store.measurements(row.id)
        records: list[dict[str, Any]] = []
        for exp in self.store.experiments(row.id):
            rec: dict[str, Any] = {
                "experiment": exp.index,
                "state": exp.state,
                "attempts": exp.attempt,
                "generator": exp.generator,
                "failure_code": exp.failure_code,
                "failure_reason": exp.failure_reason,
                "lab_time_start_h": None if exp.lab_time_start_s is None else exp.lab_time_start_s / 3600,
                "lab_time_end_h": None if exp.lab_time_end_s is None else exp.lab_time_end_s / 3600,
                "key": exp.key,
            }
            rec.update({f"x.{k}": v for k, v in exp.conditions.items()})
            for m in measured.get(exp.id or -1, []):
                rec[f"y.{m.name}"] = m.value
                rec[f"y.{m.name}.sigma"] = m.sigma
            records.append(rec)
        return pd.DataFrame.from_records(records)

    def scored(self) -> list[Scored]:
        row = self.row
        if row is None or row.id is None:
            return []
        measured = self.store.measurements(row.id)
        out = []
        for exp in self.store.experiments(row.id):
            if exp.state != ExperimentState.COMPLETED:
                continue
            s = score(self.spec, exp.index, {m.name: (m.value, m.sigma) for m in measured.get(exp.id or -1, [])})
            if s is not None:
                out.append(s)
        return out

    def best(self) -> list[Scored]:
        return best(self.spec, self.scored())

    def export(self, out: str | Path, fmt: str) -> Path:
        """Writes the experiment table as csv, parquet or json (records)."""
        df = self.table()
        path = Path(out)
        if fmt == "csv":
            df.to_csv(path, index=False)
        elif fmt == "parquet":
            df.to_parquet(path, index=False)
        elif fmt == "json":
            df.to_json(path, orient="records", indent=2)
        else:
            raise ConfigError([f"--format {fmt!r} is not supported; valid: csv, parquet, json"])
        return path
