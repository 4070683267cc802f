"""Checks a TIFF written by acquisition software: every page decodes, and the file carries a physical scale.

Only ``tifffile`` is used (instruments must not import ``imaging``). The places looked at for a scale follow the
agent's reader (``imaging.io``), so that a file accepted here also yields a pixel size there: a JSON or
``key=value`` ImageDescription with ``pixel_size_um``/``_nm``/``_m``; FEI/Thermo ``[Scan] PixelWidth``; Zeiss
``ap_pixel_size``; OME ``PhysicalSizeX``; ImageJ resolution with its unit; resolution tags in inch/cm/mm/µm that
are not a screen or printer default (72, 96, 150, 300, 600 dpi) and not 'no unit'.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import tifffile

_UM_PER_UNIT = {"m": 1e6, "mm": 1e3, "cm": 1e4, "inch": 25_400.0, "in": 25_400.0, "um": 1.0, "µm": 1.0, "μm": 1.0}
_UM_PER_UNIT |= {"micron": 1.0, "microns": 1.0, "micrometer": 1.0, "micrometre": 1.0, "nm": 1e-3}
_RESUNIT_UM = {2: 25_400.0, 3: 1e4, 4: 1e3, 5: 1.0}  # TIFF ResolutionUnit code -> µm per unit (absent: inch)
_DEFAULT_DPI = (72.0, 96.0, 150.0, 300.0, 600.0)
_DESCRIPTION_KEYS = {"pixel_size_um": "um", "pixel_size_nm": "nm", "pixel_size_m": "m"}


class CorruptTiff(Exception):
    """The bytes are not a complete, decodable TIFF (still being written, truncated or damaged)."""


@dataclass(frozen=True)
class TiffReport:
    """What a complete TIFF holds: pages, first page's shape and dtype, and the scale found (None: no scale)."""

    pages: int
    shape: tuple[int, ...]
    dtype: str
    scale_source: str | None
    pixel_size_um: float | None


def inspect_tiff(data: bytes) -> TiffReport:
    """Decodes every page of ``data`` and looks for a physical scale; ``CorruptTiff`` when it cannot."""
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            pages = list(tif.pages)
            if not pages:
                raise CorruptTiff("no image page")
            first = None
            for i, page in enumerate(pages):
                offsets = getattr(page, "dataoffsets", ())
                counts = getattr(page, "databytecounts", ())
                for off, n in zip(offsets, counts, strict=False):
                    if off + n > len(data):
                        raise CorruptTiff(f"page {i} needs bytes up to {off + n}, the file has {len(data)}")
                array = page.asarray()
                if first is None:
                    first = array
            assert first is not None
            found = _scale(tif)
    except CorruptTiff:
        raise
    except Exception as exc:  # untrusted bytes: any parser failure means 'not a complete TIFF (yet)'
        raise CorruptTiff(f"{type(exc).__name__}: {exc}") from None
    source, um = found if found is not None else (None, None)
    return TiffReport(len(pages), tuple(int(s) for s in first.shape), str(first.dtype), source, um)


def _positive(um: float | None, source: str) -> tuple[str, float] | None:
    return (source, um) if um is not None and math.isfinite(um) and um > 0 else None


def _to_um(value: Any, unit: str) -> float | None:
    factor = _UM_PER_UNIT.get(str(unit).strip().lower().replace("\u00c2\u00b5", "µ"))
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number * factor if factor is not None and math.isfinite(number) and number > 0 else None


def _scale(tif: tifffile.TiffFile) -> tuple[str, float] | None:
    """The first scale found, as (where, µm per pixel), in the agent reader's order of trust."""
    page = tif.pages.first
    found = _from_description(str(page.description or ""))
    if found is None and tif.is_fei:
        found = _from_fei(tif.fei_metadata or {})
    if found is None and tif.is_sem:
        found = _from_zeiss(tif.sem_metadata or {})
    if found is None and tif.is_ome:
        m = re.search(r'PhysicalSizeX="([^"]+)"', tif.ome_metadata or "")
        u = re.search(r'PhysicalSizeXUnit="([^"]+)"', tif.ome_metadata or "")
        found = _positive(_to_um(m.group(1), u.group(1) if u else "um"), "ome PhysicalSizeX") if m else None
    xres = _xres(page)
    if found is None and tif.is_imagej and xres:
        unit = str((tif.imagej_metadata or {}).get("unit", ""))
        per_unit = _to_um(1.0, unit) if unit else None
        found = _positive(per_unit / xres if per_unit else None, f"imagej resolution (px per {unit})")
    if found is None and xres:
        tag = page.tags.get("ResolutionUnit")
        um_per_unit = _RESUNIT_UM.get(int(tag.value) if tag is not None else 2)
        if um_per_unit is not None:
            dpi = xres * 25_400.0 / um_per_unit
            if not any(abs(dpi - d) < 1e-3 * d for d in _DEFAULT_DPI):
                found = _positive(um_per_unit / xres, "resolution tags")
    return found


def _xres(page: Any) -> float | None:
    tag = page.tags.get("XResolution")
    if tag is None:
        return None
    num, den = tag.value if isinstance(tag.value, tuple) else (tag.value, 1)
    return float(num) / float(den) if den and num else None


def _from_description(text: str) -> tuple[str, float] | None:
    items: dict[str, Any] = {}
    try:
        parsed = json.loads(text)
        if isinstance(parsed, Mapping):
            items = {str(k).lower(): v for k, v in parsed.items()}
    except ValueError:
        for line in re.split(r"[\r\n;]+", text):
            m = re.match(r"\s*([A-Za-z_]+)\s*[=:]\s*([^\s,]+)", line)
            if m:
                items[m.group(1).lower()] = m.group(2)
    for key, unit in _DESCRIPTION_KEYS.items():
        found = _positive(_to_um(items[key], unit), f"description {key}") if key in items else None
        if found:
            return found
    return None


def _from_fei(meta: Mapping[str, Any]) -> tuple[str, float] | None:
    for section in ("Scan", "EScan", "IScan"):
        sec = meta.get(section)
        if isinstance(sec, Mapping) and "PixelWidth" in sec:
            found = _positive(_to_um(sec["PixelWidth"], "m"), f"fei_metadata {section}.PixelWidth")
            if found:
                return found
    return None


def _from_zeiss(meta: Mapping[str, Any]) -> tuple[str, float] | None:
    for key, entry in meta.items():
        if isinstance(entry, tuple) and len(entry) >= 3:
            label = str(entry[0]).strip().lower()
            if key == "ap_pixel_size" or label in {"pixel size", "image pixel size"}:
                found = _positive(_to_um(entry[1], str(entry[2])), f"sem_metadata {key}")
                if found:
                    return found
    return None
