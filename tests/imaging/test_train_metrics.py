from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from imaging.train.metrics import (
    SegmentationMetrics,
    binary_iou,
    boundary,
    boundary_f1,
    confusion_matrix,
    dice_from_confusion,
    iou_from_confusion,
    nanmean,
)

PRED = np.array([[0, 0], [1, 1]])
TRUE = np.array([[0, 1], [1, 1]])


def test_hand_computed_iou_and_dice() -> None:
    cm = confusion_matrix(PRED, TRUE, 3)
    assert cm.tolist() == [[1, 0, 0], [1, 2, 0], [0, 0, 0]]
    iou, dice = iou_from_confusion(cm), dice_from_confusion(cm)
    # class 0: TP 1, FP 1, FN 0; class 1: TP 2, FP 0, FN 1; class 2: absent from both
    assert iou[:2] == pytest.approx([1 / 2, 2 / 3])
    assert dice[:2] == pytest.approx([2 / 3, 4 / 5])
    assert math.isnan(iou[2]) and math.isnan(dice[2])
    assert nanmean(iou) == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_accumulator_pools_pixels_and_names_classes() -> None:
    acc = SegmentationMetrics(["a", "b", "c"], tolerance_px=1)
    acc.update(PRED, TRUE)
    acc.update(TRUE, TRUE)
    m = acc.compute()
    # pooled: class 0 TP 2 FP 1 FN 0; class 1 TP 5 FP 0 FN 1
    assert m["per_class"]["a"]["iou"] == pytest.approx(2 / 3)
    assert m["per_class"]["b"]["iou"] == pytest.approx(5 / 6)
    assert m["per_class"]["c"] == {"iou": None, "dice": None, "boundary_f1": None}
    assert m["miou"] == pytest.approx((2 / 3 + 5 / 6) / 2)
    assert m["pixel_accuracy"] == pytest.approx(7 / 8)
    with pytest.raises(ValueError, match="shape"):
        acc.update(PRED, TRUE[:1])


def test_ignored_target_values() -> None:
    cm = confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 255]), 2)
    assert cm.sum() == 2


def square(size: int, y: int, x: int, side: int) -> np.ndarray:
    m = np.zeros((size, size), bool)
    m[y : y + side, x : x + side] = True
    return m


def test_boundary_is_the_inner_ring_not_the_image_border() -> None:
    b = boundary(square(10, 2, 2, 5))
    assert b.sum() == 16  # 5×5 square: 25 − 9 interior
    assert boundary(np.ones((6, 6), bool)).sum() == 0


def test_boundary_f1_hand_cases() -> None:
    a, shifted = square(20, 5, 5, 8), square(20, 5, 6, 8)
    assert boundary_f1(a, a, 0) == 1.0
    assert boundary_f1(a, shifted, 1) == 1.0  # every boundary pixel within 1 px of the other's
    # tolerance 0: the shared top/bottom rows match except one end pixel each; left/right columns do not
    # a: 28 boundary px; matched = 2 rows × 7 px = 14 each way → P = R = 0.5
    assert boundary_f1(a, shifted, 0) == pytest.approx(0.5)
    assert boundary_f1(a, np.zeros_like(a), 2) == 0.0
    assert math.isnan(boundary_f1(np.zeros_like(a), np.zeros_like(a), 2))


masks = arrays(np.bool_, st.tuples(st.integers(1, 12), st.integers(1, 12)))


@settings(max_examples=100, deadline=None)
@given(masks)
def test_iou_of_mask_with_itself_is_one_and_with_complement_zero(m: np.ndarray) -> None:
    assert binary_iou(m, m) == 1.0
    assert binary_iou(m, ~m) == 0.0


@settings(max_examples=50, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(2, 10), st.integers(2, 10)), elements=st.integers(0, 3)))
def test_label_map_against_itself(labels: np.ndarray) -> None:
    acc = SegmentationMetrics(["a", "b", "c", "d"])
    acc.update(labels, labels)
    m = acc.compute()
    assert m["miou"] == 1.0 and m["mdice"] == 1.0 and m["pixel_accuracy"] == 1.0
    present = set(np.unique(labels).tolist())
    for i, name in enumerate("abcd"):
        assert (m["per_class"][name]["iou"] is None) == (i not in present)
