"""The BoTorch column encoding: a round trip returns the conditions, any point of the box decodes to bounds,
integers, choices and exact composition sums, and linear constraints keep their meaning on the columns."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from surrogate.botorch_space import BotorchSpace
from surrogate.sobol import SobolStrategy
from tests.surrogate.problems import maximize, mixed_space

SPACE = mixed_space()
COLUMNS = BotorchSpace(SPACE)
POINTS = [p.conditions for p in SobolStrategy(SPACE, maximize(), seed=0).ask(64, [])]


@given(st.integers(0, len(POINTS) - 1))
def test_round_trip(i: int) -> None:
    c = POINTS[i]
    back = COLUMNS.decode(COLUMNS.encode([c]))[0]
    for name, v in c.items():
        if isinstance(v, str):
            assert back[name] == v
        else:
            assert abs(float(back[name]) - float(v)) <= 1e-9 * max(1.0, abs(float(v))), (name, v, back[name])


@settings(max_examples=60)
@given(st.lists(st.floats(0.0, 1.0), min_size=COLUMNS.dim, max_size=COLUMNS.dim))
def test_any_box_point_decodes_inside_bounds_choices_and_sums(u: list[float]) -> None:
    bounds = COLUMNS.bounds()
    X = bounds[0] + torch.tensor(u, dtype=torch.float64) * (bounds[1] - bounds[0])
    c = COLUMNS.decode(X.unsqueeze(0))[0]
    problems = [p for p in SPACE.check(c) if not p.startswith("constraint")]
    assert problems == [], problems
    assert isinstance(c["n"], int) and isinstance(c["layers"], int) and c["atm"] in ("Ar", "N2", "air")


def test_linear_constraint_on_columns_matches_the_space() -> None:
    ((idx, coef, rhs),) = COLUMNS.inequality_constraints
    for c in POINTS:
        x = COLUMNS.encode([c])[0]
        lhs = float((x[idx] * coef).sum())
        assert lhs >= rhs - 1e-9  # Sobol points satisfy Si + 2 O <= 1.5; in BoTorch's form: -(...) >= -(...)
    ((eidx, ecoef, erhs),) = COLUMNS.equality_constraints
    for c in POINTS:
        x = COLUMNS.encode([c])[0]
        assert abs(float((x[eidx] * ecoef).sum()) - erhs) < 1e-9


def test_discrete_and_categorical_dimensions() -> None:
    names = COLUMNS.names()
    assert COLUMNS.cat_dims() == {names.index("atm"): [0.0, 1.0, 2.0]}
    discrete = COLUMNS.discrete_dims()
    assert len(discrete[names.index("n")]) == 5 and len(discrete[names.index("layers")]) == 64
    assert "N" not in names  # a fixed component has no column
    assert np.allclose(discrete[names.index("n")], [0, 0.25, 0.5, 0.75, 1.0])
