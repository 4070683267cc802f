"""Sweep files: errors name the file, line and field; seeds and baselines expand as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.bench.spec import load_sweep, parse_sweep
from agent.errors import ConfigError

BASE = "name: s\nseeds: 2\nbudgets: [8]\n"


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_sweep(text, "s.yaml")
    return exc.value.problems


def test_unknown_key_names_field_line_and_valid_keys() -> None:
    text = BASE + "problems:\n  - name: b\n    kind: function\n    function: branin\n    noise: 0.1\n"
    assert _problems(text) == [
        "s.yaml:8: problems[0].noise: unknown key 'noise'; valid keys here: name, kind, function, dim, noise_sigma"
    ]


def test_bad_values_name_field_and_line() -> None:
    text = "name: s\nseeds: 2\nbudgets:\n  - 8\n  - 0\nproblems:\n  - {name: b, kind: function, function: branin}\n"
    assert _problems(text) == ["s.yaml:5: budgets[1]: Input should be greater than or equal to 1"]
    text = BASE + "problems:\n  - name: b\n    kind: function\n    function: branin\n    dim: 3\n"
    assert _problems(text) == ["s.yaml:8: problems[0].dim: branin is 2-dimensional, got 3"]
    text = (
        BASE + "problems:\n  - {name: b, kind: function, function: branin}\nstrategies:\n  - name: botorch\n"
        "    options: {bogus: 1}\n"
    )
    assert _problems(text)[0].startswith("s.yaml:8: strategies[0].options.bogus:")
    text = "name: s\nbudgets: [8]\nproblems:\n  - {name: b, kind: function, function: branin}\n"
    assert _problems(text) == ["s.yaml:1: seeds: required field 'seeds' is missing"]


def test_data_problems_check_columns_paths_and_strategies(tmp_path: Path) -> None:
    data = (
        "    data:\n      path: t.csv\n      header: false\n      inputs: {a: x}\n"
        "      objectives: [{name: y, column: 1, direction: minimize}]\n"
    )
    text = BASE + "problems:\n  - name: p\n    kind: pool\n" + data
    assert _problems(text) == [
        "s.yaml:10: problems[0].data.inputs.a: column 'x' is a name, but the file has no header; give an index"
    ]
    missing = _problems(text.replace("{a: x}", "{a: 0}"))
    assert len(missing) == 1 and missing[0].startswith("s.yaml:8: problems[0].data.path: no such file 't.csv'")
    (tmp_path / "t.csv").write_text("0.1,1\n0.2,2\n")
    sweep = tmp_path / "s.yaml"
    sweep.write_text(text.replace("{a: x}", "{a: 0}") + "strategies:\n  - {name: ax}\n")
    with pytest.raises(ConfigError) as exc:
        load_sweep(sweep)
    assert exc.value.problems == [
        f"{sweep}:13: strategies[0].name: 'ax' cannot run on pool problems (p); valid there: "
        "random, sobol, botorch, botorch-logei, botorch-ucb, ax-pool, baybe"
    ]
    sweep.write_text(text.replace("{a: x}", "{a: 0}"))
    spec = load_sweep(sweep)
    assert spec.problems[0].data.path == str(tmp_path / "t.csv")  # type: ignore[union-attr]


def test_seed_count_and_baselines() -> None:
    spec = parse_sweep(
        BASE + "problems:\n  - {name: b, kind: function, function: branin}\n"
        "strategies:\n  - {name: botorch, label: bo}\n"
    )
    assert spec.seeds == (0, 1)
    assert [s.key for s in spec.strategy_list()] == ["random", "sobol", "bo"]
    off = parse_sweep(
        BASE + "baselines: false\nproblems:\n  - {name: b, kind: function, function: branin}\n"
        "strategies:\n  - {name: botorch, label: bo}\n"
    )
    assert [s.key for s in off.strategy_list()] == ["bo"]
