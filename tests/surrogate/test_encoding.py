"""Encodings: random valid spaces sample inside themselves, and both encodings are identities on valid points."""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import numpy as np
import pytest
from ax import RangeParameterConfig
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from surrogate.base import ConditionValue, StrategyError, StrategyWarning
from surrogate.encoding import AxEncoding, UnitEncoding, canonical_key, draw_new
from surrogate.space import (
    CategoricalParameter,
    Component,
    CompositionParameter,
    FloatParameter,
    IntParameter,
    LinearConstraint,
    SearchSpace,
)
from tests.surrogate.problems import mixed_space

# ------------------------------------------------------------------------------- random valid spaces


@st.composite
def compositions(draw: st.DrawFn, prefix: str) -> tuple[CompositionParameter, dict[str, float]]:
    """A composition with bounds around a reference point (some components constant), and that point."""
    k = draw(st.integers(2, 5))
    total = draw(st.sampled_from([1.0, 0.8]))
    w = np.array(draw(st.lists(st.floats(0.05, 1.0), min_size=k, max_size=k)))
    w = w / w.sum() * total
    comps, ref = [], {}
    for i in range(k):
        name = f"{prefix}{i}"
        if draw(st.integers(0, 5)) == 0:  # a constant component
            low = high = float(w[i])
        else:
            low = float(w[i]) * draw(st.floats(0.0, 0.8))
            high = min(1.0, float(w[i]) + (total - float(w[i])) * draw(st.floats(0.2, 1.0)))
        comps.append(Component(name=name, low=low, high=high))
        ref[name] = float(w[i])
    return CompositionParameter(name=f"{prefix}comp", components=tuple(comps), total=total), ref


@st.composite
def spaces(draw: st.DrawFn) -> SearchSpace:
    params: list = []
    ref: dict[str, float] = {}  # a feasible point, to place constraints around
    scale: dict[str, float] = {}
    for i in range(draw(st.integers(0, 2))):
        log = draw(st.booleans())
        low = draw(st.floats(0.01, 50)) if log else draw(st.floats(-100, 100))
        high = low * draw(st.floats(1.5, 1000)) if log else low + draw(st.floats(0.1, 100))
        params.append(FloatParameter(name=f"f{i}", low=low, high=high, unit="u", log_scale=log))
        ref[f"f{i}"] = math.sqrt(low * high) if log else (low + high) / 2
        scale[f"f{i}"] = high - low
    for i in range(draw(st.integers(0, 2))):
        log = draw(st.booleans())
        low = draw(st.integers(1, 5)) if log else draw(st.integers(-5, 5))
        high = low + draw(st.integers(1, 30))
        params.append(IntParameter(name=f"i{i}", low=low, high=high, unit="1", log_scale=log))
        ref[f"i{i}"] = (low + high) / 2
        scale[f"i{i}"] = high - low
    if draw(st.booleans()):
        params.append(CategoricalParameter(name="cat", choices=tuple(f"c{j}" for j in range(draw(st.integers(2, 4))))))
    for i in range(draw(st.integers(0, 2))):
        comp, cref = draw(compositions(f"m{i}_"))
        params.append(comp)
        ref.update(cref)
        scale.update({c.name: c.high - c.low for c in comp.components})
    assume(params and ref)
    constraints = []
    names = sorted(ref)
    for _ in range(draw(st.integers(0, 2))):
        chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
        coef = {n: draw(st.sampled_from([-2.0, -1.0, -0.5, 0.5, 1.0, 3.0])) for n in chosen}
        lhs = sum(k * ref[n] for n, k in coef.items())
        margin = 0.3 * sum(abs(k) * scale[n] for n, k in coef.items())
        op: Literal["<=", ">="] = draw(st.sampled_from(["<=", ">="]))
        constraints.append(
            LinearConstraint(coefficients=coef, op=op, bound=lhs + margin if op == "<=" else lhs - margin)
        )
    return SearchSpace(parameters=tuple(params), constraints=tuple(constraints))


def _unit_or_skip(space: SearchSpace) -> UnitEncoding:
    try:
        return UnitEncoding(space)
    except StrategyError:  # every input constant: nothing to sample
        assume(False)
        raise


def _sample(space: SearchSpace, seed: int, m: int = 4000) -> list[dict]:
    enc = _unit_or_skip(space)
    pts = enc.feasible(np.random.default_rng(seed).random((m, enc.dim)))
    assert pts, f"no feasible point in {m} draws"
    return pts[:30]


def _quiet_ax(space: SearchSpace) -> AxEncoding:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StrategyWarning)
        return AxEncoding(space)


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(spaces(), st.integers(0, 2**31))
def test_sampled_points_lie_in_the_space(space: SearchSpace, seed: int) -> None:
    for p in _sample(space, seed):
        assert space.check(p) == [], p


@SETTINGS
@given(spaces(), st.integers(0, 2**31))
def test_unit_encoding_round_trips(space: SearchSpace, seed: int) -> None:
    enc = _unit_or_skip(space)
    for p in _sample(space, seed):
        u = enc.to_unit(p)
        assert u.shape == (enc.dim,) and np.all((u >= 0) & (u <= 1))
        assert canonical_key(enc.from_unit(u)) == canonical_key(p)


@SETTINGS
@given(spaces(), st.integers(0, 2**31))
def test_ax_encoding_round_trips_and_constraints_hold(space: SearchSpace, seed: int) -> None:
    from ax.api.utils.instantiation.from_struct import experiment_from_struct
    from ax.api.utils.structs import ExperimentStruct

    _unit_or_skip(space)
    try:
        enc = _quiet_ax(space)
    except StrategyError:
        assume(False)  # every input constant
    ax_space = experiment_from_struct(
        ExperimentStruct(
            parameters=list[Any](enc.parameters),
            parameter_constraints=enc.constraints,
            name=None,
            description=None,
            experiment_type=None,
            owner=None,
        )
    ).search_space
    for p in _sample(space, seed):
        params = enc.to_ax(p)
        assert ax_space.check_membership(params, raise_error=True)
        assert canonical_key(enc.from_ax(params)) == canonical_key(p)
    # anywhere in Ax's box: Ax calls it feasible exactly when our space does
    rng = np.random.default_rng(seed)
    for _ in range(100):
        box: dict[str, Any] = {}
        for c in enc.parameters:
            if isinstance(c, RangeParameterConfig):
                lo, hi = c.bounds
                box[c.name] = (
                    int(rng.integers(int(lo), int(hi) + 1)) if c.parameter_type == "int" else rng.uniform(lo, hi)
                )
            else:
                box[c.name] = str(rng.choice(c.values))
        x = enc.from_ax(box)
        strict, loose = space.check(x, tol=0.0) == [], space.check(x, tol=1e-5) == []
        if strict != loose:
            continue  # within float tolerance of a bound: either answer is right
        assert ax_space.check_membership(box) == strict, box


# ------------------------------------------------------------------------------------ named cases


def test_sympy_names_are_aliased_and_compositions_reduced() -> None:
    from ax.core.parameter_constraint import ParameterConstraint

    space = mixed_space()
    enc = AxEncoding(space)
    names = [c.name for c in enc.parameters]
    assert names == ["x_T", "x_t", "x_n", "x_layers", "x_atm", "x_Si", "x_Li"]  # N constant, O rebuilt
    assert enc.constants == {"N": 0.05}
    scaling = {c.name: c.scaling for c in enc.parameters if isinstance(c, RangeParameterConfig)}
    assert scaling["x_t"] == "log" and scaling["x_layers"] == "log" and scaling["x_Si"] == "linear"
    parsed = [ParameterConstraint(inequality=s) for s in enc.constraints]
    # Si + Li <= 0.95 − 0.2, Si + Li >= 0.95 − 0.7, and Si + 2 O = Si + 2 (0.95 − Si − Li) <= 1.5
    assert {tuple(sorted(c.constraint_dict.items())) for c in parsed} == {
        (("x_Li", 1.0), ("x_Si", 1.0)),
        (("x_Li", -1.0), ("x_Si", -1.0)),
        (("x_Li", -2.0), ("x_Si", -1.0)),
    }
    point: dict[str, ConditionValue]
    point = {"T": 500.0, "t": 1.0, "n": 3, "layers": 8, "atm": "N2", "Si": 0.3, "Li": 0.25, "N": 0.05, "O": 0.4}
    assert space.check(point) == []
    assert enc.to_ax(point) == {
        "x_T": 500.0,
        "x_t": 1.0,
        "x_n": 3,
        "x_layers": 8,
        "x_atm": "N2",
        "x_Si": 0.3,
        "x_Li": 0.25,
    }
    back = enc.from_ax(enc.to_ax(point))
    assert list(back) == space.input_names() and back["O"] == pytest.approx(0.4)


def test_log_scale_input_in_a_constraint_is_searched_linearly_with_a_warning() -> None:
    space = SearchSpace(
        parameters=(
            FloatParameter(name="t", low=0.1, high=10, unit="h", log_scale=True),
            FloatParameter(name="T", low=0, high=1, unit="1"),
        ),
        constraints=(LinearConstraint(coefficients={"t": 1.0, "T": 1.0}, bound=5.0),),
    )
    with pytest.warns(StrategyWarning, match="linear scale"):
        enc = AxEncoding(space)
    assert isinstance(enc.parameters[0], RangeParameterConfig) and enc.parameters[0].scaling == "linear"


def test_constraints_on_constants_only_are_dropped_or_rejected() -> None:
    comp = CompositionParameter(
        name="c",
        components=(Component(name="a", low=0.3, high=0.3), Component(name="b"), Component(name="d")),
        total=1.0,
    )
    x = FloatParameter(name="x", low=0, high=1, unit="1")
    ok = SearchSpace(parameters=(x, comp), constraints=(LinearConstraint(coefficients={"a": 1.0}, bound=0.5),))
    assert AxEncoding(ok).constraints == ["x_b <= 0.7"]  # the simplex only: a <= 0.5 always holds
    bad = SearchSpace(parameters=(x, comp), constraints=(LinearConstraint(coefficients={"a": 1.0}, bound=0.2),))
    with pytest.raises(StrategyError, match="never hold"):
        AxEncoding(bad)


def test_composition_with_no_freedom_is_constant() -> None:
    comp = CompositionParameter(
        name="c", components=(Component(name="a", low=0.4, high=0.9), Component(name="b", low=0.6, high=1.0))
    )
    space = SearchSpace(parameters=(FloatParameter(name="x", low=0, high=1, unit="1"), comp))
    enc, unit = AxEncoding(space), UnitEncoding(space)
    assert [c.name for c in enc.parameters] == ["x_x"] and unit.dim == 1
    p = enc.from_ax({"x_x": 0.5})
    assert p == {"x": 0.5, "a": 0.4, "b": 0.6} and space.check(p) == []
    only = SearchSpace(parameters=(comp,))
    with pytest.raises(StrategyError, match="single point"):
        UnitEncoding(only)


def test_canonical_key_ignores_float_noise_and_int_float() -> None:
    assert canonical_key({"a": 3, "b": 0.1 + 0.2}) == canonical_key({"b": 0.3, "a": 3.0})
    assert canonical_key({"a": 3}) != canonical_key({"a": 3.001})
    assert canonical_key({"a": "3"}) != canonical_key({"a": 3})


def test_every_integer_and_choice_round_trips() -> None:
    space = SearchSpace(
        parameters=(
            IntParameter(name="k", low=1, high=200, unit="1", log_scale=True),
            IntParameter(name="j", low=-3, high=4, unit="1"),
            CategoricalParameter(name="c", choices=("a", "b", "c")),
        )
    )
    enc = UnitEncoding(space)
    for k in range(1, 201):
        for j in (-3, 0, 4):
            for c in "abc":
                p = {"k": k, "j": j, "c": c}
                assert enc.from_unit(enc.to_unit(p)) == p


def test_simplex_sampling_is_uniform_and_hits_every_category() -> None:
    space = SearchSpace(
        parameters=(
            CompositionParameter(name="c", components=tuple(Component(name=n) for n in "abc")),
            CategoricalParameter(name="g", choices=("u", "v", "w")),
        )
    )
    enc = UnitEncoding(space)
    pts = enc.feasible(np.random.default_rng(0).random((6000, enc.dim)))
    assert len(pts) == 6000  # full bounds: nothing rejected
    for n in "abc":
        assert np.mean([p[n] for p in pts]) == pytest.approx(1 / 3, abs=0.015)
    assert {p["g"] for p in pts} == {"u", "v", "w"}


def test_tight_upper_bounds_sample_from_the_high_side() -> None:
    # lows sum to 0.1 (slack 0.9) but highs leave only 0.05 below them: sampled from the highs, no rejection
    comps = tuple(Component(name=f"c{i}", low=0.02, high=0.21) for i in range(5))
    space = SearchSpace(parameters=(CompositionParameter(name="c", components=comps),))
    enc = UnitEncoding(space)
    pts = enc.feasible(np.random.default_rng(1).random((500, enc.dim)))
    assert len(pts) == 500 and all(space.check(p) == [] for p in pts)


def test_too_small_feasible_region_is_a_clear_error() -> None:
    space = SearchSpace(
        parameters=(
            FloatParameter(name="x", low=0, high=1, unit="1"),
            FloatParameter(name="y", low=0, high=1, unit="1"),
        ),
        constraints=(LinearConstraint(coefficients={"x": 1.0, "y": 1.0}, op=">=", bound=1.9999),),
    )
    enc = UnitEncoding(space)
    rng = np.random.default_rng(0)
    with pytest.raises(StrategyError, match="too small"):
        draw_new(enc, lambda k: rng.random((k, enc.dim)), 3, set(), max_draws=2000)
