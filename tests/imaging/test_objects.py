"""Defects and grains as objects: exact geometry on a synthetic label map, and the CSV of both pipelines."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from numpy.typing import NDArray

from imaging.base import ImageInput, ObjectReporter
from imaging.neural import NeuralPipeline, bundled_checkpoint, labels_to_segmentation
from imaging.objects import COLUMNS, Frame, MicroObject, frame_objects, write_objects_csv
from imaging.pipeline import ClassicalPipeline
from tests.imaging.synth import make_micrograph

CLASSES = ("matrix", "second_phase", "pore", "boundary", "crack")
PX = 0.2
PORES = ((72, 96, 6.0), (120, 168, 8.0))  # row, column, radius (px), inside grains
INCLUSIONS = ((24, 48, 3.0), (48, 144, 3.0), (168, 24, 2.5))


def paint_disc(lab: NDArray[np.uint8], r: int, c: int, radius: float, cls: str) -> None:
    rr, cc = np.indices(lab.shape)
    lab[(rr - r) ** 2 + (cc - c) ** 2 <= radius * radius] = CLASSES.index(cls)


def synthetic_frame() -> Frame:
    """Square grains of 24 px (boundaries at 12 + 24k), two pores, three small particles, one large second-phase
    block and a straight horizontal crack 3 px wide from column 30 to 130 (100 px between its ends)."""
    lab = np.zeros((240, 240), dtype=np.uint8)
    lines = np.arange(12, 240, 24)
    lab[lines, :] = CLASSES.index("boundary")
    lab[:, lines] = CLASSES.index("boundary")
    for r, c, rad in PORES:
        paint_disc(lab, r, c, rad, "pore")
    for r, c, rad in INCLUSIONS:
        paint_disc(lab, r, c, rad, "second_phase")
    lab[180:228, 180:228] = CLASSES.index("second_phase")  # 48×48 px: larger than a grain, no inclusion
    lab[209:212, 30:131] = CLASSES.index("crack")
    seg = labels_to_segmentation(lab, np.zeros(lab.shape, np.float32), CLASSES)
    return Frame("synthetic.tif", seg, PX, 9.0)


@pytest.fixture(scope="module")
def objects() -> list[MicroObject]:
    return frame_objects(synthetic_frame(), 3)


def of_kind(objects: list[MicroObject], kind: str) -> list[MicroObject]:
    return [o for o in objects if o.kind == kind]


def test_straight_crack_length(objects: list[MicroObject]) -> None:
    [crack] = of_kind(objects, "crack")
    assert abs(crack.length_um - 100 * PX) <= 3 * PX
    assert crack.area_um2 == pytest.approx(3 * 101 * PX * PX)
    assert crack.x_um == pytest.approx(80.5 * PX) and crack.y_um == pytest.approx(210.5 * PX)


def test_pores_position_size_and_axis(objects: list[MicroObject]) -> None:
    pores = sorted(of_kind(objects, "pore"), key=lambda o: o.y_um)
    assert len(pores) == len(PORES)
    for obj, (r, c, rad) in zip(pores, PORES, strict=True):
        assert obj.x_um == pytest.approx((c + 0.5) * PX) and obj.y_um == pytest.approx((r + 0.5) * PX)
        assert abs(obj.ecd_um - 2 * rad * PX) < PX and abs(obj.length_um - 2 * rad * PX) < PX
        assert obj.frame == 3 and obj.file == "synthetic.tif" and obj.edge == 0


def test_inclusions_are_the_particles_much_smaller_than_a_grain(objects: list[MicroObject]) -> None:
    found = sorted((round(o.y_um / PX - 0.5), round(o.x_um / PX - 0.5)) for o in of_kind(objects, "inclusion"))
    assert found == sorted((r, c) for r, c, _ in INCLUSIONS)


def test_grains_off_the_border(objects: list[MicroObject]) -> None:
    grains = of_kind(objects, "grain")
    # 9×9 whole grains, less those the big block, the crack and the pores cut up or shrink below nothing
    assert 50 <= len(grains) <= 81 and all(o.edge == 0 for o in grains)
    typical = np.median([o.ecd_um for o in grains])
    assert typical == pytest.approx(2 * 24 / math.sqrt(math.pi) * PX, rel=0.05)


def test_csv_round_trip(tmp_path: Path) -> None:
    frame = synthetic_frame()
    path = write_objects_csv([frame, frame], tmp_path / "sub" / "o.csv")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == COLUMNS
    assert {r["frame"] for r in rows} == {"0", "1"}
    assert {r["kind"] for r in rows} == {"crack", "pore", "inclusion", "grain"}
    assert len(rows) == 2 * len(frame_objects(frame, 0))


def _kinds(path: Path) -> dict[str, int]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out: dict[str, int] = {}
    for r in rows:
        out[r["kind"]] = out.get(r["kind"], 0) + 1
    return out


def _tiff(path: Path, seed: int) -> ImageInput:
    m = make_micrograph(size=192, n_grains=30, porosity=0.05, n_cracks=1, pixel_size_um=0.1, seed=seed)
    tifffile.imwrite(path, (m.image * 65535).round().astype(np.uint16), metadata={"pixel_size_um": 0.1})
    return ImageInput(path)


def test_classical_pipeline_writes_objects(tmp_path: Path) -> None:
    analyzer = ClassicalPipeline()
    assert isinstance(analyzer, ObjectReporter)
    feats = {f.name: f for f in analyzer.analyze([_tiff(tmp_path / "a.tif", 1)])}
    [path] = analyzer.write_objects(tmp_path / "out")
    kinds = _kinds(path)
    assert kinds.get("grain", 0) > 5 and kinds.get("pore", 0) == feats["pore_count"].value


def test_neural_pipeline_writes_objects_for_each_frame(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    analyzer = NeuralPipeline(checkpoint=bundled_checkpoint(), device="cpu")
    assert isinstance(analyzer, ObjectReporter)
    feats = {f.name: f for f in analyzer.analyze([_tiff(tmp_path / "a.tif", 1), _tiff(tmp_path / "b.tif", 2)])}
    [path] = analyzer.write_objects(tmp_path / "out")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["frame"] for r in rows} == {"0", "1"} and {r["file"] for r in rows} == {"a.tif", "b.tif"}
    pores = sum(r["kind"] == "pore" for r in rows)
    assert pores == pytest.approx(2 * feats["pore_count"].value)  # the mean count of two frames
    assert sum(r["kind"] == "grain" for r in rows) > 0
