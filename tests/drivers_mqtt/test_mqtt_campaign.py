"""A whole campaign through the ``mqtt-robot`` driver: the agent, the real broker, the twin dropping off mid-run."""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any

from agent import Campaign
from agent.lifecycle import ExperimentState as S
from instruments.sim.mqtt_robot import TwinFaults

from .conftest import wait_until

CAMPAIGN = """\
schema_version: 1
name: mqtt_lab
seed: 11
# slow cooling, below the solidus: no sample fails for material reasons, so every experiment must complete
space:
  parameters:
    - {{name: anneal_temperature, type: float, low: 700, high: 1000, unit: degC}}
    - {{name: anneal_time, type: float, low: 0.5, high: 8, unit: h, log_scale: true}}
    - {{name: cooling_rate, type: float, low: 0.5, high: 8, unit: K/s, log_scale: true}}
    - {{name: alloy_fraction, type: float, low: 0.0, high: 0.1, unit: "1"}}
    - {{name: atmosphere, type: categorical, choices: [argon, vacuum]}}
objectives:
  - {{name: strength_ductility, direction: maximize, unit: GPa*%}}
budget: {{experiments: 5, lanes: 2}}
retries: {{max_attempts: 8, backoff_s: 0.2, backoff_factor: 1.5}}
instruments:
  synthesizer:
    type: mqtt-robot
    options:
      host: 127.0.0.1
      port: 1883
      prefix: {prefix}
      hard_limits: {{limits: {{anneal_temperature: {{low: 600, high: 1100, unit: degC}}}}}}
      timeouts: {{connect_s: 5, silence_s: 3, status_s: 3}}
  characterizer:
    type: sim-tester
    options: {{system: two_phase_alloy, duration_h: 0}}
strategy:
  name: sobol
"""


def test_campaign_runs_through_mqtt_with_the_robot_dropping_off(make_twin: Any, prefix: str, tmp_path: Path) -> None:
    twin = make_twin(TwinFaults(offline=frozenset({2}), offline_for_s=0.5))
    path = tmp_path / "mqtt_lab.yaml"
    path.write_text(CAMPAIGN.format(prefix=prefix))
    c = Campaign.from_yaml(path)
    try:
        result = c.run()
        assert result.status == "completed", result.stop_reason
        df = c.table()
        assert len(df) == 5 and set(df["state"]) == {S.COMPLETED}, df[["state", "failure_reason"]]
        exps = c.store.experiments(c._row_id())
        keys = [e.key for e in exps]
        assert len(set(keys)) == 5
        # one sample per key, and the sample the agent recorded is the one the robot made
        for e in exps:
            assert twin.samples_made(e.key) == 1, e.key
            row = c.store.sample(e.id)  # type: ignore[arg-type]
            journal = twin.furnace.journal.get(e.key)
            assert row is not None and journal is not None
            assert row.sample_id == journal.data["sample"]["sample_id"]
        assert twin.samples_made() == 5  # nothing made that the agent does not know of
        assert sum(twin.received.values()) > 5  # the dropped request was sent again (same key)
        assert any(e.attempt > 1 for e in exps)  # the agent retried with the same key
        gc.collect()  # the agent does not close its instruments: the driver lets go when it is dropped
        assert wait_until(lambda: not [t for t in threading.enumerate() if "client-matloop-" in t.name])
    finally:
        c.close()
