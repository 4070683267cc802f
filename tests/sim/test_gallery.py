"""The gallery command draws a contact sheet of micrographs."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from instruments.sim.cli import app
from instruments.sim.survey import sample_conditions
from instruments.sim.systems import SYSTEMS


def test_gallery_command(tmp_path: Path) -> None:
    out = tmp_path / "g.png"
    result = CliRunner().invoke(app, ["gallery", "porous_ceramic", "--out", str(out), "--n", "2", "--seed", "1"])
    assert result.exit_code == 0, result.output
    with Image.open(out) as im:
        assert im.size[0] > 300 and im.mode == "L"
    bad = CliRunner().invoke(app, ["gallery", "cheese", "--out", str(out)])
    assert bad.exit_code == 2 and "cheese" in bad.output


def test_gallery_conditions_cover_the_space() -> None:
    system = SYSTEMS["two_phase_alloy"]
    conds = sample_conditions(system, 9, seed=0)
    assert len(conds) == 9
    for s in system.inputs:
        values = [c[s.name] for c in conds]
        if s.categorical:
            assert set(values) == set(s.choices)
        else:
            assert all(s.low <= v <= s.high for v in values)  # type: ignore[operator]
