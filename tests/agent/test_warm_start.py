"""Warm start: campaign B learns from campaign A's finished experiments before its first ask, without copying
them or spending its budget; told again on resume; incompatible spaces are refused naming the input."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent import Campaign
from agent.assemble import build_strategy
from agent.cli import app
from agent.errors import ConfigError, StoreError
from agent.warmstart import compatibility_problems
from surrogate.space import SearchSpace

from .simple import Recording, ceramic_campaign

runner = CliRunner()
A_DB = "sqlite:///A.matloop.db"  # A's default store, next to the campaign files


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> list[Recording]:
    made: list[Recording] = []

    def build(spec):  # type: ignore[no-untyped-def]
        made.append(Recording(build_strategy(spec)))
        return made[-1]

    monkeypatch.setattr("agent.campaign.build_strategy", build)
    return made


def _campaign_a(tmp: Path) -> Campaign:
    a = Campaign.from_yaml(ceramic_campaign(tmp, name="A", experiments=8, lanes=2))
    a.run()
    return a


def _warm(source: str, store: str | None = None) -> str:
    extra = f", store: '{store}'" if store else ""
    return f"name: sobol\nwarm_start: {{campaign: {source}{extra}}}"


def test_b_learns_from_a_without_spending_its_budget(tmp_path: Path, recording: list[Recording]) -> None:
    a = _campaign_a(tmp_path)
    a_obs = a.observations()
    assert len(a_obs) == 8
    path_b = ceramic_campaign(tmp_path, name="B", experiments=4, strategy=_warm("A", A_DB))
    b = Campaign.from_yaml(path_b)
    b.run()
    strat = recording[-1]
    first = strat.tells[0]  # told before the first ask
    assert len(strat.pendings) >= 1 and strat.tells.index(first) == 0
    assert [o.conditions for o in first] == [o.conditions for o in a_obs]
    assert [o.failed for o in first] == [o.failed for o in a_obs]
    assert {k for o in first for k in o.values} <= {"flexural_strength", "thermal_conductivity"}
    exps = b.store.experiments(b._row_id())
    assert len(exps) == 4  # B's own budget, untouched by A's 8
    a_points = [o.conditions for o in a_obs]
    assert all(e.conditions not in a_points for e in exps)  # nothing copied, and A's points are not repeated
    ev = [e for e in b.store.events(b._row_id()) if e.kind == "warm_start"]
    assert len(ev) == 1 and ev[0].payload["source"] == "A" and ev[0].payload["used"] == 8
    assert ev[0].payload["skipped_outside_space"] == 0

    b.resume()  # rebuilt from the store: A's data is told again
    assert [o.conditions for o in recording[-1].tells[0]] == [o.conditions for o in a_obs]
    assert len([e for e in b.store.events(b._row_id()) if e.kind == "warm_start"]) == 2
    assert len(b.store.experiments(b._row_id())) == 4
    a.close()
    b.close()


def test_points_outside_a_narrower_space_are_skipped(tmp_path: Path, recording: list[Recording]) -> None:
    a = _campaign_a(tmp_path)
    temps = [float(o.conditions["sinter_temperature"]) for o in a.observations()]
    narrow = ("low: 1150, high: 1650", "low: 1150, high: 1400")
    b = Campaign.from_yaml(
        ceramic_campaign(tmp_path, name="B", experiments=2, strategy=_warm("A", A_DB), space_edit=narrow)
    )
    b.run()
    inside = sum(t <= 1400 for t in temps)
    assert 0 < inside < 8
    assert len(recording[-1].tells[0]) == inside
    (ev,) = [e for e in b.store.events(b._row_id()) if e.kind == "warm_start"]
    assert ev.payload["used"] == inside and ev.payload["skipped_outside_space"] == 8 - inside
    a.close()
    b.close()


def test_incompatible_or_unknown_source_is_refused(tmp_path: Path) -> None:
    a = _campaign_a(tmp_path)
    # an earlier campaign (recorded in A's store) whose furnace took a "force" instead of a "pressure"
    old = ceramic_campaign(tmp_path / "old", name="Old", space_edit=("name: pressure,", "name: force,"))
    a.store.create_campaign("Old", old.read_text(), "h" * 64, 1, str(old))
    a.close()
    b = Campaign.from_yaml(ceramic_campaign(tmp_path, name="B", experiments=2, strategy=_warm("Old", A_DB)))
    with pytest.raises(ConfigError) as exc:
        b.run()
    text = str(exc.value)
    assert "input 'pressure' of this campaign is not an input of 'Old'" in text
    assert "input 'force' of 'Old' is not an input of this campaign" in text
    assert b.row is None  # nothing recorded
    cli = runner.invoke(app, ["run", str(tmp_path / "B.yaml")])
    assert cli.exit_code == 2 and "strategy.warm_start.campaign" in cli.output

    c = Campaign.from_yaml(ceramic_campaign(tmp_path, name="C", experiments=2, strategy=_warm("Z", A_DB)))
    with pytest.raises(StoreError, match=r"no campaign 'Z'.*campaigns there: A, Old$"):
        c.run()
    own = Campaign.from_yaml(ceramic_campaign(tmp_path, name="E", experiments=2, strategy=_warm("A")))
    with pytest.raises(StoreError, match="campaigns there: none; if it is recorded elsewhere"):
        own.run()
    d = Campaign.from_yaml(
        ceramic_campaign(tmp_path, name="D", experiments=2, strategy=_warm("A", "sqlite:///nope.db"))
    )
    with pytest.raises(ConfigError, match="no store at"):
        d.run()


def _space(*params: dict) -> SearchSpace:
    return SearchSpace.model_validate({"parameters": list(params)})


def test_compatibility_rules() -> None:
    x = {"name": "x", "type": "float", "low": 0, "high": 1, "unit": "K"}
    gas = {"name": "gas", "type": "categorical", "choices": ["ar", "n2"]}
    gas3 = {"name": "gas", "type": "categorical", "choices": ["ar", "n2", "air"]}
    gas_num = {"name": "gas", "type": "float", "low": 0, "high": 1, "unit": "1"}
    assert compatibility_problems(_space(x, gas3), _space(x, gas), "A") == []  # more choices here is fine
    (p,) = compatibility_problems(_space(x, gas), _space(x, gas3), "A")
    assert "input 'gas' has choices ['air'] in 'A' that are not valid here; valid: ['ar', 'n2']" in p
    (p,) = compatibility_problems(_space(x, gas), _space(x, gas_num), "A")
    assert "input 'gas' is categorical here but numeric in 'A'" in p
    (p,) = compatibility_problems(_space(gas), _space(x), "A")
    assert "no input in common" in p


def test_spec_refuses_itself_as_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is this campaign"):
        Campaign.from_yaml(ceramic_campaign(tmp_path, name="A", strategy=_warm("A")))
