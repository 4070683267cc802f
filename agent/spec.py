"""The campaign spec: frozen pydantic models loaded from YAML, checked before anything runs.

``load_spec`` checks the structure (types, bounds, unknown keys); ``check_spec`` then checks that the
named instruments, imaging pipeline and strategy exist and produce what the objectives ask for. Neither
touches the store or an instrument. Every problem names the file, line and field and what would be valid.
"""

from __future__ import annotations

import hashlib
import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.errors import ConfigError
from agent.yamlsrc import YamlSource, YamlSyntaxError, format_loc, load_yaml
from surrogate.objectives import Objective, OutcomeConstraint
from surrogate.space import NAME_PATTERN, SearchSpace

SCHEMA_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Budget(_Frozen):
    """Limits of the campaign: experiments, lab time (simulated or real) and wall-clock time; parallel lanes."""

    experiments: int = Field(ge=1, le=100_000)
    lanes: int = Field(default=1, ge=1, le=256)
    lab_time_h: float | None = Field(default=None, gt=0)
    wall_time_s: float | None = Field(default=None, gt=0)


class NoImprovement(_Frozen):
    """Stop when the best objective has not improved by ``min_delta`` in ``experiments`` completed experiments."""

    experiments: int = Field(ge=1)
    min_delta: float = Field(default=0.0, ge=0)


class Stopping(_Frozen):
    """Stopping rules beside the budget. ``target``: stop once each named objective reaches its value."""

    target: dict[str, float] | None = None
    no_improvement: NoImprovement | None = None


class InstrumentRef(_Frozen):
    type: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)


class Instruments(_Frozen):
    synthesizer: InstrumentRef
    imager: InstrumentRef | None = None
    characterizer: InstrumentRef | None = None


class Imaging(_Frozen):
    """The image analyzer by registry name; ``overlays`` keeps a segmentation picture per analyzed frame."""

    pipeline: str = "classical"
    options: dict[str, Any] = Field(default_factory=dict)
    overlays: bool = True


class WarmStart(_Frozen):
    """Learn from an earlier campaign before the first ask: its finished experiments that lie in this
    campaign's space are told to the strategy (not copied, not counted against the budget). ``store``: that
    campaign's store URL (a relative SQLite path is relative to this file); empty: this campaign's store."""

    campaign: str = Field(pattern=NAME_PATTERN, max_length=100)
    store: str | None = None


class StrategyRef(_Frozen):
    name: str = "ax"
    options: dict[str, Any] = Field(default_factory=dict)
    warm_start: WarmStart | None = None


class StoreSpec(_Frozen):
    """Where the campaign is recorded. ``url`` is a SQLAlchemy URL; a relative SQLite path is taken relative to
    the campaign file. Empty: ``<campaign file dir>/<name>.matloop.db``."""

    url: str | None = None
    files: str | None = None
    sqlite_synchronous: Literal["normal", "full"] = "normal"


class Retries(_Frozen):
    """How transient instrument faults are retried (same idempotency key, exponential backoff)."""

    max_attempts: int = Field(default=3, ge=1, le=50)
    backoff_s: float = Field(default=60.0, ge=0)
    backoff_factor: float = Field(default=2.0, ge=1)


class CampaignSpec(_Frozen):
    schema_version: Literal[1]
    name: str = Field(pattern=NAME_PATTERN, max_length=100)
    description: str = ""
    seed: int = Field(ge=0, le=2**32 - 1)
    space: SearchSpace
    objectives: tuple[Objective, ...] = Field(min_length=1)
    outcome_constraints: tuple[OutcomeConstraint, ...] = ()
    budget: Budget
    stopping: Stopping = Stopping()
    instruments: Instruments
    imaging: Imaging | None = None
    strategy: StrategyRef = StrategyRef()
    store: StoreSpec = StoreSpec()
    retries: Retries = Retries()

    @model_validator(mode="after")
    def _cross_check(self) -> CampaignSpec:
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"objective names must be distinct, got {names}")
        if self.stopping.target:
            for key in self.stopping.target:
                if key not in names:
                    raise ValueError(f"stopping.target.{key} names {key!r}, which is not an objective; valid: {names}")
        if self.stopping.no_improvement and len(self.objectives) > 1:
            raise ValueError("stopping.no_improvement: needs a single objective (several give a Pareto front)")
        if self.strategy.warm_start is not None and self.strategy.warm_start.campaign == self.name:
            raise ValueError(
                f"strategy.warm_start.campaign: {self.name!r} is this campaign; name an earlier campaign to learn from"
            )
        if self.imaging is not None and self.instruments.imager is None:
            raise ValueError("imaging: an imaging pipeline is configured but instruments.imager is missing")
        return self


def spec_hash(yaml_text: str) -> str:
    return hashlib.sha256(yaml_text.encode()).hexdigest()


def load_spec(path: str | Path) -> tuple[CampaignSpec, str]:
    """Reads and validates a campaign file; returns the spec and the exact YAML text (stored with it)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{p}: no such campaign file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{p}: cannot read campaign file: {exc}"]) from None
    return parse_spec(text, str(p)), text


def parse_spec(text: str, filename: str = "<campaign>") -> CampaignSpec:
    try:
        src = load_yaml(text, filename)
    except YamlSyntaxError as exc:
        raise ConfigError([str(exc)]) from None
    if not isinstance(src.data, dict):
        raise ConfigError([f"{filename}: a campaign file must be a mapping of keys (schema_version, name, ...)"])
    version = src.data.get("schema_version")
    if version is not None and version != SCHEMA_VERSION:
        raise ConfigError(
            [f"{src.where(('schema_version',))}: schema_version {version!r} is not supported; valid: {SCHEMA_VERSION}"]
        )
    try:
        return CampaignSpec.model_validate(src.data)
    except ValidationError as exc:
        raise ConfigError(located_errors(exc, src, _yaml_loc, _describe)) from None


Locate = Callable[[tuple[int | str, ...], YamlSource], tuple[int | str, ...]]
Describe = Callable[[Any, tuple[int | str, ...], YamlSource], str]


def located_errors(exc: ValidationError, src: YamlSource, locate: Locate, describe: Describe) -> list[str]:
    """pydantic's errors as messages that name the file, line and field (``locate`` maps pydantic's location to
    YAML keys, ``describe`` words one error)."""
    errors = exc.errors()
    locs = [locate(tuple(e["loc"]), src) for e in errors]
    # a list whose items failed is also reported "too short": keep only the item errors
    kept = [
        (e, loc)
        for e, loc in zip(errors, locs, strict=True)
        if not (e["type"] == "too_short" and any(o != loc and o[: len(loc)] == loc for o in locs))
    ]
    return [describe(e, loc, src) for e, loc in kept]


_PATH_PREFIX = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\])*(?:\.[A-Za-z_]\w*(?:\[\d+\])*)*)[: ]")


def _refine(loc: tuple[int | str, ...], msg: str, src: YamlSource) -> tuple[int | str, ...]:
    """Model-level messages start with the path they concern (``stopping.target names ...``): locate it."""
    m = _PATH_PREFIX.match(msg)
    if not m:
        return loc
    parts: list[int | str] = []
    for tok in re.findall(r"[A-Za-z_]\w*|\[\d+\]", m.group(1)):
        parts.append(int(tok[1:-1]) if tok.startswith("[") else tok)
    for base in (loc, ()):
        cand = (*base, *parts)
        if cand in src.lines:
            return cand
    return loc


def _describe(err: Any, loc: tuple[int | str, ...], src: YamlSource) -> str:
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "value_error":
        refined = _refine(loc, msg, src)
        if refined != loc:
            loc, msg = refined, _PATH_PREFIX.sub("", msg, count=1).lstrip(": ")
    if err["type"] == "extra_forbidden":
        valid = _valid_keys(loc[:-1], src.data)
        msg = f"unknown key {loc[-1]!r}" + (f"; valid keys here: {', '.join(valid)}" if valid else "")
    elif err["type"] == "missing":
        msg = f"required field {loc[-1]!r} is missing"
    elif err["type"] in {"union_tag_invalid", "union_tag_not_found"}:
        msg = msg.replace("Input tag", "type").replace("expected tags", "valid types")
    return f"{src.where(loc)}: {msg}"


def _yaml_loc(loc: tuple[int | str, ...], src: YamlSource) -> tuple[int | str, ...]:
    """Drops pydantic's union-tag steps (``parameters.0.float.low``) that are not keys in the YAML."""
    out: list[int | str] = []
    node = src.data
    for part in loc:
        if isinstance(part, str) and isinstance(node, dict) and part not in node and node.get("type") == part:
            continue
        if isinstance(part, str) and "[" in part:  # e.g. 'function-after[_check(), FloatParameter]'
            continue
        out.append(part)
        node = node[part] if _has(node, part) else None
    return tuple(out)


def _valid_keys(loc: tuple[int | str, ...], data: Any) -> list[str]:
    """Field names accepted at ``loc``, following the models (and union tags found in the data)."""
    model: Any = CampaignSpec
    node = data
    for part in loc:
        node = node[part] if _has(node, part) else None  # type: ignore[index]
        model = _step(model, part, node)
        if model is None:
            return []
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _has(node: Any, part: int | str) -> bool:
    return (isinstance(node, dict) and part in node) or (
        isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
    )


def _step(model: Any, part: int | str, node: Any) -> Any:
    if isinstance(model, type) and issubclass(model, BaseModel) and isinstance(part, str):
        field = model.model_fields.get(part)
        return _resolve(field.annotation, node) if field else None
    origin = typing.get_origin(model)
    if origin in (tuple, list) and isinstance(part, int):
        return _resolve(typing.get_args(model)[0], node)
    return None


def _resolve(tp: Any, node: Any) -> Any:
    """Unwraps Optional/Annotated/unions to the model that ``node`` would validate as."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _resolve(typing.get_args(tp)[0], node)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        models = [a for a in options if isinstance(a, type) and issubclass(a, BaseModel)]
        tag = node.get("type") if isinstance(node, dict) else None
        for m in models:
            f = m.model_fields.get("type")
            if f is not None and tag is not None and f.default == tag:
                return m
        return models[0] if len(models) == 1 else (options[0] if len(options) == 1 else None)
    return tp


__all__ = [
    "SCHEMA_VERSION",
    "Budget",
    "CampaignSpec",
    "ConfigError",
    "InstrumentRef",
    "Instruments",
    "StoreSpec",
    "WarmStart",
    "format_loc",
    "load_spec",
    "parse_spec",
    "spec_hash",
]
