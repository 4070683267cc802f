"""Writes micrographs as a real SEM would: TIFF with resolution tags and the pixel size in the description."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tifffile


def write_micrograph(path: Path, image: np.ndarray, pixel_size_um: float, metadata: Mapping[str, Any]) -> None:
    """TIFF with XResolution/YResolution in pixels per centimetre and a JSON ImageDescription (atomic)."""
    per_cm = 1e4 / float(pixel_size_um)
    description = json.dumps({"pixel_size_um": float(pixel_size_um), **metadata}, sort_keys=True, default=str)
    tmp = path.with_suffix(path.suffix + ".part")
    tifffile.imwrite(
        tmp,
        image,
        resolution=(per_cm, per_cm),
        resolutionunit=tifffile.RESUNIT.CENTIMETER,
        description=description,
        software="matloop sim-sem",
        metadata=None,
    )
    os.replace(tmp, path)


def read_pixel_size_um(path: Path) -> float:
    """Pixel size (µm) from a TIFF's resolution tags (centimetre, inch or micrometre units)."""
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags  # type: ignore[union-attr]
        num, den = tags["XResolution"].value
        unit = int(tags["ResolutionUnit"].value)
    per_unit = num / den
    um_per_unit = {2: 25_400.0, 3: 10_000.0}.get(unit)
    if um_per_unit is None:
        raise ValueError(f"{path}: resolution unit {unit} does not give a physical pixel size")
    return um_per_unit / per_unit
