from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, PngImagePlugin

from imaging.base import ImageInput, ImageReadError
from imaging.io import LoadedImage, load_image, load_pages, read_input

RNG = np.random.default_rng(0)
GREY8 = RNG.integers(0, 256, (40, 50), dtype=np.uint8)
GREY16 = RNG.integers(0, 65536, (40, 50), dtype=np.uint16)
DESC = '{"pixel_size_um": 0.5}'


def one(path: Path, **kwargs: object) -> LoadedImage:
    loaded = load_image(path, **kwargs)  # type: ignore[arg-type]
    assert isinstance(loaded, LoadedImage)
    return loaded


def png_with_text(path: Path, array: np.ndarray, text: str = DESC) -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_text("Description", text)
    Image.fromarray(array).save(path, pnginfo=info)
    return path


# --- pixels ---------------------------------------------------------------------------------------------------------


def test_png_8_bit_grey_is_scaled_to_unit_float(tmp_path: Path) -> None:
    img = one(png_with_text(tmp_path / "a.png", GREY8))
    assert img.pixels.dtype == np.float32 and img.pixels.shape == (40, 50)
    np.testing.assert_allclose(img.pixels, GREY8 / 255.0, atol=1e-6)
    assert img.pixel_size_um == 0.5 and img.source == "description pixel_size_um"


def test_png_16_bit_grey_keeps_its_precision(tmp_path: Path) -> None:
    img = one(png_with_text(tmp_path / "a.png", GREY16))
    np.testing.assert_allclose(img.pixels, GREY16 / 65535.0, atol=1e-6)


def test_png_rgb_becomes_rec709_luminance(tmp_path: Path) -> None:
    rgb = np.zeros((10, 12, 3), dtype=np.uint8)
    rgb[..., 0] = 255  # pure red
    img = one(png_with_text(tmp_path / "rgb.png", rgb))
    np.testing.assert_allclose(img.pixels, 0.2126, atol=1e-4)
    assert img.metadata["color"] == "rgb"


@pytest.mark.parametrize("array", [GREY8, GREY16], ids=["8bit", "16bit"])
def test_tiff_grey(tmp_path: Path, array: np.ndarray) -> None:
    tifffile.imwrite(tmp_path / "a.tif", array, metadata={"pixel_size_um": 0.5})
    img = one(tmp_path / "a.tif")
    np.testing.assert_allclose(img.pixels, array / float(np.iinfo(array.dtype).max), atol=1e-6)
    assert img.metadata["format"] == "tiff"


def test_tiff_16_bit_rgb(tmp_path: Path) -> None:
    rgb = np.zeros((8, 9, 3), dtype=np.uint16)
    rgb[..., 1] = 65535  # pure green
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb", metadata={"pixel_size_um": 0.5})
    np.testing.assert_allclose(one(tmp_path / "rgb.tif").pixels, 0.7152, atol=1e-4)


def test_tiff_min_is_white_is_inverted(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "w.tif", GREY8, photometric="miniswhite", metadata={"pixel_size_um": 0.5})
    np.testing.assert_allclose(one(tmp_path / "w.tif").pixels, 1.0 - GREY8 / 255.0, atol=1e-6)


def test_tiff_float_outside_unit_range_is_stretched(tmp_path: Path) -> None:
    data = np.linspace(-3.0, 5.0, 40 * 50).reshape(40, 50).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", data, metadata={"pixel_size_um": 0.5})
    img = one(tmp_path / "f.tif")
    assert img.pixels.min() == 0.0 and img.pixels.max() == 1.0
    assert "stretched" in img.metadata["note"]


def test_lzw_tiff_is_read_without_imagecodecs(tmp_path: Path) -> None:
    Image.fromarray(GREY8).save(tmp_path / "lzw.tif", compression="tiff_lzw", tiffinfo={270: DESC})
    img = one(tmp_path / "lzw.tif")
    np.testing.assert_allclose(img.pixels, GREY8 / 255.0, atol=1e-6)
    assert img.pixel_size_um == 0.5


def test_multipage_tiff_gives_every_page_or_the_one_asked_for(tmp_path: Path) -> None:
    with tifffile.TiffWriter(tmp_path / "stack.tif") as tw:
        for i in range(3):
            tw.write(np.full((16, 16), 10 * (i + 1), dtype=np.uint8), metadata={"pixel_size_um": 0.5})
    pages = load_pages(tmp_path / "stack.tif")
    assert [round(float(p.pixels[0, 0]) * 255) for p in pages] == [10, 20, 30]
    assert [p.metadata["page"] for p in pages] == [0, 1, 2]
    assert round(float(one(tmp_path / "stack.tif", page=1).pixels[0, 0]) * 255) == 20
    assert len(load_image(tmp_path / "stack.tif", page="all")) == 3  # type: ignore[arg-type]
    with pytest.raises(ImageReadError, match="page 5 does not exist"):
        load_image(tmp_path / "stack.tif", page=5)


def test_contiguous_3d_tiff_is_split_into_pages(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "vol.tif", np.stack([GREY8, 255 - GREY8]), metadata={"pixel_size_um": 0.5})
    pages = load_pages(tmp_path / "vol.tif")
    assert len(pages) == 2
    np.testing.assert_allclose(pages[1].pixels, 1 - GREY8 / 255.0, atol=1e-6)


# --- pixel size -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resolution", "unit", "expected_um"),
    [((25400 / 0.5, 25400 / 0.5), "INCH", 0.5), ((1e4 / 0.25, 1e4 / 0.25), "CENTIMETER", 0.25)],
)
def test_resolution_tags_in_inch_and_cm(
    tmp_path: Path, resolution: tuple[float, float], unit: str, expected_um: float
) -> None:
    tifffile.imwrite(tmp_path / "r.tif", GREY8, resolution=resolution, resolutionunit=unit, description="x")
    img = one(tmp_path / "r.tif")
    assert img.pixel_size_um == pytest.approx(expected_um, rel=1e-6)
    assert img.source.startswith("resolution tag")


@pytest.mark.parametrize(("resolution", "unit"), [((72, 72), "INCH"), ((96, 96), "INCH"), ((1, 1), "NONE")])
def test_default_dpi_and_no_unit_are_not_a_pixel_size(
    tmp_path: Path, resolution: tuple[float, float], unit: str
) -> None:
    tifffile.imwrite(tmp_path / "d.tif", GREY8, resolution=resolution, resolutionunit=unit, description="x")
    with pytest.raises(ImageReadError, match=r"d\.tif: no pixel size found.*pixel_size_um"):
        load_image(tmp_path / "d.tif")


def test_fei_metadata_pixel_width_in_metres(tmp_path: Path) -> None:
    ini = "[User]\nDate=01/02/2024\n[Scan]\nPixelWidth=2.5e-08\nPixelHeight=2.5e-08\n[Beam]\nHV=5000\n"
    tifffile.imwrite(tmp_path / "fei.tif", GREY8, extratags=[(34682, "s", 0, ini, True)])
    img = one(tmp_path / "fei.tif")
    assert img.pixel_size_um == pytest.approx(0.025)
    assert img.source == "fei_metadata Scan.PixelWidth"
    assert img.metadata["vendor"]["fei"]["Scan"]["PixelWidth"] == pytest.approx(2.5e-8)


def test_zeiss_sem_metadata_pixel_size_with_unit(tmp_path: Path) -> None:
    text = "AP_PIXEL_SIZE\nPixel Size = 12.5 nm\nAP_WD\nWorking distance = 5.1 mm\n"
    tifffile.imwrite(tmp_path / "zeiss.tif", GREY8, extratags=[(34118, "s", 0, text, True)])
    img = one(tmp_path / "zeiss.tif")
    assert img.pixel_size_um == pytest.approx(0.0125)
    assert "ap_pixel_size" in img.source


@pytest.mark.parametrize(
    ("description", "expected"),
    [('{"pixel_size_um": 0.75}', 0.75), ("pixel_size_um=0.3\nmag=5000", 0.3), ('{"pixel_size_nm": 40}', 0.04)],
)
def test_description_json_or_key_value(tmp_path: Path, description: str, expected: float) -> None:
    tifffile.imwrite(tmp_path / "d.tif", GREY8, description=description, metadata=None)
    assert one(tmp_path / "d.tif").pixel_size_um == pytest.approx(expected)


def test_imagej_calibration(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "ij.tif", GREY8, imagej=True, resolution=(1 / 0.2, 1 / 0.2), metadata={"unit": "um"})
    img = one(tmp_path / "ij.tif")
    assert img.pixel_size_um == pytest.approx(0.2) and img.source.startswith("imagej")


def test_ome_physical_size(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "o.ome.tif", GREY8, metadata={"PhysicalSizeX": 0.3, "PhysicalSizeXUnit": "nm"})
    assert one(tmp_path / "o.ome.tif").pixel_size_um == pytest.approx(3e-4)


def test_png_phys_chunk(tmp_path: Path) -> None:
    Image.fromarray(GREY8).save(tmp_path / "p.png", dpi=(25400 / 0.5, 25400 / 0.5))  # pHYs, pixels per metre
    img = one(tmp_path / "p.png")
    assert img.pixel_size_um == pytest.approx(0.5, rel=1e-5) and "pHYs" in img.source


def test_caller_overrides_the_file(tmp_path: Path) -> None:
    ini = "[Scan]\nPixelWidth=2.5e-08\n"
    tifffile.imwrite(tmp_path / "fei.tif", GREY8, extratags=[(34682, "s", 0, ini, True)])
    img = read_input(ImageInput(tmp_path / "fei.tif", pixel_size_um=0.1))
    assert (img.pixel_size_um, img.source) == (0.1, "caller")
    assert img.metadata["pixel_size_candidates_um"]["fei_metadata Scan.PixelWidth"] == pytest.approx(0.025)


def test_png_without_any_scale_says_how_to_give_one(tmp_path: Path) -> None:
    Image.fromarray(GREY8).save(tmp_path / "bare.png")
    with pytest.raises(ImageReadError) as err:
        load_image(tmp_path / "bare.png")
    assert "bare.png" in str(err.value) and "ImageInput.pixel_size_um" in str(err.value)
    assert one(tmp_path / "bare.png", pixel_size_um=0.2).source == "caller"


# --- data bar ---------------------------------------------------------------------------------------------------------


def sem_with_bar(bar: int = 30) -> np.ndarray:
    img = np.clip(RNG.normal(120, 20, (200, 160)), 0, 255).astype(np.uint8)
    img[-bar:] = 0
    img[-bar + 8 : -bar + 16, 10:60] = 255  # text
    img[-6:-3, 100:150] = 255  # scale bar
    return img


def test_crop_bottom_and_auto_detected_data_bar(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "sem.tif", sem_with_bar(30), metadata={"pixel_size_um": 0.5})
    assert one(tmp_path / "sem.tif", crop_bottom_px=10).pixels.shape == (190, 160)
    auto = one(tmp_path / "sem.tif", auto_crop=True)
    assert auto.pixels.shape == (170, 160) and auto.metadata["data_bar_detected_px"] == 30
    assert one(tmp_path / "sem.tif").pixels.shape == (200, 160)  # off by default
    with pytest.raises(ImageReadError, match="crop_bottom_px"):
        load_image(tmp_path / "sem.tif", crop_bottom_px=200)


# --- bad files --------------------------------------------------------------------------------------------------------


def test_missing_empty_and_unsupported_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match=r"nope\.tif: no such file"):
        load_image(tmp_path / "nope.tif")
    (tmp_path / "empty.tif").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.tif: file is empty.*supported: PNG"):
        load_image(tmp_path / "empty.tif")
    (tmp_path / "photo.tif").write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    with pytest.raises(ImageReadError, match=r"photo\.tif: unsupported format: a JPEG file.*TIFF"):
        load_image(tmp_path / "photo.tif")
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ImageReadError, match=r"notes\.png: unsupported format: not a PNG or TIFF"):
        load_image(tmp_path / "notes.png")


@pytest.mark.parametrize("suffix", [".tif", ".png"])
@pytest.mark.parametrize("keep", [0.5, 0.05])
def test_truncated_files_raise_image_read_error(tmp_path: Path, suffix: str, keep: float) -> None:
    whole = tmp_path / f"whole{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(whole, GREY16, metadata={"pixel_size_um": 0.5})
    else:
        png_with_text(whole, GREY16)
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: max(int(len(data) * keep), 12)])
    with pytest.raises(ImageReadError, match=rf"cut\{suffix}: "):
        load_image(cut)


def test_garbage_after_a_tiff_header_raises_image_read_error(tmp_path: Path) -> None:
    (tmp_path / "bad.tif").write_bytes(b"II*\x00" + bytes(RNG.integers(0, 256, 500, dtype=np.uint8)))
    with pytest.raises(ImageReadError, match=r"bad\.tif: corrupt or truncated TIFF"):
        load_image(tmp_path / "bad.tif")
