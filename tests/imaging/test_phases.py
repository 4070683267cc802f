from __future__ import annotations

import numpy as np

from imaging.phases import Phases, class_mask, classify_phases, without_pore_class

RNG = np.random.default_rng(2)


def levels_image(fractions: dict[float, float], noise: float = 0.02, size: int = 200) -> np.ndarray:
    """Pixels at grey ``level`` for each fraction (shuffled) plus noise: only the histogram matters here."""
    counts = [int(f * size * size) for f in fractions.values()]
    counts[0] += size * size - sum(counts)
    values = np.concatenate([np.full(c, lv) for lv, c in zip(fractions, counts, strict=True)])
    return np.clip(RNG.permutation(values) + RNG.normal(0, noise, values.size), 0, 1).reshape(size, size)


def classify(img: np.ndarray, noise: float = 0.02) -> Phases:
    return classify_phases(img.astype(np.float32), np.zeros(img.shape, bool), noise)


def test_three_real_classes_are_pores_matrix_second_phase() -> None:
    img = levels_image({0.5: 0.8, 0.05: 0.05, 0.9: 0.15})
    ph = classify(img)
    assert (ph.pore_class, ph.matrix_class, ph.second_class) == (0, 1, 2)
    assert abs(class_mask(img, ph, 0).mean() - 0.05) < 0.003
    assert abs(class_mask(img, ph, 2).mean() - 0.15) < 0.003


def test_a_single_phase_is_not_split_into_classes() -> None:
    ph = classify(levels_image({0.5: 1.0}, noise=0.05), noise=0.05)
    assert ph.thresholds == () and ph.pore_class is None and ph.second_class is None


def test_two_classes_dark_minor_is_pores_bright_minor_is_second_phase() -> None:
    ph = classify(levels_image({0.6: 0.9, 0.1: 0.1}))
    assert (ph.pore_class, ph.second_class) == (0, None)
    ph = classify(levels_image({0.4: 0.8, 0.9: 0.2}))
    assert (ph.pore_class, ph.matrix_class, ph.second_class) == (None, 0, 1)


def test_majority_bright_phase_is_the_matrix_and_the_grey_one_second() -> None:
    ph = classify(levels_image({0.85: 0.6, 0.45: 0.35, 0.05: 0.05}))
    assert (ph.pore_class, ph.matrix_class, ph.second_class) == (0, 2, 1)


def test_thresholds_sit_midway_between_class_peaks() -> None:
    ph = classify(levels_image({0.5: 0.9, 0.1: 0.1}))
    assert abs(ph.thresholds[0] - 0.3) < 0.01


def test_without_pore_class_merges_it_into_the_class_above() -> None:
    three = Phases((0.3, 0.6), (0.2, 0.45, 0.8), 0, 1, 2)
    merged = without_pore_class(three)
    assert merged == Phases((0.6,), (0.45, 0.8), None, 0, 1)
    img = np.array([[0.1, 0.4, 0.9]])
    assert class_mask(img, merged, merged.matrix_class).tolist() == [[True, True, False]]
    assert without_pore_class(Phases((0.3,), (0.2, 0.5), 0, 1, None)) == Phases((), (0.5,), None, 0, None)
    assert without_pore_class(merged) == merged  # no pore class: unchanged
