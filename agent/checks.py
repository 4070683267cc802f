"""Checks a structurally valid spec against what is installed: instruments, imaging pipeline, strategy, and
that the objectives name quantities something actually measures. Builds nothing and connects to nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from agent.errors import ConfigError
from agent.spec import CampaignSpec
from agent.units import same_unit
from agent.yamlsrc import YamlSource, load_yaml
from imaging.registry import analyzer_outputs
from instruments.registry import InstrumentSpecError, instrument_class, instrument_outputs, validate_options
from surrogate.registry import validate_strategy_options
from surrogate.space import CategoricalParameter, CompositionParameter

Loc = tuple[int | str, ...]


def check_spec(spec: CampaignSpec, yaml_text: str, filename: str) -> dict[str, str]:
    """Raises ``ConfigError`` listing every problem; returns the measurable quantities and their units."""
    src = load_yaml(yaml_text, filename)
    problems: list[str] = []

    def fail(loc: Loc, msg: str) -> None:
        problems.append(f"{src.where(loc)}: {msg}")

    measured: dict[str, str] = {}
    for role in ("synthesizer", "imager", "characterizer"):
        ref = getattr(spec.instruments, role)
        if ref is None:
            continue
        loc: Loc = ("instruments", role)
        try:
            validate_options(ref.type, ref.options)
            measured.update(instrument_outputs(ref.type, ref.options))
        except InstrumentSpecError as exc:
            fail((*loc, "type") if "unknown instrument" in str(exc) else (*loc, "options"), str(exc))
            continue
        if role == "synthesizer":
            _check_inputs(spec, ref.type, ref.options, src, problems)

    if spec.imaging is not None:
        try:
            measured.update(analyzer_outputs(spec.imaging.pipeline, spec.imaging.options))
        except ValidationError as exc:
            for err in exc.errors():
                fail(("imaging", "options", *err["loc"]), err["msg"])
        except ValueError as exc:
            fail(("imaging", "pipeline"), str(exc))

    try:
        validate_strategy_options(spec.strategy.name, spec.strategy.options)
    except ValidationError as exc:
        for err in exc.errors():
            fail(("strategy", "options", *err["loc"]), _pyd_msg(err))
    except ValueError as exc:
        fail(("strategy", "name"), str(exc))

    if measured:
        valid = ", ".join(f"{k} [{u}]" for k, u in sorted(measured.items()))
        for i, obj in enumerate(spec.objectives):
            if obj.name not in measured:
                fail(("objectives", i, "name"), f"nothing measures {obj.name!r}; measured here: {valid}")
            elif not same_unit(obj.unit, measured[obj.name]):
                fail(("objectives", i, "unit"), f"{obj.name} is measured in {measured[obj.name]!r}, not {obj.unit!r}")
        for i, con in enumerate(spec.outcome_constraints):
            if con.name not in measured:
                fail(("outcome_constraints", i, "name"), f"nothing measures {con.name!r}; measured here: {valid}")
            elif con.unit is not None and not same_unit(con.unit, measured[con.name]):
                fail(("outcome_constraints", i, "unit"), f"{con.name} is measured in {measured[con.name]!r}")
    if problems:
        raise ConfigError(problems)
    return measured


def _pyd_msg(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return f"unknown option {err['loc'][-1]!r}"
    return str(err["msg"])


def _check_inputs(spec: CampaignSpec, name: str, options: dict[str, Any], src: YamlSource, problems: list[str]) -> None:
    """Compares the campaign's inputs with what the synthesizer accepts, when it declares its inputs."""
    cls = instrument_class(name)
    declared = getattr(cls, "inputs", None)
    if not callable(declared):
        return
    accepts: dict[str, Any] = dict(declared(dict(options)))
    names = spec.space.input_names()
    for i, p in enumerate(spec.space.parameters):
        members: Sequence[Any] = p.components if isinstance(p, CompositionParameter) else [p]
        for m in members:
            if m.name not in accepts:
                problems.append(
                    f"{src.where(('space', 'parameters', i, 'name'))}: the synthesizer {name!r} does not take "
                    f"{m.name!r}; it takes: {', '.join(sorted(accepts))}"
                )
                continue
            spec_in = accepts[m.name]
            if isinstance(p, CategoricalParameter):
                bad = set(p.choices) - set(spec_in.get("choices", ()))
                if bad:
                    problems.append(
                        f"{src.where(('space', 'parameters', i, 'choices'))}: {sorted(bad)} not accepted by "
                        f"{name!r}; valid choices: {list(spec_in.get('choices', ()))}"
                    )
            elif not isinstance(p, CompositionParameter):
                lo, hi, unit = spec_in.get("low"), spec_in.get("high"), spec_in.get("unit")
                if unit is not None and not same_unit(p.unit, unit):
                    problems.append(
                        f"{src.where(('space', 'parameters', i, 'unit'))}: {p.name} is in {unit!r} for {name!r}, "
                        f"not {p.unit!r}"
                    )
                if lo is not None and hi is not None and (p.low < lo or p.high > hi):
                    problems.append(
                        f"{src.where(('space', 'parameters', i))}: {p.name} range [{p.low:g}, {p.high:g}] exceeds "
                        f"what {name!r} can do: [{lo:g}, {hi:g}] {unit or ''}".rstrip()
                    )
    missing = [n for n in accepts if n not in names and not accepts[n].get("optional", False)]
    if missing:
        problems.append(
            f"{src.where(('space', 'parameters'))}: the synthesizer {name!r} also needs {', '.join(missing)}"
        )
