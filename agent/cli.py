"""The ``matloop`` command line: validate, run, status, resume, export, show, explain, plot, record (and plug-in
command groups)."""

from __future__ import annotations

import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from agent.campaign import Campaign, validate
from agent.driver_cli import app as driver_app
from agent.errors import ConfigError, MatloopError, StoreError
from agent.store.store import Store

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

app = typer.Typer(help="Autonomous closed-loop materials discovery.", no_args_is_help=True, add_completion=False)
out = Console()
err = Console(stderr=True)

StoreOpt = Annotated[str | None, typer.Option("--store", help="Store URL, when CAMPAIGN is a name, not a file.")]
AsOpt = Annotated[str | None, typer.Option("--as", help="The campaign name given to `run --as`.")]
ApproveOpt = Annotated[
    bool, typer.Option("--approve", help="Ask on the terminal to approve, veto or edit each proposal before it runs.")
]
WhoOpt = Annotated[str | None, typer.Option("--who", help="Who approves or enters results (default: $USER).")]
ApproveUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--approve-url",
        help="Wait for each proposal's approval at this HTTP approvals queue (e.g. http://127.0.0.1:8000 of "
        "`matloop sim serve`); token from --token-env.",
    ),
]
NoCheckOpt = Annotated[
    bool, typer.Option("--no-check", help="Start without the first-contact check of the instruments.")
]
TokenEnvOpt = Annotated[
    str, typer.Option("--token-env", help="Environment variable holding the approvals service's bearer token.")
]


def _who(who: str | None) -> str:
    return who or os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"


def _bad(exc: Exception) -> typer.Exit:
    err.print(f"[bold red]error:[/] {exc}", highlight=False)
    return typer.Exit(EXIT_BAD_INPUT)


def _open(campaign: str, store: str | None, as_name: str | None = None) -> Campaign:
    path = Path(campaign)
    if store is None and path.suffix in (".yaml", ".yml"):
        return Campaign.from_yaml(path, name=as_name)
    if store is None:
        raise ConfigError([f"{campaign!r} is not a campaign file (.yaml); to open a campaign by name give --store URL"])
    return Campaign.open(campaign, store)


@app.command("validate")
def validate_cmd(file: Path) -> None:
    """Check a campaign file without running anything (exit 0 valid, 2 invalid)."""
    try:
        spec, measured = validate(file)
    except MatloopError as exc:
        raise _bad(exc) from None
    out.print(f"[green]ok[/]: {file} — campaign {spec.name!r}, seed {spec.seed}", highlight=False)
    out.print(f"  inputs: {', '.join(spec.space.input_names())}", highlight=False)
    out.print(
        f"  objectives: {', '.join(f'{o.direction} {o.name} [{o.unit}]' for o in spec.objectives)}", highlight=False
    )
    out.print(f"  measured: {', '.join(sorted(measured))}", highlight=False)
    out.print(
        f"  budget: {spec.budget.experiments} experiments on {spec.budget.lanes} lane(s); "
        f"strategy {spec.strategy.name}",
        highlight=False,
    )


def _run(
    campaign: Campaign,
    *,
    resume: bool,
    quiet: bool,
    approve: bool = False,
    who: str | None = None,
    approve_url: str | None = None,
    token_env: str = "MATLOOP_ROBOT_TOKEN",
    check: bool = True,
) -> None:
    from agent.contact import InstrumentsNotReady
    from agent.display import LiveView, summary
    from agent.human import ApprovalError, Approver, InvalidEdit
    from agent.prompt import PromptApprover

    approver: Approver | None = PromptApprover(campaign.spec, _who(who), out) if approve else None
    if approve_url is not None:
        from agent.http_approver import HttpApprover

        if approve:
            raise _bad(ConfigError(["give either --approve (terminal) or --approve-url (HTTP), not both"]))
        try:
            approver = HttpApprover(approve_url, token_env=token_env, campaign=campaign.spec.name)
        except ConfigError as exc:
            raise _bad(exc) from None
        err.print(f"proposals wait for approval at {approve_url}/approvals", highlight=False)

    row = campaign.row
    done = 0
    if row is not None and row.id is not None:
        done = sum(e.state in ("completed", "failed") for e in campaign.store.experiments(row.id))
    try:
        console = out if not quiet else Console(quiet=True)
        with LiveView(campaign, console, done_before=done, live=not approve and approve_url is None) as view:
            if resume:
                result = campaign.resume(view, approver=approver, check_instruments=check)
            else:
                result = campaign.run(view, approver=approver, check_instruments=check)
    except KeyboardInterrupt:
        err.print(f"interrupted: state recorded; continue with `matloop resume {campaign.source}`", highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (StoreError, ConfigError, InvalidEdit, ApprovalError) as exc:
        raise _bad(exc) from None
    except InstrumentsNotReady as exc:
        err.print(f"[bold red]not started:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    except MatloopError as exc:
        err.print(f"[bold red]campaign failed:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    summary(campaign, result, out)


@app.command("run")
def run_cmd(
    file: Path,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the final summary.")] = False,
    as_name: Annotated[
        str | None, typer.Option("--as", help="Run the file as a new campaign with this name (the first stays).")
    ] = None,
    approve: ApproveOpt = False,
    who: WhoOpt = None,
    approve_url: ApproveUrlOpt = None,
    token_env: TokenEnvOpt = "MATLOOP_ROBOT_TOKEN",
    no_check: NoCheckOpt = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show what the next batch would send; send and record nothing."),
    ] = False,
) -> None:
    """Run a campaign from its YAML file until a stop rule fires."""
    try:
        campaign = Campaign.from_yaml(file, name=as_name)
        if dry_run:
            _dry_run(campaign)
            return
    except MatloopError as exc:
        raise _bad(exc) from None
    _run(
        campaign,
        resume=False,
        quiet=quiet,
        approve=approve,
        who=who,
        approve_url=approve_url,
        token_env=token_env,
        check=not no_check,
    )


def _dry_run(campaign: Campaign) -> None:
    import json

    from agent.dryrun import dry_run

    requests = dry_run(campaign)
    out.print(f"dry run of {campaign.spec.name!r}: nothing sent, nothing recorded", highlight=False)
    for i, r in enumerate(requests, 1):
        verdict = "[bold red]REFUSED[/]: " + "; ".join(r.refused) if r.refused else "[green]would send[/]"
        out.print(f"{i}. {verdict} ({r.generator})", highlight=False)
        out.print(json.dumps(r.wire, indent=2, default=str), highlight=False, markup=False)
    if any(r.refused for r in requests):
        raise typer.Exit(EXIT_FAILED)


@app.command("resume")
def resume_cmd(
    campaign: str,
    store: StoreOpt = None,
    as_name: AsOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    approve: ApproveOpt = False,
    who: WhoOpt = None,
    approve_url: ApproveUrlOpt = None,
    token_env: TokenEnvOpt = "MATLOOP_ROBOT_TOKEN",
    no_check: NoCheckOpt = False,
) -> None:
    """Continue an interrupted campaign: nothing recorded is lost, nothing done is repeated."""
    try:
        c = _open(campaign, store, as_name)
    except MatloopError as exc:
        raise _bad(exc) from None
    _run(
        c,
        resume=True,
        quiet=quiet,
        approve=approve,
        who=who,
        approve_url=approve_url,
        token_env=token_env,
        check=not no_check,
    )


@app.command("status")
def status_cmd(campaign: str, store: StoreOpt = None, as_name: AsOpt = None) -> None:
    """Experiments, their states, objective values and failures."""
    from agent.display import status_table, summary

    try:
        c = _open(campaign, store, as_name)
        if c.row is None:
            raise StoreError(f"campaign {c.spec.name!r} has not been run yet (store {c.location.url})")
    except MatloopError as exc:
        raise _bad(exc) from None
    out.print(status_table(c))
    summary(c, None, out)


@app.command("export")
def export_cmd(
    campaign: str,
    format: Annotated[str, typer.Option("--format", "-f", help="csv, parquet or json")] = "csv",
    output: Annotated[Path | None, typer.Option("--out", "-o", help="Output file (default: <name>.<format>)")] = None,
    store: StoreOpt = None,
    as_name: AsOpt = None,
) -> None:
    """Write every experiment (conditions, measurements with σ, states) as a table."""
    try:
        c = _open(campaign, store, as_name)
        if c.row is None:
            raise StoreError(f"campaign {c.spec.name!r} has not been run yet (store {c.location.url})")
        path = c.export(output or Path(f"{c.spec.name}.{format}"), format)
    except MatloopError as exc:
        raise _bad(exc) from None
    out.print(f"wrote {path}", highlight=False)


@app.command("show")
def show_cmd(
    campaign: str,
    experiment: int,
    output: Annotated[Path | None, typer.Option("--out", "-o", help="Output PNG (default: <name>-<n>.png)")] = None,
    store: StoreOpt = None,
    as_name: AsOpt = None,
) -> None:
    """Write the segmentation overlay(s) of one experiment: the micrograph, what was segmented, the features."""
    import shutil

    try:
        c = _open(campaign, store, as_name)
        row = c.row
        exp = c.store.experiment(row.id, experiment) if row is not None and row.id is not None else None
        if exp is None or exp.id is None:
            raise StoreError(f"campaign {c.spec.name!r} has no experiment {experiment}")
        arts = c.store.artifacts(exp.id, "overlay")
        if not arts:
            raise StoreError(f"experiment {experiment} has no overlay (state {exp.state}; imaging.overlays may be off)")
    except MatloopError as exc:
        raise _bad(exc) from None
    base = output or Path(f"{c.spec.name}-{experiment}.png")
    for i, art in enumerate(arts):
        dst = base if len(arts) == 1 else base.with_name(f"{base.stem}-{i + 1}{base.suffix}")
        shutil.copyfile(c.store.file_path(art), dst)
        out.print(f"wrote {dst}", highlight=False)


@app.command("explain")
def explain_cmd(campaign: str, experiment: int, store: StoreOpt = None, as_name: AsOpt = None) -> None:
    """Why an experiment was run: what the model predicted against what was measured.

    Shows the predicted mean ± σ of each objective, the acquisition value, the length scales (shortest
    first), the predicted feasibility, and who approved, edited or entered it."""
    from agent.display import render_explanation

    try:
        c = _open(campaign, store, as_name)
        e = c.explain(experiment)
    except MatloopError as exc:
        raise _bad(exc) from None
    render_explanation(e, c.spec, out)


@app.command("plot")
def plot_cmd(
    campaign: str,
    output: Annotated[Path, typer.Option("--out", "-o", help="Folder for the PNGs (made if missing).")] = Path("."),
    store: StoreOpt = None,
    as_name: AsOpt = None,
) -> None:
    """Write PNGs of progress: best so far, the Pareto front, partial dependence.

    Best-so-far per objective (vs experiment and vs lab time), the Pareto front (two objectives or more,
    non-dominated points highlighted) and the partial dependence of a GP fitted on the completed experiments."""
    try:
        c = _open(campaign, store, as_name)
        paths = c.plot(output)
    except MatloopError as exc:
        raise _bad(exc) from None
    for p in paths:
        out.print(f"wrote {p}", highlight=False)
    if not any(p.name.startswith("partial_dependence") for p in paths):
        out.print("no partial dependence: it needs 3 completed experiments or more", highlight=False)


@app.command("record")
def record_cmd(
    campaign: str,
    experiment: Annotated[str, typer.Argument(help="The experiment number, or 'new' for one done entirely by hand.")],
    value: Annotated[
        list[str] | None, typer.Option("--value", "-v", help="A measured value: NAME=VALUE or NAME=VALUE±SIGMA.")
    ] = None,
    failed: Annotated[str | None, typer.Option("--failed", help="The experiment failed, for this reason.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="A condition of a 'new' experiment: NAME=VALUE (every input).")
    ] = None,
    who: WhoOpt = None,
    note: Annotated[str, typer.Option("--note", help="A remark kept with the event.")] = "",
    store: StoreOpt = None,
    as_name: AsOpt = None,
) -> None:
    """Enter a result measured by hand, for a waiting experiment or a new one done by hand."""
    from agent.human import parse_assignments, parse_values

    try:
        c = _open(campaign, store, as_name)
        metrics = [o.name for o in c.spec.objectives]
        metrics += [k.name for k in c.spec.outcome_constraints if k.name not in metrics]
        if bool(value) == (failed is not None):
            raise ConfigError(["give the measured values (--value NAME=VALUE±SIGMA ...) or --failed REASON"])
        values = parse_values(value, metrics) if value else None
        if experiment == "new":
            if not set_:
                raise ConfigError(
                    [
                        f"a new experiment needs its conditions: --set NAME=VALUE for each of "
                        f"{', '.join(c.spec.space.input_names())}"
                    ]
                )
            exp = c.add_experiment(parse_assignments(set_), values, failed=failed, who=_who(who), note=note)
        else:
            try:
                index = int(experiment)
            except ValueError:
                raise ConfigError([f"EXPERIMENT {experiment!r}: give an experiment number or 'new'"]) from None
            if set_:
                raise ConfigError(["--set is only for a 'new' experiment; an existing one keeps its conditions"])
            exp = c.record(index, values, failed=failed, who=_who(who), note=note)
    except MatloopError as exc:
        raise _bad(exc) from None
    out.print(f"experiment {exp.index}: {exp.state} (entered by {_who(who)})", highlight=False)


@app.command("campaigns")
def campaigns_cmd(store: str) -> None:
    """List the campaigns recorded in a store."""
    try:
        s = Store(store, Path("."))
    except MatloopError as exc:
        raise _bad(exc) from None
    for c in s.campaigns():
        out.print(f"{c.name}\t{c.status}\t{c.stop_reason}", highlight=False)


@app.command("bench")
def bench_cmd(
    sweep: Annotated[Path, typer.Argument(help="The sweep YAML: problems × strategies × seeds × budgets.")],
    output: Annotated[Path, typer.Option("--out", "-o", help="Folder for results and the report (made if missing).")],
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Local worker processes (default: all cores).")
    ] = None,
    ray: Annotated[str | None, typer.Option("--ray", help="Run on Ray: a cluster ADDRESS, or 'local'.")] = None,
    no_resume: Annotated[
        bool, typer.Option("--no-resume", help="Rerun every run, even those already in --out.")
    ] = False,
    report_only: Annotated[
        bool, typer.Option("--report-only", help="Run nothing: write the report from the results already in --out.")
    ] = False,
) -> None:
    """Benchmark strategies on a sweep of problems, then write plots and report.md (medians, intervals, winners)."""
    import json
    from typing import Any

    import pandas as pd
    from rich.progress import Progress
    from rich.table import Table

    from agent.bench.report import write_report

    title: str | None = None
    try:
        if report_only:
            for name, read in (("results.parquet", pd.read_parquet), ("results.csv", pd.read_csv)):
                if (output / name).is_file():
                    df = read(output / name)
                    break
            else:
                raise ConfigError(
                    [f"{output}: no results.parquet or results.csv to report on; run without --report-only"]
                )
        else:
            from agent.bench.spec import load_sweep
            from agent.bench.sweep import run_sweep

            spec = load_sweep(sweep)
            title = f"Benchmark report: {spec.name}"
            with Progress(console=err, transient=True) as bar:
                task = bar.add_task(f"sweep {spec.name}", total=None)

                def progress(run: Any, status: str) -> None:
                    bar.advance(task)
                    if status != "done":
                        err.print(f"[yellow]run failed[/] {run.describe()}: {status}", highlight=False)

                df = run_sweep(spec, output, workers=workers, ray_address=ray, resume=not no_resume, progress=progress)
    except KeyboardInterrupt:
        err.print(
            f"interrupted: finished runs are kept in {output}; run the same command again to resume", highlight=False
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except ConfigError as exc:
        raise _bad(exc) from None
    except (MatloopError, ConnectionError, RuntimeError) as exc:  # e.g. no Ray cluster at --ray ADDRESS
        err.print(f"[bold red]sweep failed:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    failed = df.attrs.get("failed") or {}
    if df.empty:
        err.print(f"[bold red]no run finished[/] ({len(failed)} failed); see {output / 'sweep.json'}", highlight=False)
        raise typer.Exit(EXIT_FAILED)
    try:
        path = write_report(df, output, title=title)
    except ValueError as exc:
        raise _bad(exc) from None
    sections = json.loads((output / "report.json").read_text())["sections"]
    table = Table(title="winner per problem")
    for col in ("problem", "budget", "batch", "winner", "runner-up", "lead"):
        table.add_column(col)
    for s in sections:
        lead = "n/a" if s["significant"] is None else ("significant" if s["significant"] else "not significant")
        table.add_row(
            s["problem"], str(s["budget"]), str(s["batch_size"]), s["winner"] or "—", s["runner_up"] or "—", lead
        )
    out.print(table)
    out.print(f"{df['run_id'].nunique()} runs; report: {path}", highlight=False)
    if failed:
        err.print(
            f"[bold red]{len(failed)} run(s) failed[/] and are left out of the report (see {output / 'sweep.json'}); "
            "run the same command again to retry them",
            highlight=False,
        )
        raise typer.Exit(EXIT_FAILED)


app.add_typer(driver_app, name="driver")


def _mount_plugins() -> None:
    for ep in entry_points(group="matloop.commands"):
        try:
            app.add_typer(ep.load(), name=ep.name)
        except Exception as exc:  # a broken plug-in must not break the core commands
            err.print(f"warning: command plug-in {ep.name!r} failed to load: {exc}")


def main() -> None:
    _mount_plugins()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
