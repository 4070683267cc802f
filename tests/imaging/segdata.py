"""Builds a small labelled dataset folder (the exporter's format) from ``tests.imaging.synth`` micrographs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tifffile
from numpy.typing import NDArray
from PIL import Image
from skimage.segmentation import find_boundaries

from tests.imaging.synth import Micrograph, make_micrograph

CLASSES = ["matrix", "second_phase", "pore", "boundary", "crack"]


def class_mask(m: Micrograph) -> NDArray[np.uint8]:
    """Class indices in ``CLASSES`` order: boundaries between solid grains, then pores and cracks drawn on top."""
    mask = np.zeros(m.image.shape, dtype=np.uint8)
    mask[m.second] = 1
    mask[find_boundaries(m.labels, mode="thick") & (m.labels > 0)] = 3
    mask[m.pores] = 2
    mask[m.cracks] = 4
    return mask


def make_dataset_folder(root: Path, n: int = 8, size: int = 64, seed: int = 0, pixel_size_um: float = 0.1) -> Path:
    """``root`` holding ``manifest.json``, ``images/*.tif`` (16-bit) and ``masks/*.png`` (uint8)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    items = []
    for i in range(n):
        m = make_micrograph(
            size=size,
            n_grains=10,
            porosity=0.06,
            second_fraction=0.25,
            n_cracks=1,
            pore_radius_px=(2.5, 5.0),
            boundary_width_px=2.5,
            pixel_size_um=pixel_size_um,
            seed=seed * 1000 + i,
        )
        name = f"s{i:02d}"
        tifffile.imwrite(root / "images" / f"{name}.tif", (m.image * 65535).round().astype(np.uint16))
        Image.fromarray(class_mask(m), mode="L").save(root / "masks" / f"{name}.png")
        items.append({"image": f"images/{name}.tif", "mask": f"masks/{name}.png", "pixel_size_um": pixel_size_um})
    manifest = {"classes": CLASSES, "pixel_size_um": pixel_size_um, "generator": "tests.imaging.synth", "items": items}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return root
