"""Rich rendering for the CLI: live progress with a best-so-far table, status tables, the final summary."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agent.campaign import Campaign
from agent.explain import Explanation
from agent.lifecycle import ExperimentState
from agent.loop import RunResult, Update
from agent.results import Scored
from agent.spec import CampaignSpec
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

    def __init__(self, campaign: Campaign, console: Console, done_before: int = 0, *, live: bool = True) -> None:
        self.campaign, self.console, self.use_live = campaign, console, live
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
        if self.console.is_terminal and self.use_live:
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
        if u.kind == "warm_start":
            self.console.print(u.message, highlight=False)
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
        elif u.kind == "vetoed" and exp is not None:
            self.console.print(f"experiment {exp.index} {u.message}", highlight=False)
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


def render_explanation(e: Explanation, spec: CampaignSpec, console: Console) -> None:
    """Prints an `Explanation`: conditions, predicted vs measured, acquisition, length scales, people."""
    units = spec.space.units()
    console.print(f"[bold]{spec.name} experiment {e.index}[/]: {e.state}, proposed by {e.generator or '?'}")
    cond = Table(title="conditions", title_justify="left")
    cond.add_column("input")
    cond.add_column("value")
    if e.original_conditions is not None:
        cond.add_column("proposed")
    for k, v in e.conditions.items():
        cells = [k, _fmt_cond(k, v, units.get(k, "")).split("=", 1)[1]]
        if e.original_conditions is not None:
            o = e.original_conditions.get(k, "")
            cells.append(_fmt_cond(k, o, units.get(k, "")).split("=", 1)[1] if o != "" else "")
        cond.add_row(*cells)
    console.print(cond)
    if not e.has_model:
        console.print(
            f"no model: {e.generator or 'this generator'} proposes without a surrogate model", highlight=False
        )
    names = [o.name for o in spec.objectives]
    names += [c.name for c in spec.outcome_constraints if c.name not in names]
    names += [n for n in e.predictions if n not in names] + [n for n in e.measured if n not in names]
    unit_of = {o.name: o.unit for o in spec.objectives}
    vs = Table(title="predicted (when proposed) vs measured", title_justify="left")
    for col in ("quantity", "predicted mean ± σ", "measured ± σ", "error / σ"):
        vs.add_column(col)
    for n in names:
        p, m = e.predictions.get(n), e.measured.get(n)
        unit = m[2] if m else unit_of.get(n, "")
        z = ""
        if p and m and p[1] > 0:
            z = f"{(m[0] - p[0]) / p[1]:+.2f}"
        vs.add_row(n, fmt_value(p[0], p[1], unit) if p else "—", fmt_value(m[0], m[1], unit) if m else "—", z)
    console.print(vs)
    lines = []
    if e.model:
        lines.append(f"model: {e.model}")
    if e.acquisition_value is not None or e.acquisition:
        acq = f"{e.acquisition_value:.4g}" if e.acquisition_value is not None else "—"
        lines.append(f"acquisition value: {acq}" + (f" ({e.acquisition})" if e.acquisition else ""))
    if e.feasibility is not None:
        lines.append(f"predicted probability of feasibility: {e.feasibility:.2f}")
    if e.failure:
        lines.append(f"failure: {e.failure}")
    for line in lines:
        console.print(line, highlight=False)
    if e.lengthscales:
        t = Table(title="length scales (shortest = most influential)", title_justify="left")
        t.add_column("input")
        t.add_column("length scale")
        for k, v in e.lengthscales:
            t.add_row(k, f"{v:.3g}")
        console.print(t)
    if e.relevance:
        console.print("relevance: " + ", ".join(f"{k} {v:.3g}" for k, v in e.relevance), highlight=False)
    if e.other_state:
        console.print("model state: " + ", ".join(f"{k}={v}" for k, v in e.other_state.items()), highlight=False)
    for a in e.actions:
        note = a.detail.get("note") or a.detail.get("reason") or ""
        console.print(f"{a.when:%Y-%m-%d %H:%M:%S} {a.who}: {a.kind}" + (f" — {note}" if note else ""), highlight=False)
