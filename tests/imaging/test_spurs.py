"""Spur pruning: the side branches a skeleton grows into blobs go, the boundary network stays."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.morphology import skeletonize

from imaging import neural
from imaging.intercept import intercept_counts
from imaging.neural import labels_to_segmentation
from imaging.spurs import prune_spurs

CLASSES = ("matrix", "second_phase", "pore", "boundary", "crack")


def test_a_spur_into_a_blob_goes_and_the_line_and_a_loop_stay() -> None:
    skel = np.zeros((40, 40), bool)
    skel[20, :] = True  # a boundary across the field
    skel[10:20, 12] = True  # a 10-px spur up from it, inside a blob
    skel[5, 25:35] = skel[15, 25:35] = True  # a closed loop, all of it removable
    skel[5:16, 25] = skel[5:16, 34] = True
    removable = np.zeros_like(skel)
    removable[8:20, 8:17] = True
    removable[0:18, 22:38] = True
    out = prune_spurs(skel, removable)
    assert not out[10:20, 12].any()
    assert out[20, :].all()
    assert np.array_equal(out[0:18, 22:38], skel[0:18, 22:38])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.05, 0.5))
def test_pruning_only_removes_removable_skeleton_pixels_and_is_idempotent(seed: int, density: float) -> None:
    rng = np.random.default_rng(seed)
    skel = skeletonize(rng.random((32, 32)) < density)
    removable = rng.random((32, 32)) < 0.5
    out = prune_spurs(skel, removable)
    assert not (out & ~skel).any()  # never adds
    assert np.array_equal(out[~removable], skel[~removable])  # never touches what is not removable
    assert np.array_equal(prune_spurs(out, removable), out)


def crossings(skeleton: np.ndarray) -> int:
    """Boundary crossings along every row and column (ASTM E112 test lines), a field's edge rows left out."""
    return intercept_counts(skeleton[3:-3], np.ones(skeleton[3:-3].shape, bool))[1]


def test_precipitates_on_a_boundary_add_no_crossings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two grains split by a vertical boundary with blobs of second phase on it, off centre: test lines cross the
    boundary as often as without the blobs (unpruned, the branches the blobs' outlines leave add crossings)."""
    lab = np.zeros((120, 120), np.uint8)
    lab[:, 59:62] = CLASSES.index("boundary")
    plain = labels_to_segmentation(lab, np.zeros(lab.shape, np.float32), CLASSES).boundaries
    rr, cc = np.indices(lab.shape)
    for r, c in ((20, 57), (60, 63), (95, 60)):
        lab[(rr - r) ** 2 + ((cc - c) * 0.6) ** 2 <= 30] = CLASSES.index("second_phase")
    pruned = labels_to_segmentation(lab, np.zeros(lab.shape, np.float32), CLASSES).boundaries
    monkeypatch.setattr(neural, "prune_spurs", lambda skeleton, removable: skeleton)
    unpruned = labels_to_segmentation(lab, np.zeros(lab.shape, np.float32), CLASSES).boundaries
    # what is left is the line bending through each blob's middle (a few diagonal steps each)
    extra, extra_unpruned = crossings(pruned) - crossings(plain), crossings(unpruned) - crossings(plain)
    assert 0 <= extra <= 3 * 3, (extra, extra_unpruned)
    assert extra_unpruned >= extra + 3 * 4, (extra, extra_unpruned)  # each blob's two spurs, ≥ 2 columns each
