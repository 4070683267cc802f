"""``matloop sim ...``: commands for the simulated lab (mounted by the CLI through ``matloop.commands``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="The simulated lab: look at what it makes.", no_args_is_help=True)


@app.command()
def gallery(
    system: Annotated[str, typer.Argument(help="material system, e.g. two_phase_alloy or porous_ceramic")],
    out: Annotated[Path, typer.Option("--out", help="PNG file to write")],
    n: Annotated[int, typer.Option("--n", min=1, max=36, help="number of samples")] = 9,
    seed: Annotated[int, typer.Option("--seed", help="seed of the Sobol design and of the samples")] = 0,
    pixel_size_um: Annotated[float | None, typer.Option("--pixel-size-um", help="default: the system's")] = None,
) -> None:
    """Contact sheet of micrographs across the input space, with conditions and true features."""
    from instruments.sim.gallery import make_gallery
    from instruments.sim.systems import SYSTEMS

    if system not in SYSTEMS:
        raise typer.BadParameter(f"unknown system {system!r}; valid: {', '.join(SYSTEMS)}", param_hint="SYSTEM")
    path = make_gallery(system, out, n=n, seed=seed, pixel_size_um=pixel_size_um)
    typer.echo(f"wrote {path}")


@app.command()
def optimum(system: Annotated[str, typer.Argument(help="material system")]) -> None:
    """Prints the noise-free optimum of the system's primary objective."""
    from instruments.sim.systems import get_system

    try:
        best = get_system(system).optimum()
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="SYSTEM") from exc
    typer.echo(f"{best.objective} = {best.value:.4g} at {best.conditions}")


@app.command()
def dataset(
    system: Annotated[str, typer.Argument(help="material system, e.g. two_phase_alloy or porous_ceramic")],
    out: Annotated[Path, typer.Option("--out", help="folder to write images/, masks/ and manifest.json into")],
    n: Annotated[int, typer.Option("--n", min=1, help="number of micrographs")] = 40,
    seed: Annotated[int, typer.Option("--seed", help="seed of the design, the samples and the fields")] = 0,
    size_px: Annotated[int, typer.Option("--size-px", min=8, max=4096, help="frame width and height")] = 256,
    artifacts: Annotated[
        str,
        typer.Option(
            "--artifacts",
            help="SEM artifacts: default, strong, none, or random (each image drawn from the training ranges)",
        ),
    ] = ("default"),
    pixel_size_um: Annotated[float | None, typer.Option("--pixel-size-um", help="default: the system's")] = None,
) -> None:
    """Training data for segmentation: micrographs (TIFF), class masks (PNG) and a manifest with true features."""
    from instruments.sim.dataset import ARTIFACT_PRESETS, export_dataset
    from instruments.sim.systems import SYSTEMS

    if system not in SYSTEMS:
        raise typer.BadParameter(f"unknown system {system!r}; valid: {', '.join(SYSTEMS)}", param_hint="SYSTEM")
    if artifacts not in (*ARTIFACT_PRESETS, "random"):
        raise typer.BadParameter(
            f"unknown preset {artifacts!r}; valid: {', '.join([*ARTIFACT_PRESETS, 'random'])}", param_hint="--artifacts"
        )
    try:
        manifest = export_dataset(
            system, out, n=n, seed=seed, size_px=size_px, artifacts=artifacts, pixel_size_um=pixel_size_um
        )
    except RuntimeError as exc:
        raise typer.BadParameter(str(exc), param_hint="--n") from exc
    typer.echo(f"wrote {len(manifest['items'])} micrographs and masks to {out}")


@app.command()
def serve(
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port to listen on")],
    host: Annotated[str, typer.Option("--host", help="address to bind; anything but loopback is reachable")] = (
        "127.0.0.1"
    ),
    system: Annotated[str, typer.Option("--system", help="material system the furnace makes")] = "two_phase_alloy",
    seed: Annotated[int, typer.Option("--seed", min=0, help="seed of the samples")] = 0,
    workdir: Annotated[Path, typer.Option("--workdir", help="folder of the furnace journal")] = Path("robot-server"),
    time_scale: Annotated[float, typer.Option("--time-scale", help="lab seconds per wall second (3600: h per s)")] = (
        1.0
    ),
    token_env: Annotated[str, typer.Option("--token-env", help="NAME of the variable holding the bearer token")] = (
        "MATLOOP_ROBOT_TOKEN"
    ),
    fresh: Annotated[bool, typer.Option("--fresh", help="archive the journal: forget every earlier request")] = False,
    fault: Annotated[
        list[str] | None,
        typer.Option("--fault", help="inject faults: ENDPOINT:MODE[:COUNT[:SKIP[:DELAY_S]]], repeatable"),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level")] = "info",
) -> None:
    """Serves the simulated lab over the REST API that the rest-robot driver speaks by default."""
    import uvicorn

    from instruments.sim.server import ServerConfigError, create_app, is_loopback

    if not is_loopback(host):
        typer.echo(
            f"WARNING: binding {host}: the robot server is reachable from other machines; anyone with the token "
            "can make samples. Use the default 127.0.0.1 unless you mean it.",
            err=True,
        )
    try:
        application = create_app(
            workdir=workdir,
            system=system,
            seed=seed,
            time_scale=time_scale,
            token_env=token_env,
            fresh=fresh,
            faults=list(fault or []),
        )
    except ServerConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run(application, host=host, port=port, log_level=log_level)
