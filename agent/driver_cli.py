"""``matloop driver ...``: list installed instrument drivers, check first contact before a campaign, scaffold a new
driver package."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agent.errors import MatloopError

app = typer.Typer(help="Instrument drivers: list, first-contact check, scaffold.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


@app.command("list")
def list_cmd() -> None:
    """Installed instruments (entry points in ``matloop.instruments``) and where each comes from."""
    from instruments.registry import available

    table = Table("name", "class")
    for name, target in sorted(available().items()):
        table.add_row(name, target)
    out.print(table)


@app.command("check")
def check_cmd(
    campaign: Path,
    timeout_s: Annotated[float, typer.Option("--timeout", min=0.1, help="seconds to wait for each instrument")] = 10.0,
) -> None:
    """First contact: build every instrument of CAMPAIGN, ping it and report its state and hard limits; exit 1 if
    any instrument is unreachable or not ready, 2 if the campaign is invalid (e.g. its space exceeds a limit)."""
    from agent.campaign import Campaign
    from agent.contact import first_contact

    try:
        c = Campaign.from_yaml(campaign)
        reports = asyncio.run(first_contact(c.spec, c.location.workdir, timeout_s))
    except MatloopError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    for r in reports:
        ok = "[green]ready[/]" if r.ok else ("[yellow]not checked[/]" if r.ok is None else "[bold red]NOT READY[/]")
        out.print(f"{r.role}: {r.type} — {ok}, state {r.state}", highlight=False)
        if r.detail:
            out.print(f"    {r.detail}", highlight=False, markup=False)
        out.print(f"    hard limits: {r.limits}", highlight=False, markup=False)
    if any(r.ok is False for r in reports):
        raise typer.Exit(1)


@app.command("new")
def new_cmd(
    name: Annotated[str, typer.Argument(help="instrument name used in campaign YAML, e.g. acme-furnace")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder in which the package folder is created")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing package folder")] = False,
) -> None:
    """Scaffold an installable driver package: entry point, a driver over an injected transport, its simulated
    twin and a passing test. Install it with `pip install -e <folder>` and use `type: NAME` in a campaign."""
    from agent.scaffold import ScaffoldError, scaffold_driver

    try:
        root = scaffold_driver(name, out_dir, force=force)
    except ScaffoldError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    out.print(f"wrote {root}", highlight=False)
    out.print(f"next: pip install -e {root} && pytest {root / 'tests'}", highlight=False, markup=False)
