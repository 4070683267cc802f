"""The README's REST walk-through as a user types it: `matloop sim serve` in one process, `matloop driver check`
and `matloop run campaigns/rest_robot.yaml` in others (port and budget changed, nothing else)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
MATLOOP = [sys.executable, "-c", "from agent.cli import main; main()"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_example_rest_campaign_runs_against_sim_serve(tmp_path: Path) -> None:
    port = _free_port()
    token = secrets.token_hex(16)
    env = {**os.environ, "MATLOOP_ROBOT_TOKEN": token, "OMP_NUM_THREADS": "1"}
    text = (ROOT / "campaigns" / "rest_robot.yaml").read_text()
    path = tmp_path / "rest_robot.yaml"
    path.write_text(text.replace("127.0.0.1:8765", f"127.0.0.1:{port}").replace("experiments: 12", "experiments: 4"))
    server = subprocess.Popen(
        [*MATLOOP, "sim", "serve", "--port", str(port), "--time-scale", "360000", "--workdir", str(tmp_path / "robot")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 401:
                    break  # up, and refusing a request without the token
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        check = subprocess.run([*MATLOOP, "driver", "check", str(path)], env=env, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "rest-robot — ready" in check.stdout
        run = subprocess.run(
            [*MATLOOP, "run", str(path), "-q"], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300
        )
        assert run.returncode == 0, run.stdout + run.stderr
        status = subprocess.run([*MATLOOP, "status", str(path)], env=env, capture_output=True, text=True)
        assert "completed" in status.stdout
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    assert token not in out and token not in run.stdout + run.stderr
