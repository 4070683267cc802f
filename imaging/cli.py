"""``matloop imaging ...``: commands for learned segmentation (mounted by the CLI through ``matloop.commands``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="Learned segmentation: train U-Nets on labelled micrograph folders.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Learned segmentation: train U-Nets on labelled micrograph folders."""


_PATH_FIELDS = ("dataset_dir", "run_dir", "init_weights")


def load_train_config(path: Path) -> Any:
    """A ``TrainConfig`` from YAML; relative paths are taken relative to the YAML file. Raises ``typer.Exit(2)``
    after printing which field is wrong."""
    import yaml
    from pydantic import ValidationError

    from imaging.train.trainer import TrainConfig

    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        typer.echo(f"error: cannot read {path}: {exc}", err=True)
        raise typer.Exit(2) from exc
    except yaml.YAMLError as exc:
        typer.echo(f"error: {path} is not valid YAML: {exc}", err=True)
        raise typer.Exit(2) from exc
    if not isinstance(raw, dict):
        typer.echo(f"error: {path}: expected a mapping of TrainConfig fields, got {type(raw).__name__}", err=True)
        raise typer.Exit(2)
    for key in _PATH_FIELDS:
        if isinstance(raw.get(key), str) and not Path(raw[key]).expanduser().is_absolute():
            raw[key] = str(path.parent / raw[key])
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()]
        typer.echo(f"error: {path}: invalid training config:\n" + "\n".join(lines), err=True)
        raise typer.Exit(2) from exc


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="YAML file of TrainConfig fields", metavar="CONFIG.yaml")],
) -> None:
    """Trains a U-Net as CONFIG.yaml says; resumes from RUN_DIR/last.pt when present."""
    from imaging.base import ImagingError
    from imaging.train.trainer import train as run_training

    cfg = load_train_config(config)
    try:
        result = run_training(cfg, log=typer.echo)
    except ImagingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    best = "-" if result.best_val_miou is None else f"{result.best_val_miou:.3f}"
    typer.echo(f"done: best epoch {result.best_epoch + 1}, val mIoU {best}; checkpoint {result.best_path}")
