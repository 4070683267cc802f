from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import EntryPoint
from typing import Any

import pytest
from pydantic import ValidationError

import imaging.registry as registry
from imaging.base import Feature, ImageAnalyzer, ImageInput
from imaging.pipeline import ClassicalPipeline
from imaging.registry import analyzer_outputs, available, make_analyzer


class FakeAnalyzer:
    """A plug-in as a third-party package would ship it: no inheritance, just the protocol."""

    name = "fake"
    version = "9"

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def outputs(self) -> dict[str, str]:
        return {"roughness_um": "um"}

    def analyze(self, images: Sequence[ImageInput]) -> list[Feature]:
        return [Feature("roughness_um", self.scale, 0.1, "um", "fake")]


class NotAnAnalyzer:
    def __init__(self, **options: Any) -> None:
        pass


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [
        EntryPoint("fake", f"{__name__}:FakeAnalyzer", registry.GROUP),
        EntryPoint("broken", f"{__name__}:NotAnAnalyzer", registry.GROUP),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep for ep in eps if ep.group == group])


def test_builtin_classical() -> None:
    analyzer = make_analyzer("classical", {"subfields": 4})
    assert isinstance(analyzer, ClassicalPipeline) and isinstance(analyzer, ImageAnalyzer)
    assert analyzer.options.subfields == 4
    assert analyzer_outputs("classical", {})["grain_size_um"] == "um"
    assert "classical" in available()


def test_unknown_name_lists_the_valid_ones(plugins: None) -> None:
    with pytest.raises(ValueError, match=r"unknown imaging pipeline 'nosuch'; valid: broken, classical, fake, unet"):
        make_analyzer("nosuch", {})
    with pytest.raises(ValueError, match="unknown imaging pipeline"):
        analyzer_outputs("nosuch", {})


def test_bad_options_raise_validation_error_without_reading_images() -> None:
    with pytest.raises(ValidationError) as err:
        analyzer_outputs("classical", {"subfields": 0, "colour": "red"})
    assert {e["loc"][0] for e in err.value.errors()} == {"subfields", "colour"}
    with pytest.raises(ValidationError):
        make_analyzer("classical", {"min_pore_area_um2": "big"})


def test_plugins_from_entry_points(plugins: None) -> None:
    fake = make_analyzer("fake", {"scale": 2.0})
    assert fake.analyze([])[0].value == 2.0
    assert analyzer_outputs("fake", {}) == {"roughness_um": "um"}
    with pytest.raises(ValueError, match="does not implement ImageAnalyzer"):
        make_analyzer("broken", {})
