from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib._pylab_helpers import Gcf
from numpy.typing import NDArray
from skimage.io import imread

from imaging.base import Feature
from imaging.classical import Segmentation
from imaging.io import LoadedImage
from imaging.overlay import (
    CLASSES,
    display_labels,
    display_step,
    feature_lines,
    label_map_from_segmentation,
    layout,
    render_overlay,
)
from imaging.pipeline import ClassicalPipeline
from tests.imaging.synth import Micrograph, make_micrograph

FEATURES = [
    Feature("porosity", 0.012, 0.002, "fraction", "test"),
    Feature("grain_size_um", 3.25, 0.4, "um", "test"),
    Feature("astm_grain_number", 11.5, 0.25, "", "test"),
]


@pytest.fixture(scope="module")
def small() -> tuple[Micrograph, Segmentation]:
    m = make_micrograph(size=320, n_grains=80, seed=3)
    seg = ClassicalPipeline().segment(LoadedImage(m.image, m.pixel_size_um, "caller", {}))
    return m, seg


def _rgb(path: Path) -> NDArray[np.float64]:
    img = imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    return img[..., :3].astype(np.float64) / 255.0


def test_feature_lines_show_value_sigma_and_unit() -> None:
    assert feature_lines(FEATURES) == [
        "porosity = 0.012 ± 0.002",
        "grain_size_um = 3.25 ± 0.4 µm",
        "astm_grain_number = 11.5 ± 0.25",
    ]
    assert feature_lines([Feature("x", 1.0, float("nan"), "1/mm", "m")]) == ["x = 1 1/mm"]


def test_label_map_precedence_on_a_hand_made_segmentation(small: tuple[Micrograph, Segmentation]) -> None:
    _, seg = small
    shape = (4, 5)
    second = np.zeros(shape, bool)
    boundaries = np.zeros(shape, bool)
    pores = np.zeros(shape, bool)
    cracks = np.zeros(shape, np.int32)
    second[:, 1:] = True  # columns 1.. second phase
    boundaries[:, 2:] = True  # columns 2.. also boundary
    pores[:, 3:] = True  # columns 3.. also pore
    cracks[:2, 4] = 1  # top of column 4 also crack
    hand = Segmentation(
        **{**seg.__dict__, "second": second, "boundaries": boundaries, "pores": pores, "cracks": cracks}
    )
    names = np.array(CLASSES)[label_map_from_segmentation(hand)]
    assert names[0].tolist() == ["matrix", "second_phase", "boundary", "pore", "crack"]
    assert names[3].tolist() == ["matrix", "second_phase", "boundary", "pore", "pore"]
    assert label_map_from_segmentation(hand).dtype == np.uint8


def test_overlay_is_drawn_with_text_scale_bar_and_uncertainty_panel(
    tmp_path: Path, small: tuple[Micrograph, Segmentation]
) -> None:
    m, seg = small
    labels = label_map_from_segmentation(seg)
    pore = labels == CLASSES.index("pore")
    assert pore.sum() > 50
    figures = Gcf.get_num_fig_managers()
    out = render_overlay(
        m.image, labels, CLASSES, FEATURES, tmp_path / "o.png", title="sample 1", pixel_size_um=m.pixel_size_um
    )
    assert out == tmp_path / "o.png" and out.exists()
    assert Gcf.get_num_fig_managers() == figures  # the figure was never registered with pyplot
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]  # no temporary file left
    rgb = _rgb(out)
    lay = layout(labels.shape, len(FEATURES), len(CLASSES) - 1, title=True, uncertainty=False)
    assert rgb.shape[:2] == lay.size
    top, left, h, w = lay.image
    panel = rgb[top : top + h, left : left + w]
    grey = np.repeat(np.clip(m.image, 0, 1)[..., None], 3, axis=2)
    # pores are coloured (the input is grey there); most matrix pixels are drawn as the grey input
    assert np.abs(panel[pore] - grey[pore]).max(axis=1).mean() > 0.15
    matrix = labels == 0
    assert np.median(np.abs(panel[matrix] - grey[matrix]).max(axis=1)) < 0.02

    unc = render_overlay(  # the second panel widens the picture
        m.image, labels, CLASSES, FEATURES, tmp_path / "u.png", uncertainty=np.abs(m.image - 0.5).astype(np.float32)
    )
    assert _rgb(unc).shape[1] > rgb.shape[1] and _rgb(unc).shape[1] >= 2 * w


def test_long_images_are_shown_subsampled(tmp_path: Path) -> None:
    assert display_step((3000, 200)) == 3 and display_step((1024, 1024)) == 1
    pixels = np.tile(np.linspace(0, 1, 2100, dtype=np.float32), (40, 1))
    labels = np.zeros(pixels.shape, np.uint8)
    labels[:, ::2] = 2
    out = render_overlay(pixels, labels, CLASSES, [], tmp_path / "long.png", pixel_size_um=0.01)
    assert _rgb(out).shape[1] <= 1024 + 100

    labels = np.zeros((9, 9), np.uint8)
    labels[:, 4] = CLASSES.index("boundary")  # a 1-px line that plain subsampling by 3 would drop
    labels[0, 0] = labels[0, 1] = CLASSES.index("pore")
    shown = display_labels(labels, CLASSES, 3)
    assert shown.shape == (3, 3)
    assert (shown[:, 1] == CLASSES.index("boundary")).all()
    assert shown[0, 0] == CLASSES.index("pore") and shown[1, 0] == 0


def test_mismatched_shapes_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="labels"):
        render_overlay(np.zeros((4, 4)), np.zeros((4, 5), np.uint8), CLASSES, [], tmp_path / "x.png")
    with pytest.raises(ValueError, match="classes"):
        render_overlay(np.zeros((4, 4)), np.full((4, 4), 9, np.uint8), CLASSES, [], tmp_path / "x.png")
