"""Campaign spec: round trips and bad YAML that must name the file, line and field."""

from __future__ import annotations

import re

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import ConfigError
from agent.spec import CampaignSpec, parse_spec

BASE = """\
schema_version: 1
name: alloy_test
seed: 3
space:
  parameters:
    - name: anneal_temperature
      type: float
      low: 600
      high: 1000
      unit: degC
    - name: anneal_time
      type: float
      low: 0.1
      high: 10
      unit: h
      log_scale: true
    - name: atmosphere
      type: categorical
      choices: [argon, vacuum]
    - name: mix
      type: composition
      components:
        - {name: ni, low: 0.1, high: 0.8}
        - {name: fe, low: 0.1, high: 0.8}
  constraints:
    - coefficients: {anneal_temperature: 1.0, anneal_time: 10.0}
      op: "<="
      bound: 1050
objectives:
  - name: yield_strength
    direction: maximize
    unit: MPa
outcome_constraints:
  - name: elongation
    op: ">="
    bound: 10
budget:
  experiments: 12
  lanes: 2
instruments:
  synthesizer:
    type: sim-furnace
    options: {system: two_phase_alloy}
strategy:
  name: sobol
"""


def test_base_is_valid() -> None:
    spec = parse_spec(BASE, "c.yaml")
    assert spec.space.input_names() == ["anneal_temperature", "anneal_time", "atmosphere", "ni", "fe"]
    assert spec.budget.lanes == 2


def _replace(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


# (yaml text, expected line, field path fragment, message fragment)
BAD: list[tuple[str, int, str, str]] = [
    (_replace("seed: 3", "seed: three"), 3, "seed", "integer"),
    (_replace("seed: 3\n", ""), 1, "seed", "required field 'seed'"),
    (_replace("name: alloy_test", "name: 9lives"), 2, "name", "pattern"),
    (_replace("schema_version: 1", "schema_version: 7"), 1, "schema_version", "valid: 1"),
    (_replace("      low: 600\n", "      low: 1200\n"), 8, "space.parameters[0].low", "smaller than high"),
    (
        _replace("      type: float\n      low: 600", "      type: floaty\n      low: 600"),
        6,
        "space.parameters[0]",
        "float",
    ),
    (_replace("      unit: degC\n", ""), 6, "space.parameters[0]", "'unit'"),
    (
        _replace("      low: 0.1\n      high: 10\n      unit: h\n", "      low: 0\n      high: 10\n      unit: h\n"),
        16,
        "space.parameters[1].log_scale",
        "needs low > 0",
    ),
    (_replace("choices: [argon, vacuum]", "choices: [argon, argon]"), 19, "space.parameters[2].choices", "distinct"),
    (_replace("choices: [argon, vacuum]", "choices: [argon]"), 19, "space.parameters[2].choices", "at least 2"),
    (
        _replace("{name: ni, low: 0.1, high: 0.8}", "{name: ni, low: 0.95, high: 0.99}"),
        20,
        "space.parameters[3]",
        "cannot sum to 1",
    ),
    (
        _replace("{name: fe, low: 0.1, high: 0.8}", "{name: fe, low: 0.1, high: 1.8}"),
        24,
        "space.parameters[3].components[1].high",
        "less than or equal to 1",
    ),
    (
        _replace("{anneal_temperature: 1.0, anneal_time: 10.0}", "{anneal_temperature: 1.0, atmosphere: 2.0}"),
        26,
        "space.constraints[0].coefficients.atmosphere",
        "not a numeric input",
    ),
    (_replace('      op: "<="\n', '      op: "<"\n'), 27, "space.constraints[0].op", "'<='"),
    (
        _replace("    direction: maximize", "    direction: maximise"),
        31,
        "objectives[0].direction",
        "'maximize', 'minimize' or 'target'",
    ),
    (_replace("    direction: maximize", "    direction: target"), 31, "objectives[0].direction", "needs a 'target'"),
    (_replace("    unit: MPa\n", ""), 30, "objectives[0]", "'unit'"),
    (
        _replace("objectives:\n  - name: yield_strength\n    direction: maximize\n    unit: MPa\n", "objectives: []\n"),
        29,
        "objectives",
        "at least 1",
    ),
    (_replace('    op: ">="\n', '    op: ">>"\n'), 35, "outcome_constraints[0].op", "'<='"),
    (_replace("  experiments: 12", "  experiments: 0"), 38, "budget.experiments", "greater than or equal to 1"),
    (_replace("  lanes: 2", "  lanes: two"), 39, "budget.lanes", "integer"),
    (
        _replace("  lanes: 2", "  lanes: 2\n  robots: 3"),
        40,
        "budget.robots",
        "unknown key 'robots'; valid keys here: experiments, lanes",
    ),
    (
        _replace("strategy:\n  name: sobol", "strategy:\n  name: sobol\n  optoins: {}"),
        46,
        "strategy.optoins",
        "valid keys here: name, options",
    ),
    (BASE + "colour: blue\n", 46, "colour", "unknown key 'colour'; valid keys here: schema_version, name"),
    (BASE + "seed: 4\n", 46, "seed", "duplicate key (first given on line 3)"),
    (_replace("budget:\n  experiments: 12\n  lanes: 2\n", ""), 1, "budget", "required field 'budget'"),
    (_replace("    type: sim-furnace\n", ""), 41, "instruments.synthesizer", "'type'"),
    (
        BASE + "stopping:\n  target: {hardness: 300}\n",
        47,
        "stopping.target.hardness",
        "names 'hardness', which is not an objective",
    ),
    (
        BASE + "stopping:\n  no_improvement: {experiments: 0}\n",
        47,
        "stopping.no_improvement.experiments",
        "greater than or equal to 1",
    ),
    (BASE + "store:\n  sqlite_synchronous: sometimes\n", 47, "store.sqlite_synchronous", "'normal' or 'full'"),
    (_replace("    - name: atmosphere\n", "    - name: anneal_time\n"), 4, "space", "used twice"),
    ("- just\n- a list\n", 0, "", "must be a mapping"),
    ("name: [unclosed\n", 2, "", "not valid YAML"),
]


@pytest.mark.parametrize(("text", "line", "field", "fragment"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_yaml_names_file_line_and_field(text: str, line: int, field: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_spec(text, "camp.yaml")
    msg = str(info.value)
    assert fragment in msg, msg
    if line:
        assert re.search(rf"camp\.yaml:{line}\b", msg), msg
    else:
        assert "camp.yaml" in msg
    if field:
        assert f": {field}:" in msg or f": {field}" in msg, msg


def test_spec_is_frozen() -> None:
    spec = parse_spec(BASE, "c.yaml")
    with pytest.raises(Exception, match="frozen"):
        spec.seed = 4  # type: ignore[misc]


names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)


@st.composite
def specs(draw: st.DrawFn) -> dict:
    n = draw(st.integers(1, 4))
    pnames = draw(st.lists(names, min_size=n + 2, max_size=n + 2, unique=True))
    params: list[dict] = []
    for i in range(n):
        kind = draw(st.sampled_from(["float", "int", "categorical"]))
        if kind == "categorical":
            params.append(
                {"name": pnames[i], "type": kind, "choices": draw(st.lists(names, min_size=2, max_size=4, unique=True))}
            )
        else:
            lo = draw(st.integers(1, 100))
            params.append(
                {
                    "name": pnames[i],
                    "type": kind,
                    "low": lo,
                    "high": lo + draw(st.integers(1, 100)),
                    "unit": draw(st.sampled_from(["K", "h", "MPa"])),
                    "log_scale": draw(st.booleans()),
                }
            )
    if draw(st.booleans()):
        params.append(
            {
                "name": pnames[n],
                "type": "composition",
                "components": [{"name": pnames[n] + "_a"}, {"name": pnames[n] + "_b", "low": 0.1}],
            }
        )
    return {
        "schema_version": 1,
        "name": draw(names),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "space": {"parameters": params},
        "objectives": [
            {
                "name": pnames[-1],
                "direction": draw(st.sampled_from(["maximize", "minimize"])),
                "unit": "MPa",
                "threshold": draw(st.none() | st.floats(-1e3, 1e3)),
            }
        ],
        "budget": {"experiments": draw(st.integers(1, 500)), "lanes": draw(st.integers(1, 8))},
        "instruments": {"synthesizer": {"type": "x", "options": {"a": draw(st.integers())}}},
    }


@given(specs())
@settings(max_examples=60, deadline=None)
def test_round_trip(data: dict) -> None:
    spec = parse_spec(yaml.safe_dump(data), "gen.yaml")
    dumped = yaml.safe_dump(spec.model_dump(mode="json"))
    again = parse_spec(dumped, "again.yaml")
    assert again == spec
    assert CampaignSpec.model_validate_json(spec.model_dump_json()) == spec


def test_config_error_survives_a_process_boundary() -> None:
    """Bench workers raise ConfigError in another process; it must read the same after unpickling."""
    import pickle

    from agent.errors import ConfigError

    err = ConfigError(["sweep.yaml:3: seeds: must be positive", "sweep.yaml:9: budgets: empty"], "sweep.yaml")
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err) and back.problems == err.problems and back.source == "sweep.yaml"
