"""Dataset-backed problems: a CSV of measured conditions → objective, used as a pool of candidates
(identical inputs grouped, values averaged) or through an emulator fitted to it (a GP or a random forest on
the unit encoding of the space), with the emulator's cross-validated error."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from agent.bench.spec import DataTable, EmulatorOptions, EmulatorProblem, PoolProblem
from agent.errors import ConfigError
from surrogate.base import ConditionValue
from surrogate.encoding import UnitEncoding, canonical_key
from surrogate.space import FloatParameter, SearchSpace


@dataclass(frozen=True)
class Table:
    """The table's inputs (named columns, floats) and its single objective."""

    inputs: pd.DataFrame
    values: NDArray[np.float64]
    objective: str
    direction: str


def read_table(data: DataTable) -> Table:
    """Reads the CSV: columns by header name or 0-based index; rows with a missing value are dropped."""
    try:
        df = pd.read_csv(data.path, header=0 if data.header else None, sep=data.delimiter)
    except (OSError, ValueError) as exc:
        raise ConfigError([f"{data.path}: cannot read the table: {exc}"]) from None
    obj = data.objectives[0]

    def col(ref: int | str, what: str) -> pd.Series:
        if isinstance(ref, int):
            if not 0 <= ref < df.shape[1]:
                raise ConfigError(
                    [
                        f"{data.path}: {what}: column index {ref} out of range (the file has "
                        f"{df.shape[1]} columns, 0..{df.shape[1] - 1})"
                    ]
                )
            s = df.iloc[:, ref]
        else:
            if ref not in df.columns:
                raise ConfigError(
                    [f"{data.path}: {what}: no column {ref!r}; columns: {', '.join(map(str, df.columns))}"]
                )
            s = df[ref]
        out = pd.to_numeric(s, errors="coerce")
        if out.isna().all():
            raise ConfigError([f"{data.path}: {what}: column {ref!r} holds no numbers"])
        return out

    x = pd.DataFrame({name: col(ref, f"inputs.{name}") for name, ref in data.inputs.items()})
    y = col(obj.column, f"objectives[0] ({obj.name})")
    keep = x.notna().all(axis=1) & y.notna()
    if int(keep.sum()) < 2:
        raise ConfigError([f"{data.path}: fewer than 2 complete rows"])
    return Table(x[keep].reset_index(drop=True).astype(float), y[keep].to_numpy(dtype=float), obj.name, obj.direction)


def default_space(table: Table) -> SearchSpace:
    """One float per input over the range of the data (a constant column gets a tiny width)."""
    params = []
    for name in table.inputs.columns:
        lo, hi = float(table.inputs[name].min()), float(table.inputs[name].max())
        if hi <= lo:
            hi = lo + max(abs(lo), 1.0) * 1e-6
        params.append(FloatParameter(name=name, low=lo, high=hi, unit=""))
    return SearchSpace(parameters=tuple(params))


def space_of(problem: PoolProblem | EmulatorProblem, table: Table) -> SearchSpace:
    """The problem's space (checked to have exactly the table's inputs) or the default one."""
    if problem.space is None:
        return default_space(table)
    names, cols = set(problem.space.input_names()), set(table.inputs.columns)
    if names != cols:
        raise ConfigError(
            [f"problems.{problem.name}.space: inputs {sorted(names)} differ from data.inputs {sorted(cols)}"]
        )
    return problem.space


@dataclass(frozen=True)
class Pool:
    """Grouped pool: distinct conditions (in first-seen order), their mean values and group sizes."""

    conditions: list[dict[str, ConditionValue]]
    values: NDArray[np.float64]
    counts: NDArray[np.int64]
    index: dict[Any, int]  # canonical key -> pool index

    def __len__(self) -> int:
        return len(self.conditions)

    def find(self, conditions: dict[str, ConditionValue]) -> int | None:
        return self.index.get(canonical_key(conditions))


def group_pool(table: Table, space: SearchSpace) -> Pool:
    """Groups identical inputs (equal to ~10 significant digits) and averages their values. Rows outside
    the space are an error naming the first one."""
    names = list(table.inputs.columns)
    conds: list[dict[str, ConditionValue]] = []
    sums: list[float] = []
    counts: list[int] = []
    index: dict[Any, int] = {}
    for r, row in enumerate(table.inputs.itertuples(index=False)):
        c: dict[str, ConditionValue] = {n: float(v) for n, v in zip(names, row, strict=True)}
        key = canonical_key(c)
        k = index.get(key)
        if k is None:
            problems = space.check(c)
            if problems:
                raise ConfigError([f"row {r + 1} of the table lies outside the space: {'; '.join(problems)}"])
            index[key] = len(conds)
            conds.append(c)
            sums.append(float(table.values[r]))
            counts.append(1)
        else:
            sums[k] += float(table.values[r])
            counts[k] += 1
    cnt = np.asarray(counts, dtype=np.int64)
    return Pool(conds, np.asarray(sums) / cnt, cnt, index)


# ------------------------------------------------------------------------------------------ emulator
class Emulator:
    """A regression model of the table on the unit encoding: ``predict(conditions) -> values``."""

    def __init__(self, space: SearchSpace, options: EmulatorOptions) -> None:
        self.encoding = UnitEncoding(space)
        self.options = options
        self._model: Any = None

    def encode(self, rows: list[dict[str, ConditionValue]]) -> NDArray[np.float64]:
        return np.array([self.encoding.to_unit(c) for c in rows], dtype=float).reshape(len(rows), self.encoding.dim)

    def fit(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> Emulator:
        if self.options.model == "forest":
            try:
                from sklearn.ensemble import RandomForestRegressor
            except ImportError as exc:
                raise ConfigError(["emulator.model: 'forest' needs scikit-learn (pip install scikit-learn)"]) from exc
            self._model = RandomForestRegressor(n_estimators=200, random_state=0, n_jobs=1).fit(x, y)
        else:
            import torch
            from botorch.fit import fit_gpytorch_mll
            from botorch.models import SingleTaskGP
            from botorch.models.transforms.outcome import Standardize
            from gpytorch.mlls import ExactMarginalLogLikelihood

            torch.manual_seed(0)
            tx = torch.as_tensor(x, dtype=torch.float64)
            ty = torch.as_tensor(y, dtype=torch.float64).unsqueeze(-1)
            gp = SingleTaskGP(tx, ty, outcome_transform=Standardize(m=1))
            fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
            gp.eval()
            self._model = gp
        return self

    def predict_unit(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.options.model == "forest":
            return np.asarray(self._model.predict(x), dtype=float)
        import torch

        with torch.no_grad():
            post = self._model.posterior(torch.as_tensor(x, dtype=torch.float64))
            return post.mean.squeeze(-1).numpy().astype(float)

    def predict(self, rows: list[dict[str, ConditionValue]]) -> NDArray[np.float64]:
        return self.predict_unit(self.encode(rows))


def _training_rows(
    table: Table, space: SearchSpace, options: EmulatorOptions
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The grouped table (means), subsampled to ``max_points`` with a fixed seed."""
    pool = group_pool(table, space)
    em = Emulator(space, options)
    x, y = em.encode(pool.conditions), pool.values
    if len(y) > options.max_points:
        keep = np.sort(np.random.default_rng(0).choice(len(y), options.max_points, replace=False))
        x, y = x[keep], y[keep]
    return x, y


def cross_validate(problem: EmulatorProblem) -> dict[str, float | int | str]:
    """K-fold cross-validated RMSE and R² of the emulator (seeded folds), and the number of rows used."""
    table = read_table(problem.data)
    space = space_of(problem, table)
    x, y = _training_rows(table, space, problem.emulator)
    k = min(problem.emulator.cv_folds, len(y))
    folds = np.array_split(np.random.default_rng(0).permutation(len(y)), k)
    pred = np.empty(len(y))
    for f in folds:
        train = np.setdiff1d(np.arange(len(y)), f)
        pred[f] = Emulator(space, problem.emulator).fit(x[train], y[train]).predict_unit(x[f])
    resid = y - pred
    rmse = float(np.sqrt(np.mean(resid**2)))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else math.nan
    return {"model": problem.emulator.model, "cv_folds": k, "n": len(y), "rmse": rmse, "r2": r2}


@lru_cache(maxsize=8)
def fitted_emulator(problem_json: str) -> tuple[Emulator, SearchSpace, Table]:
    """The emulator fitted to all rows, cached per process (a worker fits each problem once)."""
    problem = EmulatorProblem.model_validate_json(problem_json)
    table = read_table(problem.data)
    space = space_of(problem, table)
    x, y = _training_rows(table, space, problem.emulator)
    return Emulator(space, problem.emulator).fit(x, y), space, table


__all__ = [
    "Emulator",
    "Pool",
    "Table",
    "cross_validate",
    "default_space",
    "fitted_emulator",
    "group_pool",
    "read_table",
    "space_of",
]
