"""folder-microscope against real files written by its twin (``MicroscopePC``) or by hand, parsed by real tifffile:
completeness (size stable and parses), pixel size from the file, naming patterns, faults, ping, options."""

from __future__ import annotations

import asyncio
import glob
import hashlib
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from imaging.io import load_image
from instruments.base import Imager, PermanentFault, Pingable, TransientFault
from instruments.drivers.folder import FolderMicroscope
from instruments.drivers.folder_options import PatternError, expand
from instruments.registry import InstrumentContext, InstrumentSpecError, load_instrument, validate_options
from instruments.sim.microscope_pc import MicroscopePC, Style
from tests.drivers_folder.conftest import ALLOY, driver, sample


def tiff_bytes(sample_id: str = "X", *, style: Style = "resolution", pixel_size_um: float = 0.5) -> bytes:
    """A complete micrograph as the twin would save it."""
    pc = MicroscopePC(Path("."), style=style, pixel_size_um=pixel_size_um)
    return pc.render(sample_id, ALLOY, "k", None)[0][1]


# --- completeness ---------------------------------------------------------------------------------------------


async def test_a_file_is_taken_only_once_it_is_complete(ctx: InstrumentContext, folder: Path) -> None:
    data = tiff_bytes()
    target = folder / "S-1_000.tif"
    with target.open("wb") as f:  # half a file under its final name, then the writer pauses (stable, not parseable)
        f.write(data[: len(data) // 2])
    fm = driver(ctx, folder, truncated_grace_s=30.0)
    task = asyncio.create_task(fm.acquire(sample("S-1")))
    await asyncio.sleep(1.0)  # four times stable_for_s: the half file is stable but does not parse
    assert not task.done()
    with target.open("ab") as f:
        f.write(data[len(data) // 2 :])
    (m,) = await task
    assert m.metadata["sha256"] == hashlib.sha256(data).hexdigest() and m.metadata["size_bytes"] == len(data)
    assert m.path.read_bytes() == data and m.path != target  # the copy in the work folder is the whole file
    assert m.path.is_relative_to(ctx.workdir)


async def test_a_growing_file_is_not_taken_even_though_it_parses(ctx: InstrumentContext, folder: Path) -> None:
    data = tiff_bytes()
    target = folder / "S-1_000.tif"
    target.write_bytes(data)  # complete and parseable, but the writer goes on appending (trailing bytes)
    task = asyncio.create_task(driver(ctx, folder, stable_for_s=2.0).acquire(sample("S-1")))
    for _ in range(10):  # an append every 0.1 s, far more often than stable_for_s
        await asyncio.sleep(0.1)
        with target.open("ab") as f:
            f.write(bytes(100))
        assert not task.done()
    (m,) = await task
    assert m.metadata["size_bytes"] == len(data) + 1000


async def test_twin_writes_in_chunks_and_the_driver_takes_the_whole_file(ctx: InstrumentContext, folder: Path) -> None:
    pc = MicroscopePC(folder, chunk_bytes=8192, chunk_delay_s=0.03, frames=2)
    fm = driver(ctx, folder, min_files=2)
    task = asyncio.create_task(fm.acquire(sample("S-1")))
    written = await pc.image_sample(sample("S-1"))
    got = await task
    assert [m.path.read_bytes() for m in got] == [p.read_bytes() for p in written]
    assert [m.metadata["name"] for m in got] == ["S-1_000.tif", "S-1_001.tif"]


# --- pixel size -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["resolution", "fei", "sim"])
async def test_pixel_size_is_left_to_the_file_and_the_file_carries_it(
    ctx: InstrumentContext, folder: Path, style: Style
) -> None:
    pc = MicroscopePC(folder, style=style, pixel_size_um=0.37)
    fm = driver(ctx, folder)
    task = asyncio.create_task(fm.acquire(sample("S-1")))
    (written,) = await pc.image_sample(sample("S-1"))
    (m,) = await task
    assert m.pixel_size_um is None  # the agent reads it from the file
    assert m.metadata["scale_source"] and m.metadata["file_pixel_size_um"] == pytest.approx(0.37, rel=1e-6)
    loaded = load_image(m.path)
    assert not isinstance(loaded, list)
    assert loaded.pixel_size_um == pytest.approx(pc.pixel_sizes[written], rel=1e-6) == pytest.approx(0.37, rel=1e-6)


async def test_pixel_size_override_accepts_a_file_without_scale(ctx: InstrumentContext, folder: Path) -> None:
    (folder / "S-1_000.tif").write_bytes(MicroscopePC(folder).render("S-1", ALLOY, "k", None, "no_scale")[0][1])
    (m,) = await driver(ctx, folder, pixel_size_um=0.25).acquire(sample("S-1"))
    assert m.pixel_size_um == 0.25 and m.metadata["scale_source"] is None


async def test_a_file_without_scale_fails_naming_the_file_and_the_fix(ctx: InstrumentContext, folder: Path) -> None:
    pc = MicroscopePC(folder, faults={"S-1": "no_scale"})
    task = asyncio.create_task(driver(ctx, folder).acquire(sample("S-1")))
    await pc.image_sample(sample("S-1"))
    with pytest.raises(PermanentFault) as err:
        await task
    assert err.value.code == "no_pixel_size"
    assert str(folder / "S-1_000.tif") in err.value.reason and "pixel_size_um" in err.value.reason


# --- naming ---------------------------------------------------------------------------------------------------


async def test_pattern_picks_only_this_samples_files(ctx: InstrumentContext, folder: Path) -> None:
    data = tiff_bytes()
    for name in ("S-1_000.tif", "S-10_000.tif", "S-2_000.tif", "S-1_000.txt", "S-1_000.tif.tmp", "notes.tif"):
        (folder / name).write_bytes(data)
    got = await driver(ctx, folder, max_files=5).acquire(sample("S-1"))
    assert [m.metadata["name"] for m in got] == ["S-1_000.tif"]


@pytest.mark.parametrize("sid", ["S*1", "S[12]", "S?1", "Ä ü.1"])
async def test_odd_sample_ids_match_themselves_only(ctx: InstrumentContext, folder: Path, sid: str) -> None:
    data = tiff_bytes()
    for other in ("S11", "S1", "S21", "S_1", "Sx1"):
        (folder / f"{other}_000.tif").write_bytes(data)
    (folder / f"{sid}_000.tif").write_bytes(data)
    got = await driver(ctx, folder, max_files=9).acquire(sample(sid))
    assert [m.metadata["name"] for m in got] == [f"{sid}_000.tif"]


async def test_a_file_taken_by_one_sample_is_never_handed_out_again(ctx: InstrumentContext, folder: Path) -> None:
    """Pattern by a condition: two argon samples both match argon_*.tif; each gets its own file, even after a
    restart (the ledger in the work folder), and asking again for the first sample returns the same file."""
    data = tiff_bytes()
    (folder / "argon_001.tif").write_bytes(data)
    fm = driver(ctx, folder, pattern="{atmosphere}_*.tif")
    (a,) = await fm.acquire(sample("S-1"))
    assert a.metadata["name"] == "argon_001.tif"
    restarted = driver(ctx, folder, pattern="{atmosphere}_*.tif", timeout_s=0.5)
    with pytest.raises(PermanentFault, match="already taken by other samples"):
        await restarted.acquire(sample("S-2"))
    (folder / "argon_002.tif").write_bytes(tiff_bytes("Y"))
    (b,) = await restarted.acquire(sample("S-2"))
    assert b.metadata["name"] == "argon_002.tif"
    (again,) = await restarted.acquire(sample("S-1"))
    assert again.path == a.path and again.metadata["sha256"] == a.metadata["sha256"]


async def test_two_lanes_on_a_shared_pattern_get_one_file_each(ctx: InstrumentContext, folder: Path) -> None:
    fm = driver(ctx, folder, pattern="{atmosphere}_*.tif", max_files=1)
    tasks = [asyncio.create_task(fm.acquire(sample(sid))) for sid in ("S-1", "S-2")]
    await asyncio.sleep(0.1)
    data = tiff_bytes()
    for name in ("argon_001.tif", "argon_002.tif"):
        (folder / name).write_bytes(data)
    (a,), (b,) = await asyncio.gather(*tasks)
    assert {a.metadata["name"], b.metadata["name"]} == {"argon_001.tif", "argon_002.tif"}


async def test_min_files_waits_for_all(ctx: InstrumentContext, folder: Path) -> None:
    data = tiff_bytes()
    (folder / "S-1_000.tif").write_bytes(data)
    (folder / "S-1_001.tif").write_bytes(data)
    task = asyncio.create_task(driver(ctx, folder, min_files=3).acquire(sample("S-1")))
    await asyncio.sleep(1.0)
    assert not task.done()
    (folder / "S-1_002.tif").write_bytes(data)
    got = await task
    assert [m.metadata["name"] for m in got] == ["S-1_000.tif", "S-1_001.tif", "S-1_002.tif"]


async def test_done_marker_ends_the_session(ctx: InstrumentContext, folder: Path) -> None:
    pc = MicroscopePC(folder, frames=3, done_marker="{sample_id}.done", chunk_delay_s=0.1)
    fm = driver(ctx, folder, done_marker="{sample_id}.done")  # min_files 1: the marker says when all are there
    task = asyncio.create_task(fm.acquire(sample("S-1")))
    await pc.image_sample(sample("S-1"))
    assert len(await task) == 3
    (folder / "S-2.done").write_text("done\n")
    with pytest.raises(PermanentFault, match=r"done marker 'S-2.done'.*only 0 of min_files=1") as err:
        await fm.acquire(sample("S-2"))
    assert err.value.code == "too_few_files"


# --- faults ---------------------------------------------------------------------------------------------------


async def test_truncated_tiff_fails_naming_the_file(ctx: InstrumentContext, folder: Path) -> None:
    pc = MicroscopePC(folder, faults={"S-1": "truncated"})
    task = asyncio.create_task(driver(ctx, folder).acquire(sample("S-1")))
    (written,) = await pc.image_sample(sample("S-1"))
    with pytest.raises(PermanentFault) as err:
        await task
    assert err.value.code == "corrupt_tiff"
    assert err.value.reason.startswith(f"truncated or corrupt TIFF: {written} (")
    assert written.exists()  # nothing on the microscope PC is touched


async def test_nothing_written_times_out_naming_folder_pattern_found_and_missing(
    ctx: InstrumentContext, folder: Path
) -> None:
    (folder / "S-2_000.tif").write_bytes(tiff_bytes())  # another sample's file: not ours
    with (folder / "S-9_000.tif").open("wb") as f:
        f.write(b"II*\x00")  # ours, but it never gets past its header
    fm = driver(ctx, folder, timeout_s=1.5, stable_for_s=0.1, truncated_grace_s=60.0, min_files=2)
    with pytest.raises(PermanentFault) as err:
        await fm.acquire(sample("S-9"))
    reason = err.value.reason
    assert err.value.code == "timeout" and "timed out after 1.5 s" in reason
    assert str(folder) in reason and "'S-9_*.tif'" in reason
    assert "S-9_000.tif (4 bytes, does not parse" in reason and "S-2" not in reason
    assert "missing 2 more complete file(s) (min_files=2)" in reason
    assert await MicroscopePC(folder, faults={"S-7": "nothing"}).image_sample(sample("S-7")) == []
    with pytest.raises(PermanentFault, match=r"pattern 'S-7_\*.tif': found nothing; missing 1 more"):
        await driver(ctx, folder, timeout_s=0.3).acquire(sample("S-7"))


async def test_missing_folder_is_transient(ctx: InstrumentContext, tmp_path: Path) -> None:
    with pytest.raises(TransientFault, match="does not exist or is not mounted"):
        await driver(ctx, tmp_path / "unmounted").acquire(sample("S-1"))


async def test_bad_placeholder_value_is_permanent(ctx: InstrumentContext, folder: Path) -> None:
    with pytest.raises(PermanentFault, match=r"no value for \{index\}; available: .*sample_id"):
        await driver(ctx, folder, pattern="{sample_id}_{index}.tif").acquire(sample("S-1"))
    with pytest.raises(PermanentFault, match="cannot be part of a file name"):
        await driver(ctx, folder).acquire(sample("a/b"))


# --- request files and the twin serving them -------------------------------------------------------------------


async def test_request_file_is_answered_by_the_twin_and_removed(ctx: InstrumentContext, folder: Path) -> None:
    pc = MicroscopePC(folder, frames=2)
    server = asyncio.create_task(pc.serve(poll_s=0.02))
    try:
        s = sample("S-1", key="k-1", anneal_temperature=np.float64(850.0))  # numpy values are written as numbers
        got = await driver(ctx, folder, request_file=True, min_files=2).acquire(s)
    finally:
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)
    assert len(got) == 2 and not pc.errors
    (request,) = pc.requests
    assert request["sample_id"] == "S-1" and request["key"] == "k-1" and request["conditions"] == ALLOY
    assert request["pattern"] == "S-1_*.tif" and request["campaign"] == "camp"
    assert not (folder / "S-1.request.json").exists()


def test_twin_serves_from_a_thread(ctx: InstrumentContext, folder: Path) -> None:
    pc = MicroscopePC(folder)
    with pc.serving_in_thread():
        (m,) = asyncio.run(driver(ctx, folder, request_file=True).acquire(sample("S-1")))
    assert m.metadata["name"] == "S-1_000.tif" and pc.served["S-1"] == [folder / "S-1_000.tif"]


# --- ping -----------------------------------------------------------------------------------------------------


async def test_ping_healthy_and_unhealthy(ctx: InstrumentContext, folder: Path, tmp_path: Path) -> None:
    (folder / "S-1_000.tif").write_bytes(b"x")
    h = await driver(ctx, folder).ping()
    assert h.ok and h.state == "ready" and h.info["newest_file"] == "S-1_000.tif" and h.info["free_gb"] > 0
    assert "newest S-1_000.tif written" in h.detail
    missing = await driver(ctx, tmp_path / "nowhere").ping()
    assert not missing.ok and missing.state == "missing" and "mounted" in missing.detail
    full = await driver(ctx, folder, min_free_gb=1e9).ping()
    assert not full.ok and full.state == "disk_full" and "min_free_gb" in full.detail
    if os.geteuid() != 0:  # root reads anything
        folder.chmod(0o000)
        try:
            assert (await driver(ctx, folder).ping()).state == "unreadable"
        finally:
            folder.chmod(0o755)


# --- options and registration -----------------------------------------------------------------------------------


def test_registered_and_speaks_the_protocols(ctx: InstrumentContext, folder: Path) -> None:
    fm = load_instrument("folder-microscope", "imager", {"folder": str(folder)}, ctx)
    assert isinstance(fm, FolderMicroscope) and isinstance(fm, Imager) and isinstance(fm, Pingable)
    assert FolderMicroscope.simulated is False and FolderMicroscope.outputs({"folder": str(folder)}) == {}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"folder": "relative/dir"}, "must be an absolute path"),
        ({"folder": "/x", "pattern": "*.tif"}, "names no placeholder"),
        ({"folder": "/x", "pattern": "{sample_id!r}.tif"}, "is not allowed"),
        ({"folder": "/x", "pattern": "{sample_id.__class__}.tif"}, "is not allowed"),
        ({"folder": "/x", "pattern": "../{sample_id}.tif"}, "must not leave the folder"),
        ({"folder": "/x", "pattern": "/data/{sample_id}.tif"}, "must be relative"),
        ({"folder": "/x", "min_files": 3, "max_files": 2}, "below min_files"),
        ({"folder": "/x", "stable_s": 2}, "stable_s"),
        ({"folder": "/x", "pixel_size_um": 0}, "pixel_size_um"),
    ],
)
def test_bad_options_are_named(options: dict[str, object], message: str) -> None:
    with pytest.raises(InstrumentSpecError, match=re.escape(message)):
        validate_options("folder-microscope", options)


# --- pattern expansion (property) --------------------------------------------------------------------------------

ODD_IDS = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=20).filter(
    lambda s: s not in (".", "..") and len(s.encode()) < 120
)


@settings(max_examples=60, deadline=None)
@given(sid=ODD_IDS, other=ODD_IDS)
@example(sid="A*[1]?", other="AB[1]x")
@example(sid="[!a]", other="b")
@example(sid=".hidden", other=".hidden2")
def test_placeholder_values_never_become_wildcards(sid: str, other: str) -> None:
    """The expanded glob finds exactly the files whose names start with the literal id and '_' and end '.tif'."""
    pattern = expand("{sample_id}_*.tif", {"sample_id": sid})
    wild = re.sub(r"[*?\[\]!]", "x", sid)
    names = {f"{sid}_000.tif", f"{other}_000.tif", f"{wild}_000.tif", f"x{sid}_1.tif", f"{sid}x_1.tif", f"{sid}.tif"}
    with tempfile.TemporaryDirectory() as d:
        for name in names:
            Path(d, name).write_bytes(b"")
        found = set(glob.glob(pattern, root_dir=d))
    assert found == {n for n in names if n.startswith(sid + "_") and n.endswith(".tif") and len(n) >= len(sid) + 5}


@given(sid=st.sampled_from(["", ".", "..", "a/b", "/", "x\x00y"]))
def test_values_that_cannot_be_file_names_are_refused(sid: str) -> None:
    with pytest.raises(PatternError, match="cannot be part of a file name"):
        expand("{sample_id}_*.tif", {"sample_id": sid})


def test_condition_placeholders_with_format() -> None:
    values = {"sample_id": "S-1", "anneal_temperature": 851.26, "atmosphere": "argon"}
    assert expand("{atmosphere}/{anneal_temperature:.0f}C_{sample_id}_*.tif", values) == "argon/851C_S-1_*.tif"
    with pytest.raises(PatternError, match="cannot format"):
        expand("{atmosphere:.0f}", values)
