"""Kill a running campaign with SIGKILL at several points, resume it each time: every experiment completes
exactly once, nothing recorded is lost, and the furnace never makes a sample twice."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest

from agent.lifecycle import ALLOWED, ExperimentState

from .test_e2e import small_campaign

BUDGET = 10


def _events(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("select count(*) from event").fetchone()[0])
    except sqlite3.OperationalError:  # schema not created yet
        return 0


def _run_until(args: list[str], cwd: Path, db: Path, kill_at: int | None) -> tuple[int, bool]:
    exe = str(Path(sys.executable).parent / "matloop")
    proc = subprocess.Popen([exe, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        if kill_at is not None and _events(db) >= kill_at:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return proc.returncode, True
        time.sleep(0.002)
    if proc.poll() is None:
        proc.kill()
        pytest.fail("campaign did not finish in time")
    assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""
    return proc.returncode, False


@pytest.mark.slow
def test_sigkill_at_several_points_then_resume(tmp_path: Path) -> None:
    path = small_campaign(tmp_path, name="killme", experiments=BUDGET, strategy="sobol")
    text = path.read_text().replace("lanes: 2", "lanes: 3")
    path.write_text(text)
    db = tmp_path / "killme.matloop.db"

    kills = 0
    before = 0
    for i, kill_at in enumerate([5, 19, 37, 58, None]):
        args = ["run", str(path), "-q"] if i == 0 else ["resume", str(path), "-q"]
        _, killed = _run_until(args, tmp_path, db, kill_at)
        kills += killed
        now = _events(db)
        assert now >= before  # nothing recorded is ever lost
        before = now
    assert kills >= 3, "the campaign finished before the test could kill it"

    conn = sqlite3.connect(db)
    status = conn.execute("select status from campaign").fetchone()[0]
    assert status == "completed"
    rows = conn.execute(
        "select id, idx, key, state from (select id, `index` as idx, key, state from experiment)"
    ).fetchall()
    assert sorted(r[1] for r in rows) == list(range(1, BUDGET + 1))  # none lost, none duplicated
    assert all(r[3] in ("completed", "failed") for r in rows), rows
    assert len({r[2] for r in rows}) == BUDGET

    # each experiment walked a legal path, reaching each state once
    for eid, *_ in rows:
        path_states = [
            s
            for (s,) in conn.execute(
                "select to_state from event where experiment_id=? and kind='transition' order by id", (eid,)
            )
        ]
        assert len(path_states) == len(set(path_states)), path_states
        for a, b in pairwise(path_states):
            assert ExperimentState(b) in ALLOWED[ExperimentState(a)], path_states
        # one sample row and no duplicated micrographs
        assert conn.execute("select count(*) from sample where experiment_id=?", (eid,)).fetchone()[0] <= 1
        shas = [s for (s,) in conn.execute("select sha256 from micrograph where experiment_id=?", (eid,))]
        assert len(shas) == len(set(shas))

    # the furnace made each sample once: one 'done' (or 'failed') record per key in its journal
    journal = tmp_path / "killme.matloop" / "lab" / "sim_furnace_journal.jsonl"
    outcomes = Counter(
        rec["key"]
        for rec in map(json.loads, journal.read_text().splitlines())
        if rec.get("event") in ("done", "failed")
    )
    assert set(outcomes) >= {r[2] for r in rows if r[3] == "completed"}
    assert all(n == 1 for n in outcomes.values()), outcomes
    conn.close()


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_resume_finishes(tmp_path: Path) -> None:
    path = small_campaign(tmp_path, name="ctrlc", experiments=8, strategy="sobol")
    db = tmp_path / "ctrlc.matloop.db"
    exe = str(Path(sys.executable).parent / "matloop")
    # a shell that starts the test suite in the background ignores SIGINT, and the child would inherit that
    proc = subprocess.Popen(
        [exe, "run", str(path), "-q"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while _events(db) < 12 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert proc.poll() is None, "finished before Ctrl-C could be sent"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"matloop resume" in err
    with sqlite3.connect(db) as conn:
        assert conn.execute("select status from campaign").fetchone()[0] == "interrupted"
    _run_until(["resume", str(path), "-q"], tmp_path, db, None)
    with sqlite3.connect(db) as conn:
        states = [s for (s,) in conn.execute("select state from experiment")]
        assert conn.execute("select status from campaign").fetchone()[0] == "completed"
    assert len(states) == 8 and set(states) <= {"completed", "failed"}
