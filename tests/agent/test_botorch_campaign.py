"""The direct BoTorch strategy driving the simulated lab through the agent: two objectives, two lanes (so
proposals condition on pending experiments), cost-aware from the furnace's durations; every proposal after the
initial design stores predictions, an acquisition value and length scales that `matloop explain` shows."""

from __future__ import annotations

from pathlib import Path

import torch
from typer.testing import CliRunner

from agent import Campaign
from agent.cli import app

from .simple import ceramic_campaign


def test_botorch_campaign_end_to_end(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    strategy = (
        "name: botorch\noptions: {initial_points: 4, cost_aware: true, num_restarts: 4, raw_samples: 64, "
        "mc_samples: 64}"
    )
    path = ceramic_campaign(tmp_path, name="bo", experiments=8, lanes=2, strategy=strategy)
    campaign = Campaign.from_yaml(path)
    try:
        result = campaign.run()
        table = campaign.table()
    finally:
        campaign.close()
    assert result.status == "completed" and len(table) == 8, result
    assert set(table["state"]) <= {"completed", "failed"}
    generators = list(table["generator"])
    assert generators[:4] == ["botorch:sobol"] * 4 and generators[4:].count("botorch") >= 3, generators
    inputs = table[[c for c in table.columns if c.startswith("x.")]]
    assert not inputs.duplicated().any()
    out = CliRunner().invoke(app, ["explain", str(path), "7"])
    assert out.exit_code == 0, out.output
    for word in ("flexural_strength", "thermal_conductivity", "qLogNEHVI/cost", "sinter_temperature"):
        assert word in out.output, out.output
