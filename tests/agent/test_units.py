from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.units import canonical, same_unit


def test_spellings() -> None:
    assert same_unit("µm", "um") and same_unit("°C", "degC") and same_unit("fraction", "1") and same_unit("", "1")
    assert same_unit("W/(m·K)", "W/(m*K)")
    assert not same_unit("mm", "um") and not same_unit("K", "degC")


@given(st.text(max_size=12))
def test_canonical_is_idempotent(u: str) -> None:
    assert canonical(canonical(u)) == canonical(u)
