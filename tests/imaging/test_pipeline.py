from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile
from pydantic import ValidationError

import imaging
from imaging.base import ImageAnalyzer, ImageInput, ImageReadError, ImagingError
from imaging.pipeline import ClassicalOptions, ClassicalPipeline
from imaging.quantify import FEATURE_UNITS, Estimate, pool
from tests.imaging.conftest import measure, write_tiff
from tests.imaging.synth import Micrograph, make_micrograph

EXPECTED_UNITS = {
    "porosity": "fraction",
    "second_phase_fraction": "fraction",
    "grain_size_um": "um",
    "grain_size_ecd_um": "um",
    "astm_grain_number": "",
    "grain_size_planimetric_um": "um",
    "astm_grain_number_planimetric": "",
    "grain_size_d10_um": "um",
    "grain_size_d50_um": "um",
    "grain_size_d90_um": "um",
    "pore_count": "count",
    "pore_size_um": "um",
    "pore_size_d90_um": "um",
    "crack_count": "count",
    "crack_length_um": "um",
    "crack_density_per_mm": "1/mm",
    "focus_quality": "a.u.",
}


def test_feature_names_and_units_are_the_agreed_ones() -> None:
    assert FEATURE_UNITS == EXPECTED_UNITS
    assert ClassicalPipeline().outputs() == EXPECTED_UNITS


def test_analyze_reads_files_and_pools_the_images_of_a_sample(
    tmp_path: Path, pipeline: ClassicalPipeline, sharp: Micrograph
) -> None:
    other = make_micrograph(seed=11, noise=0.03, size=384, n_grains=70)
    files = [write_tiff(tmp_path / "a.tif", sharp), write_tiff(tmp_path / "b.tif", other)]
    features = pipeline.analyze([ImageInput(f) for f in files])
    assert [f.name for f in features] == list(EXPECTED_UNITS)
    assert all(f.unit == EXPECTED_UNITS[f.name] and f.method for f in features)
    assert all(math.isfinite(f.value) and math.isfinite(f.sigma) and f.sigma >= 0 for f in features)
    by_name = {f.name: f for f in features}
    single = [measure(pipeline, m) for m in (sharp, other)]
    for name in ("porosity", "grain_size_um", "crack_count"):
        expected = pool([s[name] for s in single])
        assert by_name[name].value == pytest.approx(expected.value, rel=1e-3)  # 16-bit file vs float image
    truth = 0.5 * (sharp.porosity + (other.pores.mean()))
    assert by_name["porosity"].value == pytest.approx(truth, abs=0.01)
    g = by_name["grain_size_um"].value
    assert by_name["astm_grain_number"].value == pytest.approx(-6.6457 * math.log10(g / 1000) - 3.298)


def test_pixel_size_from_instrument_then_option(tmp_path: Path, pipeline: ClassicalPipeline) -> None:
    m = make_micrograph(seed=1, size=256, n_grains=30, n_cracks=0)
    path = tmp_path / "bare.tif"
    tifffile.imwrite(path, (m.image * 255).astype(np.uint8))
    with pytest.raises(ImageReadError, match="no pixel size"):
        pipeline.analyze([ImageInput(path)])
    grain = {f.name: f for f in pipeline.analyze([ImageInput(path, pixel_size_um=0.1)])}["grain_size_um"]
    override = ClassicalPipeline(pixel_size_um=0.3).analyze([ImageInput(path, pixel_size_um=0.1)])
    assert {f.name: f for f in override}["grain_size_um"].value == pytest.approx(3 * grain.value)


def test_unusable_frames_are_skipped_or_fail_the_sample(tmp_path: Path, pipeline: ClassicalPipeline) -> None:
    good = write_tiff(tmp_path / "good.tif", make_micrograph(seed=2, size=256, n_grains=30))
    blank = tmp_path / "blank.tif"
    tifffile.imwrite(blank, np.full((256, 256), 900, np.uint16), metadata={"pixel_size_um": 0.1})
    assert len(pipeline.analyze([ImageInput(good), ImageInput(blank)])) == len(EXPECTED_UNITS)
    with pytest.raises(ImagingError, match=r"blank\.tif: frame is blank"):
        ClassicalPipeline(skip_unusable=False).analyze([ImageInput(good), ImageInput(blank)])
    with pytest.raises(ImagingError, match="no usable frame"):
        pipeline.analyze([ImageInput(blank)])
    with pytest.raises(ImagingError, match="no images"):
        pipeline.analyze([])


def test_unreadable_file_raises_image_read_error(tmp_path: Path, pipeline: ClassicalPipeline) -> None:
    (tmp_path / "broken.tif").write_bytes(b"MM\x00*" + bytes(64))
    with pytest.raises(ImageReadError, match=r"broken\.tif"):
        pipeline.analyze([ImageInput(tmp_path / "broken.tif")])


def test_data_bar_option_crops_before_analysis(tmp_path: Path, pipeline: ClassicalPipeline) -> None:
    m = make_micrograph(seed=3, size=256, n_grains=30, n_cracks=0)
    img = (m.image * 255).astype(np.uint8)
    img[-24:] = 0  # a black data bar, which would read as 9 % porosity
    img[-16:-8, 20:120] = 255
    path = tmp_path / "sem.tif"
    tifffile.imwrite(path, img, metadata={"pixel_size_um": 0.1})
    with_bar = {f.name: f.value for f in pipeline.analyze([ImageInput(path)])}
    cropped = {f.name: f.value for f in ClassicalPipeline(auto_crop=True).analyze([ImageInput(path)])}
    assert cropped["porosity"] == pytest.approx(m.pores[:-24].mean(), abs=0.01)
    assert with_bar["porosity"] > cropped["porosity"] + 0.05


def test_pool_is_a_random_effects_mean() -> None:
    assert pool([Estimate(2.0, 0.5)]) == Estimate(2.0, 0.5)
    same = pool([Estimate(1.0, 0.4)] * 4)
    assert same.value == 1.0 and same.sigma == pytest.approx(0.2)  # σ/√n when images agree
    spread = pool([Estimate(0.0, 0.01), Estimate(1.0, 0.01)])
    assert spread.sigma == pytest.approx(np.std([0.0, 1.0], ddof=1) / np.sqrt(2))  # between-image spread wins
    with pytest.raises(ValueError):
        pool([])


def test_options_are_frozen_validated_and_versioned() -> None:
    with pytest.raises(ValidationError, match="subfield"):
        ClassicalPipeline(subfield=3)
    with pytest.raises(ValidationError):
        ClassicalOptions(min_pore_area_um2=-1)
    with pytest.raises(ValidationError):
        ClassicalOptions(boundary_method="canny")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ClassicalOptions(ridge_sigmas_px=(0.0,))
    opts = ClassicalOptions()
    with pytest.raises(ValidationError):
        opts.subfields = 4  # type: ignore[misc]
    assert ClassicalOptions.model_validate(ClassicalOptions(subfields=4).model_dump()) == ClassicalOptions(subfields=4)
    default, tuned = ClassicalPipeline(), ClassicalPipeline(subfields=4)
    assert default.version == ClassicalPipeline.algorithm_version
    assert tuned.version.startswith(default.version + "+") and tuned.version != ClassicalPipeline(subfields=5).version
    assert isinstance(default, ImageAnalyzer) and default.name == "classical"


def test_imaging_never_imports_the_other_packages() -> None:
    forbidden = {"agent", "surrogate", "instruments"}
    for source in Path(imaging.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not {n.split(".")[0] for n in names} & forbidden, f"{source.name} imports {names}"
