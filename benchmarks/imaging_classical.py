"""Speed and accuracy of the classical imaging pipeline on synthetic micrographs with known truth.

Prints JSON: seconds per image at 512² and 1024² (median of 3, after a warm-up), and over ``--seeds`` structures
at each noise level, the mean absolute error and the mean reported σ of porosity, second-phase fraction and grain
size (relative for grain sizes), and crack counts found/true. Run on one core for per-core timings:
``taskset -c 0 python benchmarks/imaging_classical.py [--seeds 6]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import numpy as np

from imaging.io import LoadedImage
from imaging.pipeline import ClassicalPipeline
from tests.imaging.synth import make_micrograph

NOISE_LEVELS: dict[str, dict[str, float]] = {
    "sharp": {"noise": 0.03, "blur_px": 0.8},
    "moderate": {"noise": 0.06, "blur_px": 1.2},
    "poor": {"noise": 0.12, "blur_px": 2.0},
}


def timing(pipeline: ClassicalPipeline, size: int) -> float:
    m = make_micrograph(size=size, n_grains=int(120 * (size / 512) ** 2), noise=0.05, seed=1)
    image = LoadedImage(m.image, m.pixel_size_um, "caller")
    pipeline.measure(image)
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        pipeline.measure(image)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def accuracy(pipeline: ClassicalPipeline, seeds: int, level: dict[str, float]) -> dict[str, Any]:
    rows: dict[str, list[float]] = {k: [] for k in ("porosity", "second", "grain_rel", "ecd_rel")}
    sig: dict[str, list[float]] = {k: [] for k in rows}
    found = true = 0
    for seed in range(seeds):
        m = make_micrograph(seed=100 + seed, **level)
        f = pipeline.measure(LoadedImage(m.image, m.pixel_size_um, "caller"))
        rows["porosity"].append(abs(f["porosity"].value - m.porosity))
        sig["porosity"].append(f["porosity"].sigma)
        rows["second"].append(abs(f["second_phase_fraction"].value - m.second_phase_fraction))
        sig["second"].append(f["second_phase_fraction"].sigma)
        rows["grain_rel"].append(abs(f["grain_size_um"].value / m.intercept_um - 1))
        sig["grain_rel"].append(f["grain_size_um"].sigma / f["grain_size_um"].value)
        rows["ecd_rel"].append(abs(f["grain_size_ecd_um"].value / m.ecd_um - 1))
        sig["ecd_rel"].append(f["grain_size_ecd_um"].sigma / f["grain_size_ecd_um"].value)
        found += int(f["crack_count"].value)
        true += len(m.crack_lengths_px)
    out: dict[str, Any] = {
        k: {"mean_abs_error": round(float(np.mean(v)), 4), "mean_sigma": round(float(np.mean(sig[k])), 4)}
        for k, v in rows.items()
    }
    out["cracks_found_of_true"] = [found, true]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=6)
    args = parser.parse_args()
    pipeline = ClassicalPipeline()
    report = {
        "machine": platform.processor() or platform.machine(),
        "seconds_per_image": {f"{s}x{s}": round(timing(pipeline, s), 3) for s in (512, 1024)},
        "accuracy_512px": {name: accuracy(pipeline, args.seeds, lv) for name, lv in NOISE_LEVELS.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
