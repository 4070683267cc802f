"""The strategy registry: built-ins, plug-ins by entry point, options validated without building."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

import surrogate.registry as registry
from surrogate.base import Observation, Proposal, Strategy, StrategyError
from surrogate.objectives import Goal
from surrogate.options import AxOptions, SobolOptions
from surrogate.random_search import RandomStrategy
from surrogate.space import SearchSpace
from tests.surrogate.problems import maximize, square


class EchoOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    value: float = 0.5


class EchoStrategy:
    """A plug-in that always proposes the same x (a stand-in for a lab's own strategy)."""

    Options = EchoOptions

    def __init__(self, space: SearchSpace, goal: Goal, seed: int, options: EchoOptions) -> None:
        self.options = options

    def ask(self, n: int, pending: Any) -> list[Proposal]:
        return [Proposal(conditions={"x": self.options.value, "y": 0.5}, generator="echo")] * n

    def tell(self, results: Any) -> None:
        pass


@pytest.fixture
def echo_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [
        EntryPoint(name="echo", value=f"{__name__}:EchoStrategy", group=registry.ENTRY_POINT_GROUP),
        EntryPoint(name="sobol", value=f"{__name__}:EchoStrategy", group=registry.ENTRY_POINT_GROUP),
        EntryPoint(name="broken", value="no_such_module_xyz:Thing", group=registry.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: [e for e in eps if e.group == group])


def test_builtin_names_and_unknown_names() -> None:
    assert registry.strategy_names()[:3] == ["random", "sobol", "ax"]
    assert registry.DEFAULT_STRATEGY == "ax"
    with pytest.raises(ValueError, match=r"unknown strategy 'bayes'; valid: random, sobol, ax"):
        registry.make_strategy("bayes", square(), maximize(), 0, {})
    with pytest.raises(ValueError, match="valid: random, sobol, ax"):
        registry.validate_strategy_options("bayes", {})


def test_options_are_validated_frozen_and_strict() -> None:
    opts = registry.validate_strategy_options("ax", {"initial_points": 4, "method": "fast"})
    assert opts == AxOptions(initial_points=4)
    with pytest.raises(ValidationError, match="initial_pionts"):
        registry.validate_strategy_options("ax", {"initial_pionts": 4})
    with pytest.raises(ValidationError, match="method"):
        registry.validate_strategy_options("ax", {"method": "slow"})
    with pytest.raises(ValidationError, match="max_draws"):
        registry.validate_strategy_options("sobol", {"max_draws": 0})
    with pytest.raises(ValidationError):
        SobolOptions().max_draws = 3  # type: ignore[misc]


def test_make_builtin() -> None:
    s = registry.make_strategy("random", square(), maximize(), 4, {"max_draws": 100})
    assert isinstance(s, RandomStrategy) and isinstance(s, Strategy)
    assert s.options.max_draws == 100
    (p,) = s.ask(1, [])
    s.tell([Observation(conditions=p.conditions, values={"f": (0.0, 0.1)})])


@pytest.mark.usefixtures("echo_plugin")
def test_plugins_are_found_by_entry_point_and_cannot_shadow_builtins() -> None:
    assert registry.strategy_names() == [
        "random",
        "sobol",
        "ax",
        "botorch",
        "botorch-logei",
        "botorch-ucb",
        "baybe",
        "broken",
        "echo",
    ]
    assert registry.validate_strategy_options("echo", {"value": 0.25}) == EchoOptions(value=0.25)
    with pytest.raises(ValidationError):
        registry.validate_strategy_options("echo", {"valeu": 0.25})
    s = registry.make_strategy("echo", square(), maximize(), 0, {"value": 0.25})
    assert s.ask(1, [])[0].conditions["x"] == 0.25
    assert registry.make_strategy("sobol", square(), maximize(), 0, {}).__class__.__name__ == "SobolStrategy"
    with pytest.raises(StrategyError, match=r"'broken'.*failed to load"):
        registry.make_strategy("broken", square(), maximize(), 0, {})
