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
