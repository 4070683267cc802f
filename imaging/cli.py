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
_TRAIN_TYPES = ("unet_train", "classifier_train", "regressor_train")


def _config_class(kind: str) -> Any:
    """The pydantic config class of a training ``type``."""
    if kind == "unet_train":
        from imaging.train.trainer import TrainConfig

        return TrainConfig
    from imaging.train.tasks import ClassifierTrainConfig, RegressorTrainConfig

    return ClassifierTrainConfig if kind == "classifier_train" else RegressorTrainConfig


def load_train_config(path: Path) -> Any:
    """A training config from YAML, its class picked by ``type:`` (``unet_train`` when absent: ``TrainConfig``;
    ``classifier_train``: ``ClassifierTrainConfig``; ``regressor_train``: ``RegressorTrainConfig``); relative
    paths are taken relative to the YAML file. Raises ``typer.Exit(2)`` after printing which field is wrong."""
    import yaml
    from pydantic import ValidationError

    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        typer.echo(f"error: cannot read {path}: {exc}", err=True)
        raise typer.Exit(2) from exc
    except yaml.YAMLError as exc:
        typer.echo(f"error: {path} is not valid YAML: {exc}", err=True)
        raise typer.Exit(2) from exc
    if not isinstance(raw, dict):
        typer.echo(f"error: {path}: expected a mapping of training config fields, got {type(raw).__name__}", err=True)
        raise typer.Exit(2)
    kind = raw.get("type", "unet_train")
    if kind not in _TRAIN_TYPES:
        typer.echo(f"error: {path}: field 'type' is {kind!r}; expected one of {', '.join(_TRAIN_TYPES)}", err=True)
        raise typer.Exit(2)
    for key in _PATH_FIELDS:
        if isinstance(raw.get(key), str) and not Path(raw[key]).expanduser().is_absolute():
            raw[key] = str(path.parent / raw[key])
    try:
        return _config_class(kind).model_validate(raw)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()]
        typer.echo(f"error: {path}: invalid {kind} config:\n" + "\n".join(lines), err=True)
        raise typer.Exit(2) from exc


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="YAML file of TrainConfig fields", metavar="CONFIG.yaml")],
) -> None:
    """Trains the model CONFIG.yaml describes: its ``type:`` is unet_train (the default; a U-Net, resumed from
    RUN_DIR/last.pt when present), classifier_train (an image classifier) or regressor_train (a property
    regressor with uncertainty)."""
    from imaging.base import ImagingError
    from imaging.train.tasks import ClassifierTrainConfig, RegressorTrainConfig, train_classifier, train_regressor
    from imaging.train.trainer import train as run_training

    cfg = load_train_config(config)
    try:
        if isinstance(cfg, ClassifierTrainConfig | RegressorTrainConfig):
            if isinstance(cfg, ClassifierTrainConfig):
                image_result = train_classifier(cfg, log=typer.echo)
            else:
                image_result = train_regressor(cfg, log=typer.echo)
            loss = "-" if image_result.best_val_loss is None else f"{image_result.best_val_loss:.4f}"
            typer.echo(
                f"done: best epoch {image_result.best_epoch + 1}, val loss {loss}; checkpoint {image_result.best_path}"
            )
            return
        result = run_training(cfg, log=typer.echo)
    except ImagingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    best = "-" if result.best_val_miou is None else f"{result.best_val_miou:.3f}"
    typer.echo(f"done: best epoch {result.best_epoch + 1}, val mIoU {best}; checkpoint {result.best_path}")


DATASETS_GROUP = "matloop.datasets"


def dataset_exporter(name: str = "sim") -> Any:
    """The dataset generator registered as ``name`` in the entry-point group ``matloop.datasets`` (called as
    ``export(system, out, *, n, seed, size_px, artifacts, crack_fields, pixel_size_um)``); imaging never imports a
    simulator directly."""
    from importlib.metadata import entry_points

    eps = {ep.name: ep for ep in entry_points(group=DATASETS_GROUP)}
    if name not in eps:
        typer.echo(f"error: no dataset generator {name!r} in entry-point group {DATASETS_GROUP!r}", err=True)
        raise typer.Exit(2)
    return eps[name].load()


@app.command()
def pretrain(
    system: Annotated[str, typer.Option(help="simulated materials system to render")] = "two_phase_alloy",
    n: Annotated[int, typer.Option(min=4, help="micrographs to generate")] = 96,
    epochs: Annotated[int, typer.Option(min=1)] = 280,
    out: Annotated[Path | None, typer.Option(help="checkpoint path (default: the cache NeuralPipeline reads)")] = None,
    generator: Annotated[str, typer.Option(help="entry point in matloop.datasets")] = "sim",
    seed: Annotated[int, typer.Option()] = 0,
    quick: Annotated[bool, typer.Option(help="tiny data and training, for tests")] = False,
    device: Annotated[str, typer.Option(help="auto (CUDA if present), cpu or cuda")] = "auto",
    amp: Annotated[bool, typer.Option(help="bf16 mixed precision (CUDA only)")] = True,
    crack_fields: Annotated[float, typer.Option(min=0.0, max=1.0, help="share of fields given quench cracks")] = 0.3,
    pixel_size_um: Annotated[
        float | None, typer.Option(min=1e-4, help="µm per pixel of the rendered fields (default: the system's)")
    ] = None,
) -> None:
    """Trains a small U-Net on simulated-lab micrographs and caches it as the default ``unet`` checkpoint.

    Each micrograph gets its own SEM artifact settings drawn from the simulator's training ranges (domain
    randomization); images are normalized one by one, and augmented with flips, rotations, brightness,
    contrast, noise and blur, so that the model carries over to other microscopes and settings. A share of the
    fields (``--crack-fields``) carries quench cracks, which the samples that survive rarely show. The bundled
    checkpoint is this command with its defaults and ``--out imaging/models/weights/unet-<system>.pt``."""
    import shutil
    import tempfile

    from imaging.base import ImagingError
    from imaging.models import UNetConfig
    from imaging.neural import default_checkpoint
    from imaging.train.trainer import TrainConfig
    from imaging.train.trainer import train as run_training

    export = dataset_exporter(generator)
    size = 64 if quick else 192
    if quick:
        n, epochs = min(n, 6), min(epochs, 2)
    target = out if out is not None else default_checkpoint(system)
    with tempfile.TemporaryDirectory(prefix="matloop-pretrain-") as tmp:
        data, run = Path(tmp) / "data", Path(tmp) / "run"
        typer.echo(f"rendering {n} {system} micrographs ({size} px, random SEM artifacts) with {generator!r}")
        export(
            system,
            data,
            n=n,
            seed=seed,
            size_px=size,
            artifacts="random",
            crack_fields=crack_fields,
            pixel_size_um=pixel_size_um,
        )
        cfg = TrainConfig(
            dataset_dir=data,
            run_dir=run,
            model=UNetConfig(n_classes=5, base_channels=8 if quick else 16, depth=2 if quick else 3, dropout=0.1),
            epochs=epochs,
            batch_size=4 if quick else 8,
            crop_size=32 if quick else 96,
            samples_per_epoch=8 if quick else 128,
            lr=3e-3,
            lr_schedule="cosine",
            class_weight_power=0.5,
            dice_weight=1.0,
            normalization="per_image",
            augment_noise=0.12,
            augment_blur_px=1.0,
            patience=None,
            val_fraction=0.15,
            test_fraction=0.15,
            device=device,  # type: ignore[arg-type]
            amp=amp,
            seed=seed,
        )
        try:
            result = run_training(cfg, log=typer.echo)
        except ImagingError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.best_path, target)
    miou = result.test.get("miou") if result.test else None
    typer.echo(f"test mIoU {'-' if miou is None else f'{miou:.3f}'}")
    typer.echo(f"checkpoint written to {target} ({target.stat().st_size / 1e6:.2f} MB)")
