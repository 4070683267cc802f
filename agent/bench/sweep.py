"""Runs a sweep: expands it into runs, executes the missing ones (serially, in a local process pool or as
Ray tasks), writes one Parquet part per finished run atomically (so a killed sweep resumes where it
stopped), then concatenates the parts into ``results.parquet`` and ``results.csv``.

Layout of ``OUT``: ``runs/<run_id>.parquet`` (parts), ``results.parquet``, ``results.csv``, ``sweep.json``
(the resolved spec, versions, timing, runs executed and failed) and, for emulator problems,
``emulators.json`` (cross-validated RMSE, R² and n per problem).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from agent.bench.runner import COLUMNS, RunSpec, run_one
from agent.bench.spec import EmulatorProblem, SweepSpec, load_sweep, resolve_paths
from agent.errors import ConfigError

log = logging.getLogger(__name__)

Progress = Callable[[RunSpec, str], None]  # (run, "done" | "failed: ...")


def expand(spec: SweepSpec) -> list[RunSpec]:
    """Every run of the sweep, in a fixed order: problem, strategy, budget, batch size, seed."""
    return [
        RunSpec(spec.name, p, s, seed, budget, q, spec.initial_points, spec.experiment_hours)
        for p in spec.problems
        for s in spec.strategy_list()
        for budget in spec.budgets
        for q in spec.batch_sizes
        for seed in spec.seeds
    ]


def part_path(out_dir: Path, run: RunSpec) -> Path:
    return out_dir / "runs" / f"{run.run_id}.parquet"


def _limit_threads() -> None:
    """One BLAS/torch thread per worker: the runs are the parallelism."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


def execute(run: RunSpec, out_dir: str) -> str:
    """Runs ``run`` and writes its part atomically (temporary file, then rename); returns the part path."""
    _limit_threads()
    df = run_one(run)
    final = part_path(Path(out_dir), run)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, final)
    return str(final)


def _valid_part(path: Path) -> bool:
    try:
        df = pd.read_parquet(path)
    except Exception:  # a torn or foreign file: run again
        return False
    return list(df.columns) == list(COLUMNS) and len(df) > 0


def _run_local(runs: Sequence[RunSpec], out_dir: Path, workers: int, progress: Progress) -> dict[str, str]:
    errors: dict[str, str] = {}
    if workers <= 1 or len(runs) <= 1:
        for r in runs:
            try:
                execute(r, str(out_dir))
                progress(r, "done")
            except Exception as exc:
                errors[r.run_id] = f"{type(exc).__name__}: {exc}"
                progress(r, f"failed: {errors[r.run_id]}")
        return errors
    import multiprocessing as mp

    with ProcessPoolExecutor(
        max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_limit_threads
    ) as pool:
        futures = {pool.submit(execute, r, str(out_dir)): r for r in runs}
        for fut in as_completed(futures):
            r = futures[fut]
            try:
                fut.result()
                progress(r, "done")
            except Exception as exc:
                errors[r.run_id] = f"{type(exc).__name__}: {exc}"
                progress(r, f"failed: {errors[r.run_id]}")
    return errors


def _run_ray(
    runs: Sequence[RunSpec], out_dir: Path, address: str, workers: int | None, progress: Progress
) -> dict[str, str]:
    """The same runs as Ray tasks (``address``: a cluster address, or ``local`` for a local instance)."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(["--ray: ray is not installed (pip install 'ray[default]'); run without --ray"]) from exc
    started = False
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
        started = True
    try:
        task = ray.remote(num_cpus=1)(execute)
        refs = {task.remote(r, str(out_dir)): r for r in runs}
        errors: dict[str, str] = {}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            r = refs[done[0]]
            try:
                ray.get(done[0])
                progress(r, "done")
            except Exception as exc:
                errors[r.run_id] = f"{type(exc).__name__}: {exc}"
                progress(r, f"failed: {errors[r.run_id]}")
        return errors
    finally:
        if started:
            ray.shutdown()


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("matloop", "botorch", "torch", "numpy", "pandas", "pyarrow", "scikit-learn", "ray"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def _emulator_report(spec: SweepSpec, out_dir: Path) -> None:
    from agent.bench.datasets import cross_validate

    emus = [p for p in spec.problems if isinstance(p, EmulatorProblem)]
    if not emus:
        return
    path = out_dir / "emulators.json"
    key = {p.name: p.model_dump(mode="json") for p in emus}
    if path.is_file():
        try:
            old = json.loads(path.read_text())
            if all(old.get(n, {}).get("problem") == key[n] for n in key):
                return  # same problems: the report stands
        except (OSError, ValueError):
            pass
    report = {p.name: {**cross_validate(p), "problem": key[p.name]} for p in emus}
    _write_atomic(path, json.dumps(report, indent=2))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def run_sweep(
    spec: str | Path | SweepSpec,
    out_dir: str | Path,
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    resume: bool = True,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Runs the sweep into ``out_dir`` and returns the tidy results table (also written there).

    ``workers``: local processes (default: all cores; 1 runs in this process). ``ray_address``: run the
    runs as Ray tasks instead (an address, or ``local``). ``resume``: skip runs whose part exists (False
    runs everything again). Runs that raise are reported in ``sweep.json`` and left out of the table (a
    later call retries them); the returned frame's ``attrs`` hold ``executed`` and ``failed`` run ids."""
    # a model built in Python: relative paths are relative to the working folder
    sweep = resolve_paths(spec, Path.cwd()) if isinstance(spec, SweepSpec) else load_sweep(spec)
    out = Path(out_dir)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    runs = expand(sweep)
    todo = [r for r in runs if not (resume and part_path(out, r).is_file() and _valid_part(part_path(out, r)))]
    _emulator_report(sweep, out)
    report = progress or (lambda r, status: log.info("%s: %s", r.describe(), status))
    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    if ray_address is not None and todo:
        errors = _run_ray(todo, out, ray_address, workers, report)
    else:
        errors = _run_local(todo, out, n_workers, report)
    parts = [pd.read_parquet(part_path(out, r)) for r in runs if part_path(out, r).is_file()]
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(COLUMNS))
    df = df.astype(COLUMNS)[list(COLUMNS)]
    df.to_parquet(out / "results.parquet", index=False)
    df.to_csv(out / "results.csv", index=False)
    executed = [r.run_id for r in todo if r.run_id not in errors]
    meta = {
        "spec": sweep.model_dump(mode="json"),
        "strategies": [s.model_dump(mode="json") for s in sweep.strategy_list()],
        "versions": _versions(),
        "started": started,
        "wall_s": time.perf_counter() - t0,
        "runs": len(runs),
        "executed": executed,
        "skipped": len(runs) - len(todo),
        "failed": errors,
        "backend": "ray" if ray_address is not None else ("process-pool" if n_workers > 1 else "serial"),
        "workers": n_workers,
    }
    _write_atomic(out / "sweep.json", json.dumps(meta, indent=2, default=str))
    df.attrs["executed"] = executed
    df.attrs["failed"] = errors
    return df


__all__ = ["execute", "expand", "part_path", "run_sweep"]
