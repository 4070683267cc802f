"""Instruments are found through entry points: ours, and one from a separately installed package."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from instruments.base import Synthesizer
from instruments.registry import InstrumentContext, InstrumentSpecError, available, load_instrument

ROBOT = '''
from instruments.base import RequestState, RequestStatus, Sample


class Robot:
    """A third-party synthesizer: needs nothing from matloop but the protocol."""

    def __init__(self, *, context, speed=1.0):
        self.context, self.speed = context, speed

    async def synthesize(self, request):
        return Sample(request.key, request.key, dict(request.conditions), 1.0)

    async def status(self, key):
        return RequestStatus(key, RequestState.UNKNOWN)
'''

PYPROJECT = """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "myrobot-matloop-plugin"
version = "0.0.1"

[project.entry-points."matloop.instruments"]
my-robot = "myrobot:Robot"

[tool.setuptools]
py-modules = ["myrobot"]
"""


def test_our_instruments_are_registered(ctx: InstrumentContext) -> None:
    if "sim-furnace" not in available():
        pytest.skip("matloop is not pip-installed here, so its entry points are not registered")
    furnace = load_instrument("sim-furnace", "synthesizer", {"system": "porous_ceramic"}, ctx)
    assert isinstance(furnace, Synthesizer)
    load_instrument("sim-sem", "imager", {}, ctx)
    load_instrument("sim-tester", "characterizer", {"system": "porous_ceramic"}, ctx)
    with pytest.raises(InstrumentSpecError, match="rejected its options"):
        load_instrument("sim-furnace", "synthesizer", {"sytem": "x"}, ctx)


def test_instrument_from_a_separately_installed_package(
    tmp_path: Path, ctx: InstrumentContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    (src / "myrobot.py").write_text(textwrap.dedent(ROBOT))
    target = tmp_path / "site"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--disable-pip-version-check",
        "--target",
        str(target),
        str(src),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    if done.returncode != 0:
        pytest.fail(f"pip could not install the test plug-in:\n{done.stdout}\n{done.stderr}")
    assert list(target.glob("myrobot_matloop_plugin-*.dist-info"))
    monkeypatch.syspath_prepend(str(target))  # undone after the test, like an uninstall
    monkeypatch.delitem(sys.modules, "myrobot", raising=False)
    try:
        assert available()["my-robot"] == "myrobot:Robot"
        robot = load_instrument("my-robot", "synthesizer", {"speed": 2.0}, ctx)
        assert isinstance(robot, Synthesizer) and getattr(robot, "speed", None) == 2.0
        with pytest.raises(InstrumentSpecError, match="does not implement the imager protocol"):
            load_instrument("my-robot", "imager", {}, ctx)
    finally:
        sys.modules.pop("myrobot", None)
    monkeypatch.undo()
    assert "my-robot" not in available()
