"""The notebook-facing API: ``Campaign.from_yaml(path).run()``, ``.status()``, ``.export(...)``, ``.resume()``.
The CLI is a thin layer over this class."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from agent.assemble import build_lab, build_strategy, lab_is_simulated
from agent.checks import check_spec
from agent.errors import ConfigError, StoreError
from agent.lifecycle import ExperimentState
from agent.loop import Agent, Observer, RunResult
from agent.results import Scored, best, score
from agent.spec import CampaignSpec, load_spec, parse_spec, spec_hash
from agent.store import Campaign as CampaignRow
from agent.store import Store
from agent.vclock import VirtualTimeLoop


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
    def run(self, observer: Observer | None = None, *, virtual_time: bool | None = None) -> RunResult:
        """Starts the campaign (it must not exist in the store yet) and runs it to a stop rule."""
        if self.row is not None:
            raise StoreError(
                f"campaign {self.spec.name!r} already exists in {self.location.url} (status: {self.row.status}); "
                f"use `matloop resume` to continue it, or give the campaign another name"
            )
        self.store.create_campaign(
            self.spec.name, self.yaml_text, spec_hash(self.yaml_text), self.spec.seed, self.source
        )
        return self._drive(observer, virtual_time)

    def resume(self, observer: Observer | None = None, *, virtual_time: bool | None = None) -> RunResult:
        """Continues a recorded campaign: reconciles in-flight experiments with the instruments, then goes on."""
        row = self.row
        if row is None:
            raise StoreError(f"campaign {self.spec.name!r} is not in {self.location.url}; start it with `matloop run`")
        if row.spec_hash != spec_hash(self.yaml_text):
            self.spec = parse_spec(row.spec_yaml, f"{row.source_path} (as recorded)")
            self.yaml_text = row.spec_yaml
        return self._drive(observer, virtual_time)

    async def arun(self, observer: Observer | None = None, *, resume: bool = False) -> RunResult:
        """For callers that already run an event loop (notebooks): real time, the loop they have."""
        agent = self._agent(observer, resume=resume)
        return await agent.run()

    def _agent(self, observer: Observer | None, *, resume: bool) -> Agent:
        row = self.row
        if row is None:
            if resume:
                raise StoreError(f"campaign {self.spec.name!r} is not in {self.location.url}")
            row = self.store.create_campaign(
                self.spec.name, self.yaml_text, spec_hash(self.yaml_text), self.spec.seed, self.source
            )
        lab = build_lab(self.spec, self.location.workdir)
        return Agent(self.spec, self.store, row, lab, build_strategy(self.spec), observer=observer)

    def _drive(self, observer: Observer | None, virtual_time: bool | None) -> RunResult:
        virtual = lab_is_simulated(self.spec) if virtual_time is None else virtual_time
        agent = self._agent(observer, resume=True)
        factory = VirtualTimeLoop if virtual else None
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(agent.run())

    # --- reading -------------------------------------------------------------------------------------
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
