"""Orchestration overhead per experiment (agent + store) with instant fake instruments and a trivial strategy.

Prints JSON: for SQLite and PostgreSQL at 10, 100 and 1000 experiments, the wall time per experiment in ms.
Target: under 10 ms per experiment on SQLite, flat in the number of experiments.
Run: python benchmarks/loop_overhead.py [--pg postgresql://postgres@127.0.0.1:5432/test] [--sizes 10,100,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from agent.lab import Lab
from agent.loop import Agent
from agent.spec import parse_spec
from agent.store import Store
from agent.vclock import VirtualTimeLoop
from instruments.testing import FakeCharacterizer, FakeSynthesizer
from surrogate.testing import CountingStrategy

SPEC = """\
schema_version: 1
name: overhead
seed: 0
space:
  parameters:
    - {name: x, type: float, low: 0, high: 1000000, unit: K}
objectives:
  - {name: y, direction: maximize, unit: ""}
budget: {experiments: N, lanes: 4}
instruments:
  synthesizer: {type: fake}
"""


def one_run(url: str, files: Path, n: int) -> float:
    spec = parse_spec(SPEC.replace("N", str(n)))
    store = Store(url, files)
    row = store.create_campaign(spec.name, "x", "0" * 64, 0, "")
    lab = Lab(
        synthesizer=FakeSynthesizer(duration_s=3600), characterizer=FakeCharacterizer({"y": lambda c: -float(c["x"])})
    )
    agent = Agent(spec, store, row, lab, CountingStrategy(lambda i: {"x": float(i)}))
    t = time.perf_counter()
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        runner.run(agent.run())
    wall = time.perf_counter() - t
    assert len(store.experiments(row.id)) == n  # type: ignore[arg-type]
    store.close()
    return wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--sizes", default="10,100,1000")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, dict[str, float]] = {"sqlite": {}, "postgresql": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            d = Path(tmp) / f"s{n}"
            d.mkdir()
            results["sqlite"][str(n)] = 1000 * one_run(f"sqlite:///{d}/b.db", d, n) / n
        admin = create_engine(args.pg)
        for n in sizes:
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            with admin.begin() as c:
                c.execute(text(f"CREATE SCHEMA {schema}"))
            try:
                url = f"{args.pg}?options=-csearch_path%3D{schema}"
                results["postgresql"][str(n)] = 1000 * one_run(url, Path(tmp) / "pgfiles", n) / n
            finally:
                with admin.begin() as c:
                    c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
    out = {
        "benchmark": "loop_overhead",
        "unit": "ms per experiment",
        "lanes": 4,
        "transitions_per_experiment": 5,
        "results": {k: {n: round(v, 3) for n, v in r.items()} for k, r in results.items()},
        "flatness_sqlite": round(results["sqlite"][str(sizes[-1])] / results["sqlite"][str(sizes[0])], 3),
        "target_ms_sqlite": 10.0,
        "python": platform.python_version(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
