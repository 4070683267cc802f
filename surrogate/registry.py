"""Strategies by name: the built-ins (``random``, ``sobol``, ``ax``, ``botorch``) and plug-ins from the
entry-point group ``matloop.strategies``.

A strategy factory (a class, usually) has an ``Options`` attribute, a pydantic model (frozen, with
``extra="forbid"``), and is called as ``factory(space, goal, seed, options)``; what it returns must
satisfy the `Strategy` protocol. Built-ins are imported only when built, so that validating a
campaign does not import Ax or torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from surrogate.base import Strategy, StrategyError
from surrogate.objectives import Goal
from surrogate.options import AxOptions, BotorchOptions, RandomOptions, SobolOptions
from surrogate.peers.options import BaybeOptions, PlainLogEIOptions, PlainUCBOptions
from surrogate.space import SearchSpace

ENTRY_POINT_GROUP = "matloop.strategies"
DEFAULT_STRATEGY = "ax"

_BUILTINS: dict[str, tuple[type[BaseModel], str]] = {
    "random": (RandomOptions, "surrogate.random_search:RandomStrategy"),
    "sobol": (SobolOptions, "surrogate.sobol:SobolStrategy"),
    "ax": (AxOptions, "surrogate.ax_strategy:AxStrategy"),
    "botorch": (BotorchOptions, "surrogate.botorch_strategy:BotorchStrategy"),
    # peers: what a lab would otherwise use (surrogate.peers), for side-by-side benchmarks
    "botorch-logei": (PlainLogEIOptions, "surrogate.peers.plain_botorch:PlainLogEIStrategy"),
    "botorch-ucb": (PlainUCBOptions, "surrogate.peers.plain_botorch:PlainUCBStrategy"),
    "baybe": (BaybeOptions, "surrogate.peers.baybe_peer:BaybeStrategy"),
}


def _plugins() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in _BUILTINS}


def strategy_names() -> list[str]:
    """Built-in names first, then installed plug-ins, sorted."""
    return list(_BUILTINS) + sorted(_plugins())


def _options_model(name: str) -> type[BaseModel]:
    if name in _BUILTINS:
        return _BUILTINS[name][0]
    return _options_of(_factory(name), name)


def _factory(name: str) -> Any:
    if name in _BUILTINS:
        module, attr = _BUILTINS[name][1].split(":")
        return getattr(importlib.import_module(module), attr)
    plugins = _plugins()
    if name not in plugins:
        raise ValueError(f"unknown strategy {name!r}; valid: {', '.join(strategy_names())}")
    try:
        return plugins[name].load()
    except Exception as e:
        raise StrategyError(f"strategy plug-in {name!r} ({plugins[name].value}) failed to load: {e}") from e


def _options_of(factory: Any, name: str) -> type[BaseModel]:
    model = getattr(factory, "Options", None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise StrategyError(f"strategy {name!r} has no 'Options' pydantic model")
    return model


def validate_strategy_options(name: str, options: Mapping[str, Any] | None = None) -> BaseModel:
    """The validated options of strategy ``name``, building nothing. Raises `ValueError` for an unknown
    name and pydantic's `ValidationError` (a `ValueError`, with the field paths) for bad options."""
    if name not in _BUILTINS and name not in _plugins():
        raise ValueError(f"unknown strategy {name!r}; valid: {', '.join(strategy_names())}")
    return _options_model(name).model_validate(dict(options or {}))


def make_strategy(
    name: str, space: SearchSpace, goal: Goal, seed: int, options: Mapping[str, Any] | None = None
) -> Strategy:
    """Builds strategy ``name`` for ``space`` and ``goal``, seeded by ``seed``, with validated ``options``."""
    opts = validate_strategy_options(name, options)
    strategy = _factory(name)(space, goal, seed, opts)
    if not isinstance(strategy, Strategy):
        raise StrategyError(f"strategy {name!r} built a {type(strategy).__name__}, which has no ask/tell")
    return strategy
