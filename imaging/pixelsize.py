"""Pixel size (micrometres per pixel) from the places microscopes and tools write it, each reader naming its source.

Every reader returns ``None`` when its place holds no usable value, so that ``io`` can try them in order of trust.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Micrometres per unit, for the unit spellings found in SEM/optical metadata (lower-case keys).
UM_PER_UNIT: dict[str, float] = {
    "m": 1e6,
    "mm": 1e3,
    "cm": 1e4,
    "inch": 25400.0,
    "in": 25400.0,
    "um": 1.0,
    "µm": 1.0,  # micro sign U+00B5
    "μm": 1.0,  # Greek mu U+03BC
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "nm": 1e-3,
    "pm": 1e-6,
    "å": 1e-4,
    "angstrom": 1e-4,
}

#: Resolutions (dots per inch) that image software writes by default; they describe a screen or a printer,
#: not the specimen, so a TIFF/PNG carrying exactly one of them has no physical scale.
DEFAULT_DPI: frozenset[float] = frozenset({72.0, 96.0, 150.0, 300.0, 600.0})

#: Keys in an ImageDescription (JSON or ``key=value`` lines) that carry the pixel size, and their unit.
DESCRIPTION_KEYS: dict[str, str] = {"pixel_size_um": "um", "pixel_size_nm": "nm", "pixel_size_m": "m"}


@dataclass(frozen=True)
class PixelSize:
    """A pixel size in micrometres per pixel and where it was found (recorded with the image)."""

    um: float
    source: str


def to_um(value: Any, unit: str) -> float | None:
    """``value`` in ``unit`` as micrometres, or None when the value is not a positive finite number or the unit
    is unknown."""
    factor = UM_PER_UNIT.get(_clean_unit(unit))
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if factor is None or not math.isfinite(number) or number <= 0:
        return None
    return number * factor


def _clean_unit(unit: str) -> str:
    u = str(unit).strip().lower().replace("\u00c2\u00b5", "µ")  # 'Âµ': UTF-8 micro sign read as Latin-1
    return {"u": "um", "micrometers": "um", "micrometres": "um"}.get(u, u)


def _positive(um: float | None, source: str) -> PixelSize | None:
    return PixelSize(um, source) if um is not None and math.isfinite(um) and um > 0 else None


def from_fei(meta: Mapping[str, Any] | None) -> PixelSize | None:
    """FEI/Thermo Fisher SEM/FIB metadata (TIFF tag 34680/34682, parsed by tifffile): ``[Scan] PixelWidth`` in m."""
    if not meta:
        return None
    for section in ("Scan", "EScan", "IScan"):
        sec = meta.get(section)
        if isinstance(sec, Mapping) and "PixelWidth" in sec:
            found = _positive(to_um(sec["PixelWidth"], "m"), f"fei_metadata {section}.PixelWidth")
            if found:
                return found
    return None


def from_zeiss(meta: Mapping[str, Any] | None) -> PixelSize | None:
    """Zeiss SEM metadata (TIFF tag 34118, parsed by tifffile): ``ap_pixel_size`` = ('Pixel Size', value, unit)."""
    if not meta:
        return None
    for key, entry in meta.items():
        if not isinstance(entry, tuple) or len(entry) < 3:
            continue
        label = str(entry[0]).strip().lower()
        if key == "ap_pixel_size" or label in {"pixel size", "image pixel size"}:
            found = _positive(to_um(entry[1], str(entry[2])), f"sem_metadata {key} ({entry[0]})")
            if found:
                return found
    return None


def from_description(text: str | None) -> PixelSize | None:
    """An ImageDescription holding JSON ``{"pixel_size_um": 0.25}`` or ``pixel_size_um=0.25`` lines (also ``_nm``)."""
    if not text:
        return None
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
    for key, unit in DESCRIPTION_KEYS.items():
        if key in items:
            found = _positive(to_um(items[key], unit), f"description {key}")
            if found:
                return found
    return None


def from_imagej(xres: float | None, unit: str | None) -> PixelSize | None:
    """ImageJ/Fiji TIFF: XResolution counts pixels per ``unit`` named in the ImageJ description (e.g. 'micron')."""
    if not xres or not unit:
        return None
    um_per_unit = to_um(1.0, unit)
    if um_per_unit is None or xres <= 0:
        return None
    return _positive(um_per_unit / xres, f"imagej XResolution ({xres:g} px per {unit})")


def from_ome(xml: str | None) -> PixelSize | None:
    """OME-TIFF: ``PhysicalSizeX`` with ``PhysicalSizeXUnit`` (OME's default unit is µm)."""
    if not xml:
        return None
    m = re.search(r'PhysicalSizeX="([^"]+)"', xml)
    if not m:
        return None
    u = re.search(r'PhysicalSizeXUnit="([^"]+)"', xml)
    return _positive(to_um(m.group(1), u.group(1) if u else "um"), "ome PhysicalSizeX")


def from_resolution(xres: float | None, unit: str | None) -> PixelSize | None:
    """TIFF XResolution (pixels per ``unit``: 'inch', 'cm', 'mm', 'um'); None for no unit or a default dpi."""
    if not xres or not unit or xres <= 0:
        return None
    um_per_unit = to_um(1.0, unit)
    if um_per_unit is None:
        return None
    dpi = xres * 25400.0 / um_per_unit
    if any(abs(dpi - d) < 1e-3 * d for d in DEFAULT_DPI):
        return None
    return _positive(um_per_unit / xres, f"resolution tag ({xres:g} px per {unit})")
