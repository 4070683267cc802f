"""Accuracy of segmentation and quantification on held-out simulated micrographs, U-Net against the classical
baseline, side by side on the same images.

Held-out sets are rendered with a seed the pretraining never uses and with fixed artifact presets:
``default`` (beyond the training ranges, which are drawn at random per image, in scan jitter and charging)
``strong`` (beyond them in every artifact: blur, dose, drift, jitter, charging; often unreadable by eye) and
``clean`` (no artifacts at all: no blur, drift, jitter or charging, shot noise below one grey level).
For each set and method: pooled mIoU and per-class IoU (the classical boundary skeleton is widened to the
label's groove width first), the median relative error of the mean lineal intercept against the field's true
one, and the median absolute porosity error in percentage points. Frames the classical pipeline rejects as
unusable (no structure above noise) are left out for both methods and counted. A share of the fields
(``--crack-fields``, default 0.25) carries quench cracks, so that the crack class is scored where cracks exist.
Prints JSON; ``--markdown`` prints the README table instead.

``python benchmarks/imaging_accuracy.py [--checkpoint PATH] [--n 16] [--size 256] [--system two_phase_alloy]
[--presets default strong clean] [--pixel-size-um UM] [--crack-fields 0.25] [--cpu-bf16] [--no-align] [--tta]``
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage as ndi

from imaging.base import ImageInput, ImagingError
from imaging.classical import Segmentation
from imaging.infer import cpu_bf16_native
from imaging.io import read_input
from imaging.neural import NeuralPipeline, pretrained_checkpoint
from imaging.pipeline import ClassicalPipeline
from imaging.train.dataset import SegmentationFolder
from imaging.train.metrics import SegmentationMetrics
from instruments.sim.dataset import export_dataset

HELD_OUT_SEED = 1_000_003  # pretraining draws seeds 0..99
#: held-out set name → the exporter's artifact preset
PRESETS: dict[str, str] = {"default": "default", "strong": "strong", "clean": "none"}


def classical_labels(seg: Segmentation, classes: list[str], boundary_width_px: int) -> np.ndarray:
    """Class map of a classical segmentation in the exporter's precedence (crack > pore > second phase >
    boundary > matrix), its one-pixel boundary skeleton widened to the labels' groove width."""
    out = np.full(seg.solid.shape, classes.index("matrix"), dtype=np.uint8)
    band = seg.boundaries
    if boundary_width_px > 1:
        band = ndi.binary_dilation(band, np.ones((3, 3), bool), iterations=boundary_width_px // 2)
    out[band] = classes.index("boundary")
    out[seg.second] = classes.index("second_phase")
    out[seg.pores] = classes.index("pore")
    out[seg.cracks > 0] = classes.index("crack")
    return out


def evaluate(folder: Path, neural: NeuralPipeline, classical: ClassicalPipeline, tta: bool) -> dict[str, Any]:
    data = SegmentationFolder.load(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    width = int(manifest.get("boundary_width_px", 1))
    items = {item["image"]: item for item in manifest["items"]}
    metrics = {m: SegmentationMetrics(data.classes) for m in ("unet", "classical")}
    grain_err: dict[str, list[float]] = {"unet": [], "classical": []}
    pore_err: dict[str, list[float]] = {"unet": [], "classical": []}
    seconds = {"unet": 0.0, "classical": 0.0}
    rejected = 0
    for sample in data.samples:
        item = items[sample.name]
        loaded = read_input(ImageInput(folder / sample.name, item["pixel_size_um"]))
        truth = item["truth"]
        t0 = time.perf_counter()
        labels = {"unet": neural.segment(loaded.pixels, tta=tta)}
        feats = {"unet": neural.measure(loaded)}
        t1 = time.perf_counter()
        try:
            feats["classical"] = classical.measure(loaded)
        except ImagingError:  # the classical pipeline refuses frames with no structure above noise
            rejected += 1
            continue
        labels["classical"] = classical_labels(classical._last[-1][1], data.classes, width)
        t2 = time.perf_counter()
        seconds["unet"] += t1 - t0
        seconds["classical"] += t2 - t1
        for m in metrics:
            metrics[m].update(labels[m], sample.mask)
            true_grain = truth.get("mean_intercept_um")
            if true_grain:
                grain_err[m].append(abs(feats[m]["grain_size_um"].value / true_grain - 1))
            pore_err[m].append(abs(feats[m]["porosity"].value - truth["porosity"]) * 100)
    out: dict[str, Any] = {}
    for m, acc in metrics.items():
        res = acc.compute()
        out[m] = {
            "miou": res["miou"],
            "per_class_iou": {k: v["iou"] for k, v in res["per_class"].items()},
            "median_grain_size_error_pct": 100 * statistics.median(grain_err[m]) if grain_err[m] else None,
            "median_porosity_error_pp": statistics.median(pore_err[m]),
            "seconds_per_image": seconds[m] / max(len(data.samples) - rejected, 1),
            "frames_scored": len(data.samples) - rejected,
            "frames_rejected_by_classical": rejected,
        }
    return out


def markdown(result: dict[str, Any]) -> str:
    def f(x: float | None, nd: int = 3) -> str:
        return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"

    rows = [
        "| held-out set | method | mIoU | matrix | 2nd phase | pore | boundary | crack | grain size err. (median) "
        "| porosity err. (median, pp) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for preset, by_method in result["sets"].items():
        for m, r in by_method.items():
            c = r["per_class_iou"]
            rows.append(
                f"| {preset} | {m} | {f(r['miou'])} | {f(c.get('matrix'))} | {f(c.get('second_phase'))} "
                f"| {f(c.get('pore'))} | {f(c.get('boundary'))} | {f(c.get('crack'))} "
                f"| {f(r['median_grain_size_error_pct'], 1)} % | {f(r['median_porosity_error_pp'], 2)} |"
            )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: the pretrained (cached or bundled) model")
    ap.add_argument("--system", default="two_phase_alloy")
    ap.add_argument("--n", type=int, default=16, help="micrographs per held-out set")
    ap.add_argument("--size", type=int, default=256, help="pixels per side")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--presets", nargs="+", choices=list(PRESETS), default=list(PRESETS), help="held-out sets")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--cpu-bf16", action="store_true", help="U-Net in bf16 on CPUs that compute it natively")
    ap.add_argument("--pixel-size-um", type=float, default=None, help="default: the system's imaging pixel size")
    ap.add_argument("--crack-fields", type=float, default=0.25, help="share of held-out fields given quench cracks")
    ap.add_argument("--tile", type=int, default=None, help="U-Net inference window (default: the pipeline's)")
    ap.add_argument("--no-align", action="store_true", help="U-Net without scan-line alignment")
    ap.add_argument("--tta", action="store_true", help="U-Net labels averaged over the 8 dihedral views")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = args.checkpoint or pretrained_checkpoint(args.system)
    tile = {"tile": args.tile} if args.tile else {}
    neural = NeuralPipeline(
        checkpoint=ckpt, device="cpu", cpu_bf16=args.cpu_bf16, align_scan_lines=not args.no_align, **tile
    )
    classical = ClassicalPipeline()
    result: dict[str, Any] = {
        "system": args.system,
        "checkpoint": str(ckpt),
        "n_per_set": args.n,
        "size_px": args.size,
        "seed": HELD_OUT_SEED,
        "crack_fields": args.crack_fields,
        "cpu_bf16": args.cpu_bf16 and cpu_bf16_native(),
        "tile": neural.options.tile,
        "align_scan_lines": neural.options.align_scan_lines,
        "tta": args.tta,
        "sets": {},
    }
    with tempfile.TemporaryDirectory(prefix="matloop-accuracy-") as tmp:
        for preset in args.presets:
            folder = Path(tmp) / preset
            export_dataset(
                args.system,
                folder,
                n=args.n,
                seed=HELD_OUT_SEED,
                size_px=args.size,
                artifacts=PRESETS[preset],
                pixel_size_um=args.pixel_size_um,
                crack_fields=args.crack_fields,
            )
            result["sets"][preset] = evaluate(folder, neural, classical, args.tta)
    print(markdown(result) if args.markdown else json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
