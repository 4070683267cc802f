"""Regenerates ``docs/benchmarks.md`` and its plots: runs the benchmark sweeps with `matloop bench` (resuming what
is already in ``--runs``), then writes each sweep's report (tables of experiments to 50/80/100 % of the top set,
AF and EF per strategy, curves) and the two verdicts of `agent.bench.verdict`: matloop's default against the best
peer (experiments to 80 % of the top 5 %, paired by seed) and against random search on every problem.

    python benchmarks/benchmarks_doc.py                       # everything the sweeps say (hours on 2 cores)
    python benchmarks/benchmarks_doc.py --seeds 10 --skip ax-pool baybe --workers 2   # a smaller, faster subset
    python benchmarks/benchmarks_doc.py --report-only         # rewrite the document from the runs already made

Prints one JSON object (the verdicts) on stdout. Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
#: in each sweep's run folder: the command that made its runs (the document quotes it)
COMMAND_FILE = "made_by.txt"
SWEEPS = ["peers_pool", "peers_continuous", "sim_lab"]
#: the label of matloop's default strategy in each sweep: on pools the botorch pool strategy with its default
#: options, on continuous problems `surrogate.registry.DEFAULT_STRATEGY` (ax)
DEFAULT_LABELS = {"peers_pool": "matloop", "peers_continuous": "ax", "sim_lab": "ax"}
#: the peers the default is measured against on pools (Liang et al. protocol)
PEERS = ["botorch-logei", "botorch-ucb", "ax-pool", "baybe", "sobol", "random"]


def _resolve(value: str, base: Path) -> str:
    """A path of the sweep file made absolute: relative to the sweep's folder when it exists there, else to the
    working folder (what `matloop bench` tries, in that order)."""
    p = Path(value)
    if p.is_absolute():
        return value
    return str((base / p).resolve() if (base / p).exists() else p.resolve())


def derived_sweep(
    path: Path, seeds: int | None, skip: list[str], batch_sizes: list[int] | None = None
) -> dict[str, Any]:
    """The sweep of ``path`` with absolute data/campaign paths, ``seeds`` and ``batch_sizes`` (when given) and
    without the strategies labelled or named in ``skip`` (also the baselines ``random``/``sobol``)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for p in data["problems"]:
        if "campaign" in p:
            p["campaign"] = _resolve(p["campaign"], path.parent)
        if isinstance(p.get("data"), dict) and "path" in p["data"]:
            p["data"]["path"] = _resolve(p["data"]["path"], path.parent)
    if seeds is not None:
        data["seeds"] = seeds
    if batch_sizes:
        data["batch_sizes"] = batch_sizes
    data["strategies"] = [s for s in data.get("strategies", []) if (s.get("label") or s["name"]) not in skip]
    if {"random", "sobol"} & set(skip):
        data["baselines"] = False
        data["strategies"] += [{"name": b} for b in ("random", "sobol") if b not in skip]
    return data


def run_sweep(
    name: str,
    runs: Path,
    seeds: int | None,
    skip: list[str],
    workers: int | None,
    batch_sizes: list[int] | None,
    command: str = "",
) -> Path:
    """Runs sweep ``name`` into ``runs/name`` (resuming) and records ``command`` there, for the document."""
    out = runs / name
    out.mkdir(parents=True, exist_ok=True)
    sweep = runs / f"{name}.yaml"
    source = ROOT / "benchmarks" / "bench_sweeps" / f"{name}.yaml"
    sweep.write_text(yaml.safe_dump(derived_sweep(source, seeds, skip, batch_sizes)))
    cmd = [sys.executable, "-c", "from agent.cli import main; main()", "bench", str(sweep), "--out", str(out)]
    if workers:
        cmd += ["--workers", str(workers)]
    subprocess.run(cmd, check=True, cwd=ROOT)
    (out / COMMAND_FILE).write_text(command + "\n", encoding="utf-8")
    return out


def _demote(md: str, image_dir: str) -> list[str]:
    """A sweep's report.md as a section of the document: headings one level down, image links into ``image_dir``."""
    lines = []
    for line in md.splitlines():
        if line.startswith("#"):
            line = "#" + line
        lines.append(line.replace("](", f"]({image_dir}/") if "![" in line else line)
    return lines


def _pct(v: float) -> str:
    return "n/a" if math.isnan(v) else ("−∞" if v == -math.inf else f"{v * 100:+.1f} %")


def _n(v: float, budget: int) -> str:
    return f">{budget}" if math.isinf(v) else f"{v:g}"


def _v(v: float, budget: int) -> str:
    """A criterion value: experiments (inf: more than the budget) or a score."""
    return f">{budget}" if v == math.inf else f"{v:.4g}"


def write_doc(runs: Path, doc: Path, names: list[str], command: str) -> dict[str, Any]:
    from agent.bench.report import write_report
    from agent.bench.verdict import against_random, versus_best_peer

    img_root = doc.parent / "img" / "benchmarks"
    verdicts: dict[str, Any] = {}
    body: list[str] = []
    peer_rows: list[str] = []
    random_rows: list[str] = []
    for name in names:
        results = runs / name / "results.parquet"
        if not results.is_file():
            continue
        df = pd.read_parquet(results)
        images = img_root / name
        if images.exists():
            shutil.rmtree(images)
        report = write_report(df, images, title=f"Sweep `{name}`")
        for extra in ("report.json", "ranking.csv"):
            (images / extra).unlink(missing_ok=True)
        md = report.read_text(encoding="utf-8")
        report.unlink()
        made_by = runs / name / COMMAND_FILE
        section = _demote(md, f"img/benchmarks/{name}")
        if made_by.is_file():
            section[1:1] = ["", f"Runs made by `{made_by.read_text(encoding='utf-8').strip()}`."]
        body += [*section, ""]
        default = DEFAULT_LABELS[name]
        peers = versus_best_peer(df, default, PEERS)
        checks = against_random(df, default)
        verdicts[name] = {"versus_best_peer": [asdict(v) for v in peers], "against_random": [asdict(c) for c in checks]}
        for v in peers:
            peer_rows.append(
                f"| {v.problem} | {v.budget} | {v.other} | {_n(v.median, v.budget)} | {_n(v.other_median, v.budget)} | "
                f"{_pct(v.reduction)} | [{_pct(v.ci90[0])}, {_pct(v.ci90[1])}] | {v.p_fewer:.3g} | {v.n_pairs} |"
            )
        for c in checks:
            random_rows.append(
                f"| {c.problem} | {c.budget} | {c.batch_size} | {c.strategy} | {c.criterion} | "
                f"{_v(c.median, c.budget)} | {_v(c.random_median, c.budget)} "
                f"| {c.p_worse:.3g} | {'**worse**' if c.worse else 'no'} |"
            )
    head = [
        "# Benchmarks: matloop's default strategies against the peers",
        "",
        f"Generated on {date.today().isoformat()} by `{command}` ({platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}). Every strategy runs on the same problems, seeds and initial points "
        "(`matloop bench`); the sweeps are in `benchmarks/bench_sweeps/`. `matloop` is the default strategy with "
        "its default options on pools, and `ax` (the default `strategy.name` of a campaign) on continuous problems; "
        "the peers are what a lab would otherwise use (`surrogate/peers/`).",
        "",
        "## The default against the best peer (pool problems, Liang et al. protocol)",
        "",
        "Experiments needed to find 80 % of the top 5 % of the pool (2 random initial candidates shared by all "
        "strategies of a seed, one experiment per cycle); the best peer is the one with the fewest median "
        "experiments. Reduction = 1 − median(matloop) / median(peer), with a 90 % paired-bootstrap interval; p: "
        "one-sided Wilcoxon signed-rank test that matloop needs fewer.",
        "",
        "| problem | budget | best peer | matloop | peer | reduction | 90 % interval | p | seeds |",
        "|---|---|---|---|---|---|---|---|---|",
        *peer_rows,
        "",
        "## Never worse than random",
        "",
        "matloop's default against random search on every problem and batch size, paired by seed; worse = "
        "one-sided Wilcoxon p < 0.05 that random does better.",
        "",
        "| problem | budget | batch | default | criterion | default's median | random's median | p | worse? |",
        "|---|---|---|---|---|---|---|---|---|",
        *random_rows,
        "",
    ]
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text("\n".join(head + body) + "\n", encoding="utf-8")
    return verdicts


def _without_sweeps(argv: list[str]) -> list[str]:
    """``argv`` without ``--sweeps`` and its values (each sweep's own command names only that sweep)."""
    out, skipping = [], False
    for a in argv:
        if a == "--sweeps":
            skipping = True
            continue
        if skipping and not a.startswith("--"):
            continue
        skipping = False
        out.append(a)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "benchmarks")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    ap.add_argument("--sweeps", nargs="+", default=SWEEPS, choices=SWEEPS)
    ap.add_argument("--seeds", type=int, default=None, help="seeds per run (default: the sweep's)")
    ap.add_argument("--skip", nargs="*", default=[], help="strategy labels or names to leave out")
    ap.add_argument("--batch-sizes", nargs="*", type=int, default=None, help="default: the sweep's")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--report-only", action="store_true", help="run nothing; write from the runs in --runs")
    args = ap.parse_args()
    command = "python benchmarks/benchmarks_doc.py " + " ".join(sys.argv[1:])
    if not args.report_only:
        for name in args.sweeps:
            one = f"python benchmarks/benchmarks_doc.py --sweeps {name} " + " ".join(_without_sweeps(sys.argv[1:]))
            run_sweep(name, args.runs, args.seeds, args.skip, args.workers, args.batch_sizes, one.strip())
    verdicts = write_doc(args.runs, args.doc, args.sweeps, command.strip())
    print(json.dumps(verdicts, indent=1, default=str))


if __name__ == "__main__":
    main()
