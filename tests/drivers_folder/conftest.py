"""Shared pieces for the folder-microscope tests: a watched folder, a work folder, conditions, a fast driver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from instruments.base import ConditionValue, Sample
from instruments.drivers.folder import FolderMicroscope
from instruments.registry import InstrumentContext

ALLOY: dict[str, ConditionValue] = {
    "anneal_temperature": 850.0,
    "anneal_time": 2.0,
    "cooling_rate": 10.0,
    "alloy_fraction": 0.03,
    "atmosphere": "argon",
}
#: fast but real: poll every 50 ms, a file is stable after 0.25 s unchanged
FAST: dict[str, Any] = {"stable_for_s": 0.25, "poll_s": 0.05, "timeout_s": 30.0, "truncated_grace_s": 0.5}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The folder the microscope PC writes into."""
    f = tmp_path / "sem-pc"
    f.mkdir()
    return f


@pytest.fixture
def ctx(tmp_path: Path) -> InstrumentContext:
    return InstrumentContext(seed=5, workdir=tmp_path / "work", campaign="camp")


def sample(sample_id: str, key: str = "", **conditions: ConditionValue) -> Sample:
    return Sample(sample_id, key or f"key-{sample_id}", {**ALLOY, **conditions}, 0.0)


def driver(ctx: InstrumentContext, folder: Path, **options: Any) -> FolderMicroscope:
    return FolderMicroscope(context=ctx, folder=str(folder), **{**FAST, **options})
