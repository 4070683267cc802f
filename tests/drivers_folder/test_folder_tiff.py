"""The driver's scale check (tifffile alone) agrees with the agent's reader (``imaging.io``): a file the driver
accepts yields that pixel size there, and a file it refuses has none there either."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from imaging.base import ImageReadError
from imaging.io import load_image
from instruments.drivers.folder_tiff import CorruptTiff, inspect_tiff

PX = 0.3  # µm
FEI = "[User]\r\nUser=me\r\n\r\n[Scan]\r\nPixelWidth=3e-07\r\nPixelHeight=3e-07\r\n"
ZEISS = "\r\nAP_PIXEL_SIZE\r\nPixel Size = 300.0 nm\r\nAP_WD\r\nWorking Distance = 8.5 mm\r\n"
VARIANTS: dict[str, tuple[dict[str, Any], float | None]] = {
    "json description": ({"description": '{"pixel_size_um": 0.3}', "metadata": None}, PX),
    "key=value description": ({"description": "detector=SE2\npixel_size_nm=300", "metadata": None}, PX),
    "fei": ({"extratags": [(34682, "s", 0, FEI, True)], "metadata": None}, PX),
    "zeiss": ({"extratags": [(34118, "s", 0, ZEISS, True)], "metadata": None}, PX),
    "resolution cm": ({"resolution": (1e4 / PX, 1e4 / PX), "resolutionunit": 3, "metadata": None}, PX),
    "resolution um": ({"resolution": (1 / PX, 1 / PX), "resolutionunit": 5, "metadata": None}, PX),
    "imagej": ({"imagej": True, "resolution": (1 / PX, 1 / PX), "metadata": {"unit": "um"}}, PX),
    "ome": ({"ome": True, "metadata": {"PhysicalSizeX": PX, "PhysicalSizeXUnit": "µm"}}, PX),
    "72 dpi": ({"resolution": (72.0, 72.0), "resolutionunit": 2, "metadata": None}, None),
    "no unit": ({"resolution": (1 / PX, 1 / PX), "resolutionunit": 1, "metadata": None}, None),
    "plain": ({}, None),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_driver_and_agent_reader_agree_on_the_scale(variant: str, tmp_path: Path) -> None:
    kwargs, expected = VARIANTS[variant]
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.arange(64 * 48, dtype=np.uint16).reshape(64, 48), **kwargs)
    report = inspect_tiff(buf.getvalue())
    assert report.pages == 1 and report.shape == (64, 48) and report.dtype == "uint16"
    path = tmp_path / "m.tif"
    path.write_bytes(buf.getvalue())
    if expected is None:
        assert report.scale_source is None and report.pixel_size_um is None
        with pytest.raises(ImageReadError, match="pixel size"):
            load_image(path)
    else:
        assert report.scale_source and report.pixel_size_um == pytest.approx(expected, rel=1e-6)
        loaded = load_image(path)
        assert not isinstance(loaded, list) and loaded.pixel_size_um == pytest.approx(expected, rel=1e-6)


def test_every_page_must_decode() -> None:
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tw:
        for i in range(3):
            tw.write(np.full((32, 32), i, dtype=np.uint8), description='{"pixel_size_um": 0.3}', metadata=None)
    data = buf.getvalue()
    assert inspect_tiff(data).pages == 3
    with pytest.raises(CorruptTiff):
        inspect_tiff(data[: len(data) - 40])
    for junk in (b"", b"II*\x00", b"not a tiff at all", data[:8]):
        with pytest.raises(CorruptTiff):
            inspect_tiff(junk)
