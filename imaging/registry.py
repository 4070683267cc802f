"""Finds image analyzers by name: the built-ins ``classical`` and ``unet`` and plug-ins in the entry-point group
``matloop.imaging`` from any installed package.

A plug-in class is built as ``cls(**options)`` and must satisfy ``ImageAnalyzer``. It may declare a classmethod
``outputs_for(options) -> dict[name, unit]`` so that a campaign can be checked without building it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from imaging.base import ImageAnalyzer

GROUP = "matloop.imaging"
# imported on first use: the neural pipeline pulls in torch, which `matloop validate` should not pay for
BUILTIN: dict[str, str] = {"classical": "imaging.pipeline:ClassicalPipeline", "unet": "imaging.neural:NeuralPipeline"}


def available() -> dict[str, str]:
    """Analyzer names and the object each points to (built-ins win over a plug-in of the same name)."""
    found = {ep.name: ep.value for ep in entry_points(group=GROUP)}
    found.update(BUILTIN)
    return found


def analyzer_class(name: str) -> Any:
    """The class registered as ``name``; ``ValueError`` listing the valid names if there is none."""
    if name in BUILTIN:
        module, _, qualname = BUILTIN[name].partition(":")
        return getattr(importlib.import_module(module), qualname)
    eps = {ep.name: ep for ep in entry_points(group=GROUP)}
    if name not in eps:
        raise ValueError(f"unknown imaging pipeline {name!r}; valid: {', '.join(sorted(available()))}")
    return eps[name].load()


def make_analyzer(name: str, options: Mapping[str, Any] | None = None) -> ImageAnalyzer:
    """Builds analyzer ``name`` with ``options``. Bad options raise pydantic ``ValidationError`` (for the
    built-in; plug-ins may raise ``ValueError``/``TypeError``); an unknown name or a class that is not an
    ``ImageAnalyzer`` raises ``ValueError``."""
    cls = analyzer_class(name)
    analyzer = cls(**dict(options or {}))
    if not isinstance(analyzer, ImageAnalyzer):
        raise ValueError(f"imaging pipeline {name!r} ({cls!r}) does not implement ImageAnalyzer")
    return analyzer


def analyzer_outputs(name: str, options: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Feature names and units that ``name`` reports with ``options``, reading no image; validates the options."""
    cls = analyzer_class(name)
    describe = getattr(cls, "outputs_for", None)
    if callable(describe):
        return dict(describe(dict(options or {})))
    return dict(make_analyzer(name, options).outputs())
