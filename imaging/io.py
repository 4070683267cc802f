"""Reads PNG and TIFF micrographs into float32 arrays in [0, 1] together with their pixel size in micrometres.

Pixel size is taken, in order of trust, from: the caller; an ImageDescription carrying ``pixel_size_um`` (JSON
or ``key=value``); FEI/Thermo metadata (``[Scan] PixelWidth``, metres); Zeiss SEM metadata (``ap_pixel_size``);
OME-XML ``PhysicalSizeX``; ImageJ resolution with its unit; TIFF/PNG resolution tags in inch/cm (screen and
print defaults such as 72 dpi, and 'no unit', are ignored). ``LoadedImage.source`` names the one used.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from imaging import pixelsize as ps
from imaging.base import ImageInput, ImageReadError
from imaging.databar import detect_data_bar

SUPPORTED = (
    "supported: PNG (8/16-bit grey, grey+alpha, RGB(A), palette) and TIFF (8/16/32-bit integer or float, "
    "grey/RGB/palette, multi-page)"
)
PIXEL_SIZE_HELP = (
    "give it as ImageInput.pixel_size_um or the pipeline option pixel_size_um, or store it in the file: "
    'JSON {"pixel_size_um": 0.05} in a TIFF ImageDescription or PNG text chunk '
    '(tifffile.imwrite(path, a, metadata={"pixel_size_um": 0.05}) writes one), '
    "or resolution tags in pixels per cm (TIFF) / pixels per metre (PNG pHYs)"
)
LUMA = np.array([0.2126, 0.7152, 0.0722])  # Rec. 709 weights: RGB → luminance

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_OTHER_MAGIC = {b"\xff\xd8\xff": "JPEG", b"BM": "BMP", b"GIF8": "GIF", b"%PDF": "PDF", b"RIFF": "RIFF/WebP"}


class _Unsupported(ValueError):
    """A well-formed file in a variant this reader does not handle."""


@dataclass(frozen=True)
class LoadedImage:
    """One micrograph page: ``pixels`` (rows, cols) float32 in [0, 1], pixel size in µm, and where it came from."""

    pixels: NDArray[np.float32]
    pixel_size_um: float
    source: str  # where the pixel size came from, e.g. "caller", "fei_metadata Scan.PixelWidth"
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Page:
    """A decoded page before conversion: raw array, how to read its colour, and pixel-size candidates."""

    data: NDArray[Any]
    color: str  # "grey", "grey_alpha", "rgb", "rgba", "min_is_white", "palette"
    bits: int | None = None
    colormap: NDArray[Any] | None = None
    sizes: list[ps.PixelSize] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def load_pages(
    path: str | Path,
    *,
    pixel_size_um: float | None = None,
    crop_bottom_px: int | None = None,
    auto_crop: bool = False,
) -> list[LoadedImage]:
    """Every full-resolution page of a PNG/TIFF file (thumbnails skipped), each as a ``LoadedImage``.

    ``pixel_size_um`` overrides the file. ``crop_bottom_px`` removes that many rows (the SEM data bar); with
    ``auto_crop`` the bar is detected (see ``imaging.databar``). Raises ``ImageReadError`` naming the file.
    """
    p = Path(path)
    pages = _decode(p)
    return [_finish(p, page, i, len(pages), pixel_size_um, crop_bottom_px, auto_crop) for i, page in enumerate(pages)]


def load_image(
    path: str | Path,
    *,
    pixel_size_um: float | None = None,
    page: int | Literal["all"] = 0,
    crop_bottom_px: int | None = None,
    auto_crop: bool = False,
) -> LoadedImage | list[LoadedImage]:
    """One page (``page=i``) or all pages (``page="all"``) of a micrograph file; see ``load_pages``."""
    if page == "all":
        return load_pages(path, pixel_size_um=pixel_size_um, crop_bottom_px=crop_bottom_px, auto_crop=auto_crop)
    p = Path(path)
    pages = _decode(p)
    if not 0 <= page < len(pages):
        raise ImageReadError(f"{p}: has {len(pages)} page(s); page {page} does not exist")
    return _finish(p, pages[page], page, len(pages), pixel_size_um, crop_bottom_px, auto_crop)


def read_input(image: ImageInput, *, crop_bottom_px: int | None = None, auto_crop: bool = False) -> LoadedImage:
    """The first page of an ``ImageInput``; its ``pixel_size_um`` (from the instrument) overrides the file."""
    loaded = load_image(
        image.path, pixel_size_um=image.pixel_size_um, page=0, crop_bottom_px=crop_bottom_px, auto_crop=auto_crop
    )
    assert isinstance(loaded, LoadedImage)
    return loaded


def to_unit_float(page_data: NDArray[Any], bits: int | None = None) -> tuple[NDArray[np.float64], str | None]:
    """Integer data divided by its full scale (``bits`` when fewer than the dtype holds, e.g. 12-bit in uint16);
    float data kept if already in [0, 1], else stretched min→0, max→1 (returned note says so)."""
    a = np.asarray(page_data)
    if a.dtype == bool:
        return a.astype(np.float64), None
    if np.issubdtype(a.dtype, np.unsignedinteger):
        full = float(2**bits - 1) if bits and bits < a.dtype.itemsize * 8 else float(np.iinfo(a.dtype).max)
        return np.clip(a.astype(np.float64) / full, 0.0, 1.0), None
    if np.issubdtype(a.dtype, np.signedinteger):
        info = np.iinfo(a.dtype)
        return (a.astype(np.float64) - info.min) / (float(info.max) - info.min), None
    if np.issubdtype(a.dtype, np.floating):
        f = a.astype(np.float64)
        finite = f[np.isfinite(f)]
        if finite.size == 0:
            return np.zeros_like(f), "no finite values"
        lo, hi = float(finite.min()), float(finite.max())
        f = np.nan_to_num(f, nan=lo, posinf=hi, neginf=lo)
        if lo >= 0.0 and hi <= 1.0:
            return f, None
        return (f - lo) / (hi - lo) if hi > lo else np.zeros_like(f), f"float data stretched from [{lo:g}, {hi:g}]"
    raise ValueError(f"pixel type {a.dtype} is not supported")


def _luminance(page: _Page) -> tuple[NDArray[np.float64], str | None]:
    data = page.data
    if page.color == "palette" and page.colormap is not None:
        cmap = np.asarray(page.colormap, dtype=np.float64)  # (3, n) TIFF colormap, 16-bit
        rgb = cmap[:, data.astype(np.intp)].transpose(1, 2, 0) / 65535.0
        return rgb @ LUMA, None
    if page.color in ("rgb", "rgba"):
        values, note = to_unit_float(data[..., :3], page.bits)
        return values @ LUMA, note
    if page.color == "grey_alpha":
        data = data[..., 0]
    values, note = to_unit_float(data, page.bits)
    if page.color == "min_is_white":
        values = 1.0 - values
    return values, note


def _finish(
    path: Path,
    page: _Page,
    index: int,
    n_pages: int,
    pixel_size_um: float | None,
    crop_bottom_px: int | None,
    auto_crop: bool,
) -> LoadedImage:
    try:
        values, note = _luminance(page)
    except (ValueError, IndexError) as exc:
        raise ImageReadError(f"{path}: page {index}: cannot convert pixels ({exc}); {SUPPORTED}") from exc
    if values.ndim != 2 or min(values.shape) < 2:
        raise ImageReadError(f"{path}: page {index} has shape {page.data.shape}, not a 2-D image; {SUPPORTED}")
    pixels = values.astype(np.float32)
    meta: dict[str, Any] = {
        "file": str(path),
        "page": index,
        "n_pages": n_pages,
        "dtype": str(page.data.dtype),
        "color": page.color,
        "shape": list(pixels.shape),
        **page.info,
    }
    if page.bits:
        meta["bits"] = page.bits
    if note:
        meta["note"] = note
    if page.sizes:
        meta["pixel_size_candidates_um"] = {s.source: s.um for s in page.sizes}

    crop = crop_bottom_px or 0
    if crop < 0 or crop >= pixels.shape[0] - 1:
        raise ImageReadError(f"{path}: crop_bottom_px={crop} leaves no image of height {pixels.shape[0]}")
    if not crop and auto_crop:
        crop = detect_data_bar(pixels)
        meta["data_bar_detected_px"] = crop
    if crop:
        pixels = pixels[: pixels.shape[0] - crop]
        meta["crop_bottom_px"] = crop

    if pixel_size_um is not None:
        if not (math.isfinite(pixel_size_um) and pixel_size_um > 0):
            raise ImageReadError(f"{path}: pixel size given by the caller must be positive, got {pixel_size_um}")
        size = ps.PixelSize(float(pixel_size_um), "caller")
    elif page.sizes:
        size = page.sizes[0]
    else:
        raise ImageReadError(
            f"{path}: no pixel size found (looked for an ImageDescription pixel_size_um, FEI/Thermo or Zeiss SEM "
            f"metadata, OME-XML, ImageJ calibration, resolution tags in inch/cm); {PIXEL_SIZE_HELP}"
        )
    return LoadedImage(np.ascontiguousarray(pixels), size.um, size.source, meta)


def _decode(path: Path) -> list[_Page]:
    """Pages of ``path`` decoded by format sniffed from the first bytes (not the suffix)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a directory, not an image file") from None
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot open ({exc})") from exc
    if not head:
        raise ImageReadError(f"{path}: file is empty (0 bytes); {SUPPORTED}")
    reader: Callable[[Path], list[_Page]]
    if head.startswith(_TIFF_MAGIC):
        reader = _read_tiff
    elif head.startswith(_PNG_MAGIC):
        reader = _read_png
    else:
        kind = next((name for magic, name in _OTHER_MAGIC.items() if head.startswith(magic)), None)
        what = f"a {kind} file" if kind else f"not a PNG or TIFF file (starts with {head[:8]!r})"
        raise ImageReadError(f"{path}: unsupported format: {what}; {SUPPORTED}")
    try:
        pages = reader(path)
    except ImageReadError:
        raise
    except _Unsupported as exc:
        raise ImageReadError(f"{path}: {exc}; {SUPPORTED}") from exc
    except Exception as exc:  # decoders raise many types for corrupt data (struct.error, zlib.error, KeyError, ...)
        kind = reader.__name__.removeprefix("_read_").upper()
        raise ImageReadError(f"{path}: corrupt or truncated {kind} ({exc}); {SUPPORTED}") from exc
    if not pages:
        kind = reader.__name__.removeprefix("_read_").upper()
        raise ImageReadError(f"{path}: corrupt or truncated {kind}: no readable image page; {SUPPORTED}")
    return pages


# --- TIFF ---------------------------------------------------------------------------------------------------------


def _read_tiff(path: Path) -> list[_Page]:
    import tifffile

    pages: list[_Page] = []
    with tifffile.TiffFile(path) as tif:
        file_sizes = [
            s
            for s in (
                ps.from_fei(tif.fei_metadata if tif.is_fei else None),
                ps.from_zeiss(tif.sem_metadata if tif.is_sem else None),
                ps.from_ome(tif.ome_metadata if tif.is_ome else None),
            )
            if s is not None
        ]
        vendor = {"fei": tif.fei_metadata} if tif.is_fei else {"zeiss": tif.sem_metadata} if tif.is_sem else {}
        ij_unit = str((tif.imagej_metadata or {}).get("unit", "")) if tif.is_imagej else ""
        pillow_frame = 0
        for series in tif.series:
            key = series.keyframe
            first_frame, pillow_frame = pillow_frame, pillow_frame + len(series.pages)
            if key.is_reduced:  # thumbnails and pyramid levels
                continue
            try:
                data = series.asarray()
            except ValueError as exc:
                if "imagecodecs" not in str(exc):
                    raise
                data = _pillow_frames(path, first_frame, len(series.pages))  # LZW/JPEG without imagecodecs
            color = _tiff_color(key, series.axes)
            planes = _split_planes(np.asarray(data), series.axes)
            description = key.description or ""
            sizes = [
                s
                for s in (
                    ps.from_description(description),
                    *file_sizes,
                    ps.from_imagej(_xres(key), ij_unit) if ij_unit else None,
                    ps.from_resolution(_xres(key), _resunit(key)),
                )
                if s is not None
            ]
            info: dict[str, Any] = {"format": "tiff", "compression": _compression(key)}
            if description and not tif.is_ome:
                info["description"] = description[:2000]
            if vendor:
                info["vendor"] = _jsonable(vendor)
            bits = int(key.bitspersample) if key.bitspersample else None
            colormap = key.colormap if color == "palette" else None
            pages += [_Page(plane, color, bits, colormap, sizes, dict(info)) for plane in planes]
    return pages


def _tiff_color(page: Any, axes: str) -> str:
    photometric = int(page.photometric)
    samples = int(page.samplesperpixel)
    if photometric == 3:
        return "palette"
    if photometric == 0:
        return "min_is_white"
    if photometric in (2, 6) and samples >= 3:
        return "rgba" if samples >= 4 else "rgb"
    if photometric == 5:
        raise _Unsupported("CMYK (separated) TIFF is not supported; save the micrograph as grey or RGB")
    if samples == 2 and "S" in axes:
        return "grey_alpha"
    return "grey"


def _split_planes(data: NDArray[Any], axes: str) -> list[NDArray[Any]]:
    """(…, Y, X[, S]) data as a list of (Y, X[, S]) planes; every non-image axis enumerates pages."""
    axes = axes.upper()
    if "Y" not in axes or "X" not in axes:
        raise ValueError(f"no Y/X axes in series axes {axes!r}")
    image_axes = [axes.index("Y"), axes.index("X")] + ([axes.index("S")] if "S" in axes else [])
    other = [i for i in range(data.ndim) if i not in image_axes]
    arranged = np.transpose(data, other + image_axes)
    flat = arranged.reshape((-1, *arranged.shape[len(other) :]))
    return [flat[i] for i in range(flat.shape[0])]


def _compression(page: Any) -> str:
    code = page.compression
    return str(getattr(code, "name", code)).lower()


def _xres(page: Any) -> float | None:
    tag = page.tags.get("XResolution")
    if tag is None:
        return None
    num, den = tag.value if isinstance(tag.value, tuple) else (tag.value, 1)
    return float(num) / float(den) if den else None


def _resunit(page: Any) -> str | None:
    tag = page.tags.get("ResolutionUnit")
    code = int(tag.value) if tag is not None else 2  # TIFF default: inch
    return {2: "inch", 3: "cm", 4: "mm", 5: "um"}.get(code)


# --- PNG (and TIFF frames Pillow must decode) -----------------------------------------------------------------------


def _read_png(path: Path) -> list[_Page]:
    from PIL import Image

    phys, bit_depth, color_type = _png_header(path)
    with Image.open(path) as im:
        data = _pillow_array(im)
        text = {str(k): v for k, v in (getattr(im, "text", None) or {}).items() if isinstance(v, str)}
    sizes = [s for t in text.values() if (s := ps.from_description(t)) is not None]
    if phys is not None and phys[2] == 1:
        found = ps.from_resolution(float(phys[0]), "m")
        if found:
            sizes.append(ps.PixelSize(found.um, f"png pHYs ({phys[0]} px per m)"))
    color = {0: "grey", 2: "rgb", 3: "rgb", 4: "grey_alpha", 6: "rgba"}.get(color_type, "grey")
    if data.ndim == 2:
        color = "grey"
    info: dict[str, Any] = {"format": "png", "png_bit_depth": bit_depth}
    if bit_depth == 16 and color_type in (2, 6):
        info["note"] = "16-bit colour PNG decoded at 8 bits per channel"
    if text:
        info["text"] = {k: v[:2000] for k, v in text.items()}
    return [_Page(data, color, None, None, sizes, info)]


def _png_header(path: Path) -> tuple[tuple[int, int, int] | None, int, int]:
    """(pHYs (x ppu, y ppu, unit) or None, bit depth, colour type) read from the PNG chunks before the pixels."""
    phys = None
    with path.open("rb") as fh:
        fh.read(8)
        ihdr = fh.read(8 + 13)
        if len(ihdr) < 21 or ihdr[4:8] != b"IHDR":
            raise ImageReadError(f"{path}: corrupt PNG (no IHDR chunk); {SUPPORTED}")
        width, height, bit_depth, color_type = struct.unpack(">IIBB", ihdr[8:18])
        if width == 0 or height == 0:
            raise ImageReadError(f"{path}: PNG declares an empty {width}x{height} image")
        fh.read(4)
        while True:
            head = fh.read(8)
            if len(head) < 8:
                break
            length, kind = struct.unpack(">I4s", head)
            if kind in (b"IDAT", b"IEND"):
                break
            body = fh.read(length)
            fh.read(4)
            if kind == b"pHYs" and len(body) == 9:
                phys = struct.unpack(">IIB", body)
    return phys, bit_depth, color_type


def _pillow_array(im: Any) -> NDArray[Any]:
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    data = np.asarray(im)
    if im.mode == "I" and data.size and data.min() >= 0 and data.max() <= 65535:
        data = data.astype(np.uint16)
    return data


def _pillow_frames(path: Path, start: int, count: int) -> NDArray[Any]:
    from PIL import Image

    frames = []
    with Image.open(path) as im:
        for i in range(start, start + count):
            im.seek(i)
            frames.append(_pillow_array(im))
    return np.stack(frames) if count > 1 else frames[0]


def _jsonable(value: Any) -> Any:
    """Vendor metadata made JSON-safe (tuples → lists, numpy scalars → Python, anything else → str)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)
