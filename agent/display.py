"""Rich rendering for the CLI: live progress with a best-so-far table, status tables, the final summary."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agent.campaign import Campaign
from agent.lifecycle import ExperimentState
from agent.loop import RunResult, Update
from agent.results import Scored
from agent.units import canonical


def fmt_value(v: float, s: float | None = None, unit: str = "") -> str:
    body = f"{v:.4g}" if s is None else f"{v:.4g} ± {s:.2g}"
    return body if canonical(unit) == "1" else f"{body} {unit}"


def best_table(campaign: Campaign, scored: list[Scored], limit: int = 5, title: str = "Best so far") -> Table:
    spec = campaign.spec
    units = spec.space.units()
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    for o in spec.objectives:
        table.add_column(f"{o.name} ({o.direction})")
    for c in spec.outcome_constraints:
        if c.name not in {o.name for o in spec.objectives}:
            table.add_column(f"{c.name} {c.op} {c.bound:g}")
    table.add_column("conditions")
    row = campaign.row
    exps = {e.index: e for e in campaign.store.experiments(row.id)} if row and row.id else {}
    for s in scored[:limit]:
        cells = [str(s.index)]
        cells += [fmt_value(*s.values[o.name], o.unit) for o in spec.objectives]
        cells += [
            fmt_value(*s.values[c.name]) if c.name in s.values else "—"
            for c in spec.outcome_constraints
            if c.name not in {o.name for o in spec.objectives}
        ]
        cond = exps[s.index].conditions if s.index in exps else {}
        cells.append(", ".join(_fmt_cond(k, v, units.get(k, "")) for k, v in cond.items()))
        table.add_row(*cells)
    return table


def _fmt_cond(k: str, v: Any, unit: str) -> str:
    if not isinstance(v, float):
        return f"{k}={v}"
    return f"{k}={v:.4g}" if canonical(unit) == "1" else f"{k}={v:.4g} {unit}"


class LiveView:
    """Observer for ``Agent``: a progress bar and a live best-so-far table (plain lines when not a terminal)."""

    def __init__(self, campaign: Campaign, console: Console, done_before: int = 0) -> None:
        self.campaign, self.console = campaign, console
        self.progress = Progress(
            TextColumn(f"[bold]{campaign.spec.name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.task = self.progress.add_task(
            "run", total=campaign.spec.budget.experiments, note="", completed=done_before
        )
        self.live: Live | None = None

    def __enter__(self) -> LiveView:
        if self.console.is_terminal:
            self.live = Live(self._render(), console=self.console, refresh_per_second=4, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.update(self._render())
            self.live.__exit__(*exc)

    def _render(self) -> Group:
        return Group(self.progress, best_table(self.campaign, self.campaign.best()))

    def __call__(self, u: Update) -> None:
        if u.kind in ("completed", "failed"):
            self.progress.advance(self.task)
        if self.live is not None:
            if u.kind == "stopping":
                self.progress.update(self.task, note=u.message)
            self.live.update(self._render())
            return
        exp = u.experiment
        if u.kind == "completed" and exp is not None:
            vals = ", ".join(
                fmt_value(*u.values[o.name], o.unit) for o in self.campaign.spec.objectives if o.name in u.values
            )
            self.console.print(f"experiment {exp.index} completed: {vals}", highlight=False)
        elif u.kind == "failed" and exp is not None:
            self.console.print(f"experiment {exp.index} failed: {u.message}", highlight=False)
        elif u.kind == "stopping":
            self.console.print(f"stopping: {u.message}", highlight=False)


def summary(campaign: Campaign, result: RunResult | None, console: Console) -> None:
    row = campaign.row
    if row is None or row.id is None:
        return
    exps = campaign.store.experiments(row.id)
    states = Counter(e.state for e in exps)
    failures = Counter(e.failure_code for e in exps if e.state == ExperimentState.FAILED)
    console.print(best_table(campaign, campaign.best(), limit=5, title=f"Campaign {campaign.spec.name}: best results"))
    lines = [
        f"status: {row.status}" + (f" ({row.stop_reason})" if row.stop_reason else ""),
        "experiments: "
        + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        + f" (budget {campaign.spec.budget.experiments})",
        f"lab time: {row.lab_time_s / 3600:.1f} h",
    ]
    if failures:
        lines.append("failures: " + ", ".join(f"{n}× {c}" for c, n in failures.most_common()))
    if result is not None:
        lines.append(f"wall time: {result.wall_time_s:.1f} s")
    lines.append(f"store: {campaign.location.url}")
    for line in lines:
        console.print(line, highlight=False)


def status_table(campaign: Campaign) -> Table:
    spec = campaign.spec
    row = campaign.row
    table = Table(title=f"{spec.name}: experiments", title_justify="left")
    for col in ["#", "state", "attempts", "generator", *[o.name for o in spec.objectives], "failure"]:
        table.add_column(col)
    if row is None or row.id is None:
        return table
    measured = campaign.store.measurements(row.id)
    for e in campaign.store.experiments(row.id):
        vals = {m.name: m for m in measured.get(e.id or -1, [])}
        cells = [str(e.index), e.state, str(e.attempt), e.generator]
        cells += [
            fmt_value(vals[o.name].value, vals[o.name].sigma, o.unit) if o.name in vals else "" for o in spec.objectives
        ]
        cells.append(f"{e.failure_code}: {e.failure_reason}"[:80] if e.failure_code else "")
        table.add_row(*cells)
    return table
