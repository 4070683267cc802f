"""The benchmark sweep spec: frozen pydantic models read from YAML, with errors naming the file, line and field.

A sweep runs every strategy (plus the random and Sobol baselines) on every problem for every seed, budget
and batch size. Problems are simulated-lab campaigns (``sim``), standard test functions (``function``),
or a CSV of measured conditions used as a pool of candidates (``pool``) or through a fitted model
(``emulator``). Relative paths are taken relative to the sweep file's folder, else to the working folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent.errors import ConfigError
from agent.spec import _has, _refine, _step, located_errors
from agent.yamlsrc import YamlSource, YamlSyntaxError, load_yaml
from surrogate.space import NAME_PATTERN, SearchSpace

POOL_STRATEGIES = ("random", "sobol", "botorch")  # where surrogate.pool is not installed; else its POOL_STRATEGIES
BASELINES = ("random", "sobol")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StrategyEntry(_Frozen):
    """A strategy by registry name with its options; ``label`` names it in the results (default: the name).
    On pool problems the pool strategy of that name runs, with ``pool_options`` when given (the pool
    strategies take other options than the continuous ones), else ``options``."""

    name: str = Field(min_length=1)
    label: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.+-]+$")
    options: dict[str, Any] = Field(default_factory=dict)
    pool_options: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return self.label or self.name


Column = int | str


class DataObjective(_Frozen):
    """An objective column of the table."""

    name: str = Field(pattern=NAME_PATTERN)
    column: Column
    direction: Literal["maximize", "minimize"]
    unit: str = ""


class DataTable(_Frozen):
    """A CSV of measured conditions → objective. Columns by header name or 0-based index; ``header: false``
    for a file without a header row (then columns are indices)."""

    path: str = Field(min_length=1)
    header: bool = True
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    inputs: dict[str, Column] = Field(min_length=1)
    objectives: tuple[DataObjective, ...] = Field(min_length=1, max_length=1)

    @model_validator(mode="after")
    def _check(self) -> DataTable:
        for name in self.inputs:
            if not _is_name(name):
                raise ValueError(f"inputs.{name}: input names must match {NAME_PATTERN}")
        if not self.header:
            refs = [(f"inputs.{n}", c) for n, c in self.inputs.items()]
            refs += [(f"objectives[{i}].column", o.column) for i, o in enumerate(self.objectives)]
            for where, col in refs:
                if not isinstance(col, int):
                    raise ValueError(f"{where}: column {col!r} is a name, but the file has no header; give an index")
        return self


class _ProblemBase(_Frozen):
    name: str = Field(pattern=NAME_PATTERN, max_length=100)


class FunctionProblem(_ProblemBase):
    """A botorch test function (minimized): ``branin`` (2-d), ``hartmann6`` (6-d) or ``ackley`` (``dim``-d),
    with Gaussian measurement noise of ``noise_sigma`` (told to the strategy as the σ; values reported noise-free)."""

    kind: Literal["function"] = "function"
    function: Literal["branin", "hartmann6", "ackley"]
    dim: int | None = Field(default=None, ge=1, le=100)
    noise_sigma: float = Field(default=0.0, ge=0.0)

    @model_validator(mode="after")
    def _check(self) -> FunctionProblem:
        fixed = {"branin": 2, "hartmann6": 6}
        if self.function in fixed and self.dim not in (None, fixed[self.function]):
            raise ValueError(f"dim: {self.function} is {fixed[self.function]}-dimensional, got {self.dim}")
        return self

    @property
    def dimension(self) -> int:
        return {"branin": 2, "hartmann6": 6}.get(self.function, self.dim or 2)


class PoolProblem(_ProblemBase):
    """The campaign may only choose measured conditions (identical inputs grouped, values averaged), each
    once. ``space`` defaults to one float per input over the data's range. ``top_fraction``: the top set."""

    kind: Literal["pool"] = "pool"
    data: DataTable
    space: SearchSpace | None = None
    top_fraction: float = Field(default=0.05, gt=0.0, le=1.0)


class EmulatorOptions(_Frozen):
    """``gp``: botorch SingleTaskGP on the unit encoding; ``forest``: scikit-learn random forest (needs
    scikit-learn). ``cv_folds``: folds of the reported cross-validation; ``max_points``: fit on at most
    this many rows (a seeded subsample) to keep the GP fast; ``noise_sigma``: Gaussian noise on answers."""

    model: Literal["gp", "forest"] = "gp"
    cv_folds: int = Field(default=5, ge=2, le=50)
    max_points: int = Field(default=1500, ge=10)
    noise_sigma: float = Field(default=0.0, ge=0.0)


class EmulatorProblem(_ProblemBase):
    """A model fitted to the table answers for any condition of ``space``."""

    kind: Literal["emulator"] = "emulator"
    data: DataTable
    space: SearchSpace | None = None
    emulator: EmulatorOptions = EmulatorOptions()


class SimProblem(_ProblemBase):
    """A campaign on the simulated lab (full loop, virtual clock) with its strategy replaced, its stopping
    rules dropped, the budget and lanes (= batch size) set by the sweep and its seed set to the run's seed.
    ``imaging: false`` drops the imager, the imaging pipeline and the outcome constraints (faster);
    ``image_size_px`` shrinks the micrographs. Several objectives are scored by the hypervolume of the
    feasible points w.r.t. the objectives' thresholds (or ``reference``, by objective name)."""

    kind: Literal["sim"] = "sim"
    campaign: str = Field(min_length=1)
    imaging: bool = True
    image_size_px: int | None = Field(default=None, ge=32, le=4096)
    reference: dict[str, float] | None = None


Problem = Annotated[
    FunctionProblem | PoolProblem | EmulatorProblem | SimProblem,
    Field(discriminator="kind"),
]


class SweepSpec(_Frozen):
    """The resolved sweep: strategies × problems × seeds × budgets × batch sizes."""

    schema_version: Literal[1] = 1
    name: str = Field(pattern=NAME_PATTERN, max_length=100)
    description: str = ""
    problems: tuple[Problem, ...] = Field(min_length=1)
    strategies: tuple[StrategyEntry, ...] = ()
    baselines: bool = True
    seeds: tuple[int, ...] = Field(min_length=1)
    budgets: tuple[Annotated[int, Field(ge=1, le=100_000)], ...] = Field(min_length=1)
    batch_sizes: tuple[Annotated[int, Field(ge=1, le=256)], ...] = (1,)
    initial_points: int = Field(default=0, ge=0)
    experiment_hours: float = Field(default=1.0, gt=0.0)

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_count(cls, v: Any) -> Any:
        """``seeds: 3`` means seeds 0, 1, 2."""
        if isinstance(v, int) and not isinstance(v, bool):
            if v < 1:
                raise ValueError(f"a seed count must be >= 1, got {v}")
            return tuple(range(v))
        return v

    @model_validator(mode="after")
    def _cross_check(self) -> SweepSpec:
        names = [p.name for p in self.problems]
        for i, n in enumerate(names):
            if n in names[:i]:
                raise ValueError(f"problems[{i}].name: {n!r} is used twice; problem names must be distinct")
        for i, seed in enumerate(self.seeds):
            if not 0 <= seed <= 2**32 - 1:
                raise ValueError(f"seeds[{i}]: {seed} must be in 0..2**32-1")
        if not self.strategies and not self.baselines:
            raise ValueError("strategies: none given and baselines are off: nothing to run")
        labels = [s.key for s in self.strategy_list()]
        for i, s in enumerate(self.strategies):
            if labels.count(s.key) > 1:
                raise ValueError(
                    f"strategies[{i}].label: {s.key!r} is used twice (the baselines are 'random' and "
                    "'sobol'); give a distinct label"
                )
            _check_strategy(i, s, self.problems)
        if self.initial_points >= min(self.budgets):
            raise ValueError(
                f"initial_points: {self.initial_points} must be smaller than every budget "
                f"(smallest: {min(self.budgets)})"
            )
        return self

    def strategy_list(self) -> list[StrategyEntry]:
        """The baselines (unless off or already listed) followed by the given strategies."""
        given = {s.key for s in self.strategies}
        base = [StrategyEntry(name=b) for b in BASELINES if self.baselines and b not in given]
        return [*base, *self.strategies]


def _check_strategy(i: int, s: StrategyEntry, problems: tuple[Any, ...]) -> None:
    """The strategy exists for every kind of problem in the sweep and its options are valid there."""
    pools = [p.name for p in problems if p.kind == "pool"]
    pool_names = tuple(_pool_module().POOL_STRATEGIES) if _pool_module() is not None else POOL_STRATEGIES
    if pools and s.name not in pool_names:
        raise ValueError(
            f"strategies[{i}].name: {s.name!r} cannot run on pool problems ({', '.join(pools)}); "
            f"valid there: {', '.join(pool_names)}"
        )
    checks: list[tuple[str, dict[str, Any], Any]] = []
    if any(p.kind != "pool" for p in problems):
        from surrogate.registry import validate_strategy_options

        checks.append(("options", s.options, validate_strategy_options))
    if pools and _pool_module() is not None:
        field = "pool_options" if s.pool_options is not None else "options"
        checks.append(
            (field, s.pool_options if s.pool_options is not None else s.options, _pool_module().validate_pool_options)
        )  # type: ignore[union-attr]
    for field, options, validate in checks:
        try:
            validate(s.name, options)
        except ValidationError as exc:
            e = exc.errors()[0]
            path = ".".join(str(p) for p in e["loc"])
            raise ValueError(f"strategies[{i}].{field}{'.' + path if path else ''}: {e['msg']}") from None
        except ValueError as exc:
            raise ValueError(f"strategies[{i}].name: {exc}") from None


def _pool_module() -> Any:
    """``surrogate.pool`` (imported on use: it imports torch), or None where it is not installed."""
    import importlib

    try:
        return importlib.import_module("surrogate.pool")
    except ModuleNotFoundError:
        return None


def _is_name(name: str) -> bool:
    import re

    return re.fullmatch(NAME_PATTERN, name) is not None


# ------------------------------------------------------------------------------------------ loading
def load_sweep(path: str | Path) -> SweepSpec:
    """Reads and validates a sweep file; relative data and campaign paths come back absolute."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{p}: no such sweep file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{p}: cannot read sweep file: {exc}"]) from None
    return parse_sweep(text, str(p), base_dir=p.resolve().parent)


def parse_sweep(text: str, filename: str = "<sweep>", base_dir: Path | None = None) -> SweepSpec:
    """Validates sweep YAML ``text``; every problem names ``filename:line: field``."""
    try:
        src = load_yaml(text, filename)
    except YamlSyntaxError as exc:
        raise ConfigError([str(exc)]) from None
    if not isinstance(src.data, dict):
        raise ConfigError([f"{filename}: a sweep file must be a mapping of keys (name, problems, strategies, ...)"])
    try:
        spec = SweepSpec.model_validate(src.data)
    except ValidationError as exc:
        raise ConfigError(located_errors(exc, src, _yaml_loc, _describe)) from None
    return resolve_paths(spec, base_dir or Path.cwd(), src)


def resolve_paths(spec: SweepSpec, base_dir: Path, src: YamlSource | None = None) -> SweepSpec:
    """Makes data and campaign paths absolute: relative to ``base_dir`` if there, else to the working folder."""
    problems: list[Any] = []
    missing: list[str] = []
    for i, p in enumerate(spec.problems):
        if isinstance(p, FunctionProblem):
            problems.append(p)
            continue
        field = "campaign" if isinstance(p, SimProblem) else "data"
        raw = p.campaign if isinstance(p, SimProblem) else p.data.path  # type: ignore[union-attr]
        found = _find(raw, base_dir)
        if found is None:
            loc: tuple[int | str, ...] = (
                ("problems", i, field) if field == "campaign" else ("problems", i, "data", "path")
            )
            at = src.where(loc) if src is not None else f"problems[{i}].{field}"
            missing.append(f"{at}: no such file {raw!r} (looked in {base_dir} and {Path.cwd()})")
            problems.append(p)
        elif isinstance(p, SimProblem):
            problems.append(p.model_copy(update={"campaign": str(found)}))
        else:
            problems.append(p.model_copy(update={"data": p.data.model_copy(update={"path": str(found)})}))  # type: ignore[union-attr]
    if missing:
        raise ConfigError(missing)
    return spec.model_copy(update={"problems": tuple(problems)})


def _find(raw: str, base_dir: Path) -> Path | None:
    p = Path(raw).expanduser()
    for cand in [p] if p.is_absolute() else [base_dir / p, Path.cwd() / p]:
        if cand.is_file():
            return cand.resolve()
    return None


def _describe(err: Any, loc: tuple[int | str, ...], src: YamlSource) -> str:
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "value_error":
        refined = _refine(loc, msg, src)
        if refined != loc:
            import re

            loc = refined
            msg = re.sub(r"^[A-Za-z_][\w.\[\]]*[: ]\s*", "", msg, count=1)
    if err["type"] == "extra_forbidden":
        valid = _valid_keys(loc[:-1], src.data)
        msg = f"unknown key {loc[-1]!r}" + (f"; valid keys here: {', '.join(valid)}" if valid else "")
    elif err["type"] == "missing":
        msg = f"required field {loc[-1]!r} is missing"
    elif err["type"] in {"union_tag_invalid", "union_tag_not_found"}:
        msg = msg.replace("Input tag", "kind").replace("expected tags", "valid kinds")
    return f"{src.where(loc)}: {msg}"


def _valid_keys(loc: tuple[int | str, ...], data: Any) -> list[str]:
    """Field names accepted at ``loc``, following the models (and the ``kind`` of problems)."""
    model: Any = SweepSpec
    node = data
    for k, part in enumerate(loc):
        node = node[part] if _has(node, part) else None
        if loc[:k] == ("problems",) and isinstance(node, dict):
            model = _PROBLEM_KINDS.get(str(node.get("kind")))
        else:
            model = _step(model, part, node)
        if model is None:
            return []
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _yaml_loc(loc: tuple[int | str, ...], src: YamlSource) -> tuple[int | str, ...]:
    """Drops pydantic's union steps (``problems.0.pool.data``, ``function-after[...]``) that are not YAML keys."""
    out: list[int | str] = []
    node = src.data
    for k, part in enumerate(loc):
        tag = isinstance(part, str) and isinstance(node, dict) and part in _TAGS and node.get(_TAGS[part]) == part
        if tag and k > 0 and isinstance(loc[k - 1], int):  # pydantic's union-member step, not a YAML key
            continue
        if isinstance(part, str) and "[" in part:
            continue
        out.append(part)
        node = node[part] if _has(node, part) else None
    return tuple(out)


_PROBLEM_KINDS: dict[str, type[BaseModel]] = {
    "function": FunctionProblem,
    "pool": PoolProblem,
    "emulator": EmulatorProblem,
    "sim": SimProblem,
}
_TAGS = {
    "function": "kind",
    "pool": "kind",
    "emulator": "kind",
    "sim": "kind",
    "float": "type",
    "int": "type",
    "categorical": "type",
    "composition": "type",
}


__all__ = [
    "DataObjective",
    "DataTable",
    "EmulatorOptions",
    "EmulatorProblem",
    "FunctionProblem",
    "PoolProblem",
    "Problem",
    "SimProblem",
    "StrategyEntry",
    "SweepSpec",
    "load_sweep",
    "parse_sweep",
    "resolve_paths",
]
