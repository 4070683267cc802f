"""A campaign whose imager is folder-microscope, served by its twin from a thread (another machine, in effect):
one sample's TIFF is truncated; that experiment fails naming the file, the others complete, the campaign finishes.

The campaign file names ``sim-furnace`` (its inputs check the space), but the test swaps in the shipped
``FakeSynthesizer``: a folder-watching microscope runs the loop on the real clock, and the furnace sleeps lab hours.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from agent.assemble import build_lab
from agent.campaign import Campaign
from agent.lifecycle import ExperimentState as S
from instruments.drivers.folder import FolderMicroscope
from instruments.sim.microscope_pc import MicroscopePC
from instruments.testing import FakeSynthesizer

CAMPAIGN = """\
schema_version: 1
name: folderlab
seed: 3
space:
  parameters:
    - {{name: anneal_temperature, type: float, low: 820, high: 920, unit: degC}}
    - {{name: anneal_time, type: float, low: 0.5, high: 4, unit: h, log_scale: true}}
    - {{name: cooling_rate, type: float, low: 2, high: 40, unit: K/s, log_scale: true}}
    - {{name: alloy_fraction, type: float, low: 0.01, high: 0.05, unit: "1"}}
    - {{name: atmosphere, type: categorical, choices: [argon, vacuum]}}
objectives:
  - {{name: grain_size_um, direction: minimize, unit: um}}
budget: {{experiments: 4, lanes: 2}}
retries: {{max_attempts: 3, backoff_s: 0.1}}
instruments:
  synthesizer:
    type: sim-furnace
    options: {{system: two_phase_alloy}}
  imager:
    type: folder-microscope
    options:
      folder: {folder}
      pattern: "{{sample_id}}_*.tif"
      request_file: true
      stable_for_s: 0.3
      poll_s: 0.05
      timeout_s: 60
      truncated_grace_s: 0.5
imaging: {{pipeline: classical, overlays: false}}
strategy: {{name: sobol}}
"""


async def test_campaign_goes_on_when_the_microscope_writes_a_truncated_tiff(tmp_path: Path) -> None:
    folder = tmp_path / "sem-pc"
    folder.mkdir()
    path = tmp_path / "folderlab.yaml"
    path.write_text(CAMPAIGN.format(folder=folder))
    c = Campaign.from_yaml(path)
    furnace = FakeSynthesizer()  # names samples S-1, S-2, ... in the order it gets requests
    lab = dataclasses.replace(build_lab(c.spec, c.location.workdir), synthesizer=furnace)
    assert isinstance(lab.imager, FolderMicroscope)
    pc = MicroscopePC(folder, seed=3, faults={"S-2": "truncated"})
    with pc.serving_in_thread():
        result = await c.arun(lab=lab)
    row = c.row
    assert row is not None
    assert result.status == "completed" and not pc.errors
    assert sorted(pc.served) == ["S-1", "S-2", "S-3", "S-4"]

    df = c.table().set_index("key")
    assert len(df) == 4
    bad_key = next(k for k, s in furnace.made.items() if s.sample_id == "S-2")
    bad = df.loc[bad_key]
    assert bad["state"] == S.FAILED and bad["failure_code"] == "corrupt_tiff"
    assert f"truncated or corrupt TIFF: {folder / 'S-2_000.tif'}" in bad["failure_reason"]
    done = df.drop(index=bad_key)
    assert (done["state"] == S.COMPLETED).all()
    assert done["y.grain_size_um"].gt(0).all() and done["y.grain_size_um.sigma"].gt(0).all()

    # nothing recorded is lost: each completed experiment's micrograph is in the store with the file's own pixel
    # size, the twin's truncated file is still on the PC, and the accepted files are copied into the work folder
    for exp in c.store.experiments(row.id or -1):
        if exp.state == S.COMPLETED:
            (m,) = c.store.micrographs(exp.id or -1)
            assert c.store.file_path(m).is_file()
            assert m.pixel_size_um == pc.pixel_sizes[folder / m.meta["name"]]
    assert (folder / "S-2_000.tif").stat().st_size > 0
    assert len(list((c.location.workdir / "folder_microscope").glob("*/*.tif"))) == 3
    assert not list(folder.glob("*.request.json"))
    c.close()
