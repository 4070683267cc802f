"""ASTM E112 planimetric (Jeffries) grain size: the E112 relations, exact counts on a grid of square grains, and the
U-Net path against the simulator's true grains."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from imaging.base import ImageInput
from imaging.estimate import subfields
from imaging.intercept import astm_grain_number, mean_intercept
from imaging.neural import NeuralPipeline, bundled_checkpoint
from imaging.planimetric import (
    astm_number_from_density,
    astm_number_from_diameter,
    astm_sigma_from_diameter,
    grains_per_area,
    jeffries_count,
    mean_diameter,
    planimetric_size,
)
from instruments.sim.dataset import export_dataset
from instruments.sim.render import Microstructure, render_masks
from instruments.sim.seeding import rng_for
from instruments.sim.survey import surviving_samples
from instruments.sim.systems import get_system


def square_grid(size: int, side: int, offset: int) -> NDArray[np.int32]:
    """Labels of square grains of ``side`` px whose boundaries lie at ``offset`` + k·side."""
    idx = (np.arange(size) - offset) // side + 1
    return (idx[:, None] * (size + 2) + idx[None, :] + 1).astype(np.int32)


@pytest.mark.parametrize(
    ("g", "n_a_per_mm2", "d_um", "ell_um"),
    [(0.0, 7.75, 359.2, 320.0), (1.0, 15.50, 254.0, 226.3), (8.0, 1984.0, 22.5, 20.0), (10.0, 7936.0, 11.2, 10.0)],
)
def test_e112_table(g: float, n_a_per_mm2: float, d_um: float, ell_um: float) -> None:
    # ASTM E112 Table 4 rows: G, N_A (grains/mm² at 1×), mean diameter d̄ = 1/√N_A, mean lineal intercept ℓ̄
    assert astm_number_from_density(n_a_per_mm2) == pytest.approx(g, abs=0.01)
    assert 1e3 / math.sqrt(n_a_per_mm2) == pytest.approx(d_um, rel=0.005)  # the d̄ convention of the table
    assert astm_number_from_diameter(d_um) == pytest.approx(g, abs=0.02)
    assert astm_grain_number(ell_um) == pytest.approx(g, abs=0.02)  # the intercept relation agrees with the table


def test_g_sigma_is_the_derivative() -> None:
    d, h = 22.5, 1e-4
    slope = (astm_number_from_diameter(d + h) - astm_number_from_diameter(d - h)) / (2 * h)
    assert astm_sigma_from_diameter(d, 0.3) == pytest.approx(abs(slope) * 0.3, rel=1e-5)


def test_square_grid_counts_halves_and_quarters_exactly() -> None:
    labels = square_grid(200, 20, offset=10)  # 9×9 whole grains, 36 halves along the edges, 4 quarters at corners
    assert jeffries_count(labels) == (81, 36, 4, 40000)
    n_a, n = grains_per_area(labels)
    assert n == 100.0 and mean_diameter(n_a) == pytest.approx(20.0)


def test_square_grid_planimetric_and_intercept_match_the_side() -> None:
    side, px = 20, 0.5
    labels = square_grid(200, side, offset=10)
    est = planimetric_size(labels, (100, 100, 100), subfields(labels.shape, 2), px)
    assert est.value == pytest.approx(side * px)
    # every 100-px subfield holds the same pattern (no spread), so σ is the counting term ½·d̄/√n with n = 100
    assert est.sigma == pytest.approx(0.5 * side * px / 10.0)
    boundaries = np.zeros(labels.shape, dtype=bool)
    boundaries[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    boundaries[1:, :] |= labels[1:, :] != labels[:-1, :]
    # rows and columns lying on a 1-px boundary line count one crossing: ℓ̄ within 1/side of the side
    ell = mean_intercept(boundaries, np.ones_like(boundaries), px)
    assert ell == pytest.approx(side * px, rel=1.0 / side + 0.01)


def test_area_outside_grains_is_left_out() -> None:
    labels = square_grid(200, 20, offset=10)
    holed = labels.copy()
    holed[50:70, 50:70] = 0  # a pore where one whole grain was
    n_a, n = grains_per_area(holed)
    assert n == 99.0 and n_a == pytest.approx(99.0 / (40000 - 400))


def test_no_grains_gives_the_field_with_full_sigma() -> None:
    est = planimetric_size(np.zeros((50, 80), np.int32), (0, 0, 0), subfields((50, 80), 3), 2.0)
    assert est.value == 100.0 and est.sigma == 100.0


def _true_jeffries_um(system: str, n: int, index: int, size_px: int, px: float) -> tuple[float, int]:
    """(planimetric d̄ of the simulator's own grain labels of item ``index``, their number), rendered as the
    exporter renders them."""
    samples = list(surviving_samples(get_system(system), n, 0, candidates=max(8 * n, 32), tag="dataset", failures={}))
    i, _, outcome = samples[index]
    masks = render_masks(
        Microstructure.from_truth(outcome.truth), (size_px, size_px), px, rng_for(0, system, i, "dataset-field")
    )
    n_a, _ = grains_per_area(masks.grains + 1)
    return mean_diameter(n_a) * px, int(masks.grains.max()) + 1


def test_unet_planimetric_matches_sim_truth(tmp_path: Path) -> None:
    """The bundled U-Net on clean simulated micrographs: planimetric d̄ within 10 % (and 3σ) of the Jeffries count on
    the simulator's true grains; and above √(area / all grains) of the manifest, which counts cut grains whole."""
    torch.set_num_threads(1)
    system = "two_phase_alloy"
    manifest = export_dataset(system, tmp_path, n=2, size_px=256, artifacts="none")
    analyzer = NeuralPipeline(checkpoint=bundled_checkpoint(), device="cpu")
    for index, item in enumerate(manifest["items"]):
        truth, px = item["truth"], item["pixel_size_um"]
        feats = {f.name: f for f in analyzer.analyze([ImageInput(tmp_path / item["image"], px)])}
        d = feats["grain_size_planimetric_um"]
        true_d, count = _true_jeffries_um(system, 2, index, 256, px)
        assert count == truth["grain_count"]  # the re-rendered grains are the manifest's
        assert abs(d.value - true_d) <= 0.10 * true_d and abs(d.value - true_d) <= 3 * d.sigma, (d, true_d)
        assert d.value >= math.sqrt(truth["field_area_um2"] / truth["grain_count"])
        g = feats["astm_grain_number_planimetric"]
        assert g.value == pytest.approx(astm_number_from_diameter(d.value)) and g.sigma > 0
