from __future__ import annotations

import numpy as np

from imaging.databar import detect_data_bar

RNG = np.random.default_rng(1)


def noisy(h: int = 240, w: int = 200) -> np.ndarray:
    return np.clip(RNG.normal(0.5, 0.08, (h, w)), 0, 1)


def test_finds_a_black_bar_with_text_and_a_separator_line() -> None:
    img = noisy()
    img[-40:] = 0.0
    img[-40] = 1.0  # separator
    img[-30:-18, 10:90:3] = 1.0  # text strokes
    img[-8:-5, 120:180] = 1.0  # scale bar
    assert detect_data_bar(img) == 40


def test_no_bar_on_a_plain_micrograph_or_a_flat_frame() -> None:
    assert detect_data_bar(noisy()) == 0
    assert detect_data_bar(np.full((200, 200), 0.4)) == 0  # all rows uniform: not a distinct band


def test_a_band_taller_than_the_limit_is_not_a_bar() -> None:
    img = noisy()
    img[-120:] = 0.2
    assert detect_data_bar(img, max_fraction=0.3) == 0
