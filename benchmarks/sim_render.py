"""Render speed of the simulated SEM: one 1024×1024 micrograph with its ground-truth masks, on one core.

Run ``python benchmarks/sim_render.py`` (set ``OMP_NUM_THREADS=1`` too if threadpoolctl is missing).
Prints JSON: median seconds over several runs for the masks, the image (contrast and artifacts), their sum
(target < 0.5 s), and writing the TIFF and compressed masks.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from instruments.sim.features import field_truth
from instruments.sim.microscope import _save_masks
from instruments.sim.render import Microstructure, render_masks
from instruments.sim.sem import Artifacts, apply_artifacts, structure_image
from instruments.sim.systems import two_phase_alloy
from instruments.sim.tiff import write_micrograph


def _single_thread() -> Any:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    return threadpool_limits(1)


def main(size: int = 1024, runs: int = 5) -> dict[str, Any]:
    conditions = {
        "anneal_temperature": 820.0,
        "anneal_time": 0.5,
        "cooling_rate": 0.5,
        "alloy_fraction": 0.06,
        "atmosphere": "air",
    }
    truth = two_phase_alloy.outcome(conditions, np.random.default_rng(0)).truth
    ms = Microstructure.from_truth(truth)
    px = 0.5
    masks_s, image_s, write_s = [], [], []
    with _single_thread(), tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            rng = np.random.default_rng(i)
            t0 = time.perf_counter()
            masks = render_masks(ms, (size, size), px, rng)
            t1 = time.perf_counter()
            image = apply_artifacts(structure_image(masks, rng), Artifacts(), rng, out_of_focus=False)
            t2 = time.perf_counter()
            write_micrograph(Path(tmp) / "f.tif", image, px, {"run": i})
            _save_masks(Path(tmp) / "f.masks.npz", masks)
            t3 = time.perf_counter()
            masks_s.append(t1 - t0)
            image_s.append(t2 - t1)
            write_s.append(t3 - t2)
    feats = field_truth(masks, px)
    return {
        "benchmark": "sim_render",
        "size_px": size,
        "runs": runs,
        "threads": 1,
        "grains": feats["grain_count"],
        "masks_s": round(statistics.median(masks_s), 4),
        "image_s": round(statistics.median(image_s), 4),
        "render_s": round(statistics.median(m + i for m, i in zip(masks_s, image_s, strict=True)), 4),
        "write_tiff_and_masks_s": round(statistics.median(write_s), 4),
        "target_render_s": 0.5,
    }


if __name__ == "__main__":
    print(json.dumps(main()))
