"""The reference robot server on loopback (uvicorn in a thread, a free port bound first), with its token in the
environment, and helpers to drive it: its admin endpoints (faults, restarts, counts) and rest-robot options."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from instruments.drivers.rest import RestRobot
from instruments.registry import InstrumentContext
from instruments.sim.server import create_app

TOKEN_ENV = "MATLOOP_TEST_ROBOT_TOKEN"
# inside every input range of two_phase_alloy
CONDITIONS: dict[str, float | str] = {
    "anneal_temperature": 880.0,
    "anneal_time": 2.0,
    "cooling_rate": 20.0,
    "alloy_fraction": 0.04,
    "atmosphere": "argon",
}


@dataclass
class RobotServer:
    """One running server: its URL, token, workdir, and the uvicorn server that runs it."""

    base_url: str
    token: str
    workdir: Path
    server: uvicorn.Server
    thread: threading.Thread
    stopped: bool = field(default=False)

    def http(self, *, token: str | None = None) -> httpx.Client:
        """A plain client with the right token (or ``token``; ``""`` for none)."""
        tok = self.token if token is None else token
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=10.0)

    def stats(self) -> dict[str, Any]:
        with self.http() as c:
            r = c.get("/admin/stats")
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    def inject(self, *rules: dict[str, Any]) -> None:
        with self.http() as c:
            c.post("/admin/faults", json={"rules": list(rules)}).raise_for_status()

    def restart(self, *, forget: bool) -> None:
        with self.http() as c:
            c.post("/admin/restart", json={"forget": forget}).raise_for_status()

    def options(self, **over: Any) -> dict[str, Any]:
        """rest-robot options for this server, fast enough for tests; ``over`` replaces top-level keys."""
        opts: dict[str, Any] = {
            "base_url": self.base_url,
            "hard_limits": {"limits": {}},
            "token_env": TOKEN_ENV,
            "poll_interval_s": 0.02,
            "timeouts": {"connect_s": 2.0, "read_s": 0.5, "write_s": 2.0},
            "retries": {"max_attempts": 4, "backoff_s": 0.01, "max_backoff_s": 0.05},
        }
        opts.update(over)
        return opts

    def driver(self, tmp: Path, **over: Any) -> RestRobot:
        ctx = InstrumentContext(seed=7, workdir=tmp / "agent-lab", campaign="test")
        return RestRobot(context=ctx, **self.options(**over))

    def stop(self) -> None:
        if not self.stopped:
            self.server.should_exit = True
            self.thread.join(timeout=15)
            self.stopped = True
            assert not self.thread.is_alive(), "the robot server did not stop"


def start_server(workdir: Path, token: str, **kwargs: Any) -> RobotServer:
    """Starts the app from ``create_app(workdir=..., **kwargs)`` on a free loopback port; waits until it serves."""
    kwargs.setdefault("seed", 7)
    kwargs.setdefault("time_scale", 2e5)
    kwargs.setdefault("token_env", TOKEN_ENV)
    app = create_app(workdir=workdir, **kwargs)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="robot-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the robot server did not start")
        time.sleep(0.02)
    return RobotServer(f"http://127.0.0.1:{port}", token, workdir, server, thread)


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bearer token, in the environment variable the server and the driver read."""
    value = "tok-" + secrets.token_hex(16)
    monkeypatch.setenv(TOKEN_ENV, value)
    return value


@pytest.fixture
def serve(tmp_path: Path, token: str) -> Iterator[Callable[..., RobotServer]]:
    """Starts servers (default workdir ``tmp_path/robot``) and stops every one at the end of the test."""
    running: list[RobotServer] = []

    def start(**kwargs: Any) -> RobotServer:
        workdir = kwargs.pop("workdir", tmp_path / "robot")
        srv = start_server(workdir, token, **kwargs)
        running.append(srv)
        return srv

    yield start
    for srv in running:
        srv.stop()
    left = [t.name for t in threading.enumerate() if t.name in ("robot-lab", "robot-server") and t.is_alive()]
    assert not left, f"threads left running: {left}"


@pytest.fixture
def robot_server(serve: Callable[..., RobotServer]) -> RobotServer:
    return serve()
