"""A campaign keeps the analyzer's objects CSV with each analyzed experiment; failing to write it fails nothing."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from agent import Campaign
from agent.lifecycle import ExperimentState as S
from imaging.neural import NeuralPipeline
from imaging.objects import COLUMNS
from tests.agent.test_e2e import small_campaign


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)  # the test machine is shared


def test_campaign_stores_objects_csv(tmp_path: Path) -> None:
    c = Campaign.from_yaml(small_campaign(tmp_path, name="objects", experiments=2, strategy="sobol"))
    c.run()
    done = [int(e) for e in c.table().query("state == @S.COMPLETED")["experiment"]]
    assert done
    for eid in done:
        [art] = c.store.artifacts(eid, "objects")
        assert art.meta == {"name": "unet.objects.csv"}
        with open(c.store.file_path(art), newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert tuple(rows[0]) == COLUMNS and any(r["kind"] == "grain" for r in rows)
    c.close()


def test_objects_failure_is_logged_and_the_experiment_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: NeuralPipeline, out_dir: Path) -> list[Path]:
        raise OSError("disk full")

    monkeypatch.setattr(NeuralPipeline, "write_objects", broken)
    c = Campaign.from_yaml(small_campaign(tmp_path, name="noobjects", experiments=1, strategy="sobol"))
    c.run()
    df = c.table()
    assert (df["state"] == S.COMPLETED).all()
    row = c.row
    assert row is not None
    failed = [e for e in c.store.events(row.id) if e.kind == "objects_failed"]
    assert failed and failed[0].payload == {"error": "disk full"}
    assert not c.store.artifacts(int(df["experiment"].iloc[0]), "objects")
    c.close()
