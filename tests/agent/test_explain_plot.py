"""Explanations and plots: what the model believed at each proposal is stored and shown by ``matloop explain``;
``matloop plot`` writes valid PNGs; partial dependence singles out the input that matters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from agent import Campaign
from agent.assemble import build_strategy
from agent.cli import app
from surrogate.base import Observation
from surrogate.partial_dependence import partial_dependence
from surrogate.space import SearchSpace

from .simple import Recording, ceramic_campaign

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


@pytest.fixture
def believing(monkeypatch: pytest.MonkeyPatch) -> list[Recording]:
    """Campaigns built in the test get a Sobol strategy that claims model beliefs for every proposal."""
    made: list[Recording] = []

    def build(spec):  # type: ignore[no-untyped-def]
        made.append(Recording(build_strategy(spec), beliefs=True))
        return made[-1]

    monkeypatch.setattr("agent.campaign.build_strategy", build)
    return made


def test_explain_shows_stored_beliefs_and_measurements(tmp_path: Path, believing: list[Recording]) -> None:
    path = ceramic_campaign(tmp_path, experiments=4)
    c = Campaign.from_yaml(path)
    c.run()
    done = c.table().query("state == 'completed'")
    index = int(done["experiment"].iloc[0])
    exp = c.experiment(index)
    assert exp.model_state["predictions"]["flexural_strength"] == [321.5, 4.0]
    assert exp.model_state["acquisition_value"] == 0.0123 and exp.model_state["feasibility"] == 0.87
    e = c.explain(index)
    assert [k for k, _ in e.lengthscales] == ["sinter_temperature", "hold_time", "pressure"]  # shortest first
    measured = float(done["y.flexural_strength"].iloc[0])
    assert e.measured["flexural_strength"][0] == pytest.approx(measured)
    c.close()

    res = runner.invoke(app, ["explain", str(path), str(index)], env=WIDE)
    assert res.exit_code == 0, res.output
    text = res.output
    assert "321.5 ± 4 MPa" in text and "27.25 ± 1.5" in text  # predicted mean ± σ
    assert f"{measured:.4g}" in text  # what was then measured
    assert "0.0123" in text and "qLogNEHVI" in text and "stub GP" in text
    assert "0.87" in text  # feasibility
    ls_block = text[text.index("length scales") :]
    assert ls_block.index("sinter_temperature") < ls_block.index("hold_time") < ls_block.index("pressure")
    assert "no model" not in text
    bad = runner.invoke(app, ["explain", str(path), "99"], env=WIDE)
    assert bad.exit_code == 2 and "no experiment 99" in bad.output


def test_explain_random_proposal_says_no_model(tmp_path: Path) -> None:
    path = ceramic_campaign(tmp_path, experiments=2)
    Campaign.from_yaml(path).run()
    res = runner.invoke(app, ["explain", str(path), "1"], env=WIDE)
    assert res.exit_code == 0, res.output
    assert "no model" in res.output and "sobol" in res.output
    by_name = runner.invoke(app, ["explain", "cer", "1", "--store", f"sqlite:///{tmp_path}/cer.matloop.db"], env=WIDE)
    assert by_name.exit_code == 0 and "no model" in by_name.output


def test_plot_writes_pngs(tmp_path: Path) -> None:
    path = ceramic_campaign(tmp_path, experiments=10, lanes=2)
    Campaign.from_yaml(path).run()
    out = tmp_path / "plots"
    res = runner.invoke(app, ["plot", str(path), "--out", str(out)], env=WIDE)
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "best_so_far.png",
        "pareto.png",
        "partial_dependence_flexural_strength.png",
        "partial_dependence_thermal_conductivity.png",
    ]
    for p in out.iterdir():
        with Image.open(p) as im:
            im.verify()
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100


def test_plot_before_enough_data(tmp_path: Path) -> None:
    path = ceramic_campaign(tmp_path, name="one", experiments=1)
    Campaign.from_yaml(path).run()
    res = runner.invoke(app, ["plot", str(path), "--out", str(tmp_path / "p")], env=WIDE)
    assert res.exit_code == 0, res.output
    assert "no partial dependence" in res.output
    assert (tmp_path / "p" / "best_so_far.png").stat().st_size > 0


SPACE = SearchSpace.model_validate(
    {
        "parameters": [
            {"name": "a", "type": "float", "low": 0, "high": 10, "unit": "K"},
            {"name": "b", "type": "float", "low": 1, "high": 100, "unit": "s", "log_scale": True},
            {"name": "n", "type": "int", "low": 1, "high": 4, "unit": "1"},
            {"name": "gas", "type": "categorical", "choices": ["ar", "n2", "air"]},
        ]
    }
)


def test_partial_dependence_finds_the_input_that_matters() -> None:
    rng = np.random.default_rng(3)
    obs = []
    for _ in range(24):
        c = {
            "a": float(rng.uniform(0, 10)),
            "b": float(np.exp(rng.uniform(0, np.log(100)))),
            "n": int(rng.integers(1, 5)),
            "gas": str(rng.choice(["ar", "n2", "air"])),
        }
        obs.append(Observation(c, {"y": (2.0 * c["a"] + rng.normal(0, 0.05), 0.05)}))
    obs.append(Observation({"a": 1.0, "b": 2.0, "n": 1, "gas": "ar"}, {}, failed=True))  # left out
    pd = partial_dependence(SPACE, obs, "y", grid_size=11)
    assert set(pd) == {"a", "b", "n", "gas"}
    a = pd["a"]
    assert len(a.grid) == 11 and a.grid[0] == 0 and a.grid[-1] == 10
    assert a.spread == pytest.approx(20, rel=0.15)  # y = 2a over [0, 10]
    assert a.mean[-1] > a.mean[0] and all(s >= 0 for s in a.sigma)
    for other in ("b", "n", "gas"):
        assert pd[other].spread < 0.05 * a.spread, (other, pd[other].spread)
    assert pd["gas"].categorical and pd["gas"].grid == ["ar", "n2", "air"]
    assert pd["n"].grid == [1, 2, 3, 4]
    assert pd["b"].grid[0] == pytest.approx(1) and pd["b"].grid[1] / pd["b"].grid[0] == pytest.approx(
        pd["b"].grid[2] / pd["b"].grid[1]
    )  # log grid


def test_partial_dependence_needs_data() -> None:
    from surrogate.base import StrategyError

    with pytest.raises(StrategyError, match="at least 3"):
        partial_dependence(SPACE, [Observation({"a": 1.0, "b": 2.0, "n": 1, "gas": "ar"}, {"y": (1.0, 0.1)})], "y")


def test_help_lists_the_new_commands() -> None:
    res = runner.invoke(app, ["--help"], env=WIDE)
    assert res.exit_code == 0
    for cmd in ("explain", "plot", "record"):
        assert f" {cmd} " in res.output
    run_help = runner.invoke(app, ["run", "--help"], env=WIDE)
    assert "--approve" in run_help.output and "--who" in run_help.output
