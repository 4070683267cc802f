"""The benchmark report: PNG plots and ``report.md`` from a sweep's tidy results table.

One section per problem × budget × batch size. In each section, per strategy, over its seeds:

* best so far (or simple regret on a log axis where the problem's optimum is known) against the experiment
  number and against lab time, as the median line and a 90 % bootstrap band of the median;
* for pool problems (Liang et al. 2021, npj Comput. Mater. 7:188): Top%(i) with bands and the closed-form
  random line i/N, the enhancement factor EF(i) = Top%(i)/(i/N) and the acceleration factor
  AF(a) = ⌈a·N⌉ / n(a), n(a) the first experiment at which Top% ≥ a;
* a table of the final-budget result, the experiments to Top% 50/80/100 %, AF(0.5), AF(0.8) and EF at a few i,
  each with its 90 % interval, the winner, and whether the winner's lead over the runner-up is significant
  (paired over seeds: Wilcoxon signed-rank, or a bootstrap interval of the median paired difference when
  there are too few seeds for the Wilcoxon test to reach p < 0.05).

A ranking over all sections (``ranking.png``, ``ranking.csv``) and a machine-readable ``report.json`` (the
winner of each section) are written too. Every bootstrap is seeded: the same table gives the same report.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no display needed).
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agent.bench.metrics import random_experiments_to, random_top_fraction

LEVEL = 0.9  # bootstrap interval level of medians
N_BOOT = 1000
BOOT_SEED = 0
ALPHA = 0.05  # significance level of the paired test
WILCOXON_MIN_PAIRS = 6  # with fewer non-zero pairs the exact two-sided p-value cannot be < 0.05
MIN_PAIRS = 5  # below this, no claim of significance at all (the bootstrap of a median of 2-4 values is too liberal)
TOP_LEVELS = (0.5, 0.8, 1.0)
AF_LEVELS = (0.5, 0.8)
REQUIRED = ("problem", "strategy", "seed", "budget", "batch_size", "run_id", "experiment")
_COLORS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive"]


# --------------------------------------------------------------------------------------------- statistics


def _median_sorted(s: np.ndarray) -> np.ndarray:
    """Median along the last axis of an array sorted along it, with no NaN (±inf allowed: a censored value)."""
    n = s.shape[-1]
    if n % 2:
        return s[..., n // 2]
    a, b = s[..., n // 2 - 1], s[..., n // 2]
    with np.errstate(invalid="ignore"):
        return np.where(a == b, a, (a + b) / 2)


def _boot_median(values: np.ndarray, level: float = LEVEL, seed: int = BOOT_SEED) -> tuple[float, float, float]:
    """Median and percentile-bootstrap interval of the non-NaN ``values`` (inf kept: "never reached").
    One value: no interval (NaN bounds)."""
    v = np.asarray(values, dtype=float)
    v = np.sort(v[~np.isnan(v)])
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    med = float(_median_sorted(v))
    if len(v) == 1:
        return med, math.nan, math.nan
    rng = np.random.default_rng(seed)
    meds = _median_sorted(np.sort(v[rng.integers(0, len(v), size=(N_BOOT, len(v)))], axis=1))
    alpha = (1 - level) / 2
    lo, hi = np.quantile(meds, [alpha, 1 - alpha], method="inverted_cdf")
    return med, float(lo), float(hi)


def _band(
    x: np.ndarray, level: float = LEVEL, seed: int = BOOT_SEED
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Per column of ``x`` (runs × points, NaN = no value yet): the median over runs and the bootstrap band."""
    r, t = x.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(x, axis=0) if r else np.full(t, math.nan)
        if r < 2:
            return med, None, None
        rng = np.random.default_rng(seed)
        chunk = max(1, int(2_000_000 // max(1, r * t)))
        meds = []
        for start in range(0, N_BOOT, chunk):
            b = min(chunk, N_BOOT - start)
            meds.append(np.nanmedian(x[rng.integers(0, r, size=(b, r))], axis=1))
        m = np.concatenate(meds)
        alpha = (1 - level) / 2
        lo, hi = np.nanquantile(m, [alpha, 1 - alpha], axis=0)
    return med, lo, hi


@dataclass
class PairedTest:
    method: str  # "wilcoxon", "bootstrap", "identical", "few", "none"
    n_pairs: int
    significant: bool
    p: float = math.nan
    diff: tuple[float, float, float] = (math.nan, math.nan, math.nan)  # median paired difference and its CI

    def text(self, best: str, other: str) -> str:
        if self.method == "none":
            return f"the lead of {best} over {other} could not be tested: fewer than 2 seeds with a result for both"
        if self.method == "few":
            return (
                f"the difference between {best} and {other} is **not significant**: with only {self.n_pairs} paired "
                f"seed(s) that differ (fewer than {MIN_PAIRS}) no test is trusted"
            )
        if self.method == "identical":
            return (
                f"the difference between {best} and {other} is **not significant**: their final-budget results are "
                f"identical on all {self.n_pairs} paired seeds"
            )
        verdict = "significant" if self.significant else "**not significant**"
        if self.method == "wilcoxon":
            how = f"Wilcoxon signed-rank test paired by seed, n = {self.n_pairs}, p = {self.p:.3g}"
        else:
            _, lo, hi = self.diff
            how = (
                f"95 % bootstrap interval of the median paired difference [{_f(lo)}, {_f(hi)}] "
                f"{'excludes' if self.significant else 'includes'} 0, n = {self.n_pairs} seeds; "
                f"too few seeds for a Wilcoxon test to reach p < {ALPHA}"
            )
        return f"the difference between {best} and {other} is {verdict} ({how})"


def _paired_test(a: pd.Series, b: pd.Series) -> PairedTest:
    """Paired test of the final results ``a`` (winner) and ``b`` (runner-up), both indexed by seed.
    A failed run (-inf) ranks below every finite result; seeds missing or failed on both sides are dropped."""
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    joined = joined[~(np.isinf(joined["a"]) & np.isinf(joined["b"]))]
    n = len(joined)
    if n < 2:
        return PairedTest("none", n, False)
    d = (joined["a"] - joined["b"]).to_numpy(dtype=float)
    finite = d[np.isfinite(d)]
    big = (np.abs(finite).max() if len(finite) else 1.0) * 2 + 1
    d = np.where(np.isposinf(d), big, np.where(np.isneginf(d), -big, d))
    if np.all(d == 0):
        return PairedTest("identical", n, False, 1.0, (0.0, 0.0, 0.0))
    if np.count_nonzero(d) < MIN_PAIRS:
        return PairedTest("few", int(np.count_nonzero(d)), False)
    diff = _boot_median(d, level=1 - ALPHA)
    if np.count_nonzero(d) >= WILCOXON_MIN_PAIRS:
        from scipy.stats import wilcoxon

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
        return PairedTest("wilcoxon", n, bool(p < ALPHA), p, diff)
    sig = bool(diff[1] > 0 or diff[2] < 0)
    return PairedTest("bootstrap", n, sig, math.nan, diff)


# --------------------------------------------------------------------------------------------- data


@dataclass
class StrategyRuns:
    """One strategy's runs in one section, as runs × experiments arrays (forward-filled)."""

    name: str
    run_ids: list[str]
    seeds: np.ndarray
    best: np.ndarray
    regret: np.ndarray | None
    top: np.ndarray | None
    lab: np.ndarray
    n_failed_exp: int
    n_exp: int
    failed_runs: int  # runs with no successful experiment

    def final(self, which: str) -> np.ndarray:
        arr = {"best": self.best, "regret": self.regret, "top": self.top}[which]
        assert arr is not None
        return arr[:, -1] if arr.shape[1] else np.full(len(self.run_ids), math.nan)

    def n_to(self, level: float) -> np.ndarray:
        """Per run, the first experiment with Top% ≥ level (inf: not within the budget)."""
        assert self.top is not None
        hit = self.top >= level - 1e-9
        first = np.argmax(hit, axis=1).astype(float) + 1
        return np.where(hit.any(axis=1), first, math.inf)


@dataclass
class Section:
    problem: str
    kind: str
    budget: int
    batch_size: int
    slug: str
    optimum: float
    n_pool: int
    n_top: int
    strategies: list[StrategyRuns]
    missing: list[str] = field(default_factory=list)
    criterion: str = ""
    ranking: list[tuple[str, float]] = field(default_factory=list)
    test: PairedTest | None = None
    pngs: list[Path] = field(default_factory=list)

    @property
    def has_result(self) -> bool:
        return bool(self.ranking) and self.ranking[0][1] > -math.inf

    @property
    def pool(self) -> bool:
        return self.n_pool > 0 and all(s.top is not None for s in self.strategies)

    @property
    def title(self) -> str:
        return f"{self.problem} — budget {self.budget}, batch {self.batch_size}"

    @property
    def x(self) -> np.ndarray:
        return np.arange(1, self.strategies[0].best.shape[1] + 1)


def _wide(g: pd.DataFrame, col: str, t: int) -> np.ndarray:
    w = g.pivot(index="run_id", columns="experiment", values=col).reindex(columns=range(1, t + 1))
    return w.astype(float).ffill(axis=1).to_numpy()


def _strategy_runs(name: str, g: pd.DataFrame, t: int, optimum: float, pool: bool) -> StrategyRuns:
    g = g.sort_values(["run_id", "experiment"]).drop_duplicates(["run_id", "experiment"], keep="last")
    runs = sorted(g["run_id"].unique())
    if "best_so_far" in g and g["best_so_far"].notna().any():
        best = _wide(g, "best_so_far", t)
    else:  # recompute from the scores of the successful experiments
        score = g["score"].where(~g["failed"].astype(bool)) if "failed" in g else g["score"]
        best = _wide(g.assign(_b=score.groupby(g["run_id"]).cummax()), "_b", t)
    regret = None
    if math.isfinite(optimum):
        if "regret" in g and g["regret"].notna().any():
            regret = _wide(g, "regret", t)
            regret = np.fmin.accumulate(regret, axis=1)
            regret[np.isnan(best)] = math.nan
        else:
            regret = optimum - best
    top = None
    if pool and "top_frac" in g:
        top = np.nan_to_num(_wide(g, "top_frac", t), nan=0.0)
    lab = _wide(g, "lab_time_h", t) if "lab_time_h" in g else np.full(best.shape, math.nan)
    seeds = g.groupby("run_id")["seed"].first().reindex(runs).to_numpy()
    failed = g["failed"].astype(bool) if "failed" in g else pd.Series(False, index=g.index)
    ok_runs = g.loc[~failed & g["score"].notna(), "run_id"].nunique() if "score" in g else len(runs)
    return StrategyRuns(
        name=name,
        run_ids=[str(r) for r in runs],
        seeds=seeds,
        best=best,
        regret=regret,
        top=top,
        lab=lab,
        n_failed_exp=int(failed.sum()),
        n_exp=len(g),
        failed_runs=len(runs) - int(ok_runs),
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "problem"


def _first_finite(s: pd.Series | None) -> float:
    if s is None:
        return math.nan
    v = pd.to_numeric(s, errors="coerce").dropna()
    return float(v.iloc[0]) if len(v) else math.nan


def _sections(df: pd.DataFrame) -> list[Section]:
    all_strategies = sorted(df["strategy"].unique())
    out: list[Section] = []
    for (problem, budget, batch), g in df.groupby(["problem", "budget", "batch_size"], sort=True):
        kind = str(g["problem_kind"].iloc[0]) if "problem_kind" in g else ""
        n_pool = int(_first_finite(g.get("n_pool")) if math.isfinite(_first_finite(g.get("n_pool"))) else 0)
        has_top = "top_frac" in g and g["top_frac"].notna().any()
        pool = (kind == "pool" or (not kind and has_top)) and n_pool > 0 and has_top
        n_top = _first_finite(g.get("n_top"))
        if pool and not math.isfinite(n_top):
            n_top = max(1, math.ceil(0.05 * n_pool - 1e-9))
        optimum = _first_finite(g.get("optimum"))
        t = max(int(budget), int(g["experiment"].max()))
        strategies = [_strategy_runs(str(s), gs, t, optimum, pool) for s, gs in g.groupby("strategy", sort=True)]
        present = {s.name for s in strategies}
        out.append(
            Section(
                problem=str(problem),
                kind=kind,
                budget=int(budget),
                batch_size=int(batch),
                slug=f"{_slug(str(problem))}_b{int(budget)}_q{int(batch)}",
                optimum=optimum,
                n_pool=n_pool if pool else 0,
                n_top=int(n_top) if pool else 0,
                strategies=strategies,
                missing=[s for s in all_strategies if s not in present],
            )
        )
    return out


def sections(df: pd.DataFrame) -> list[Section]:
    """The sections (problem × budget × batch size) of a sweep's tidy results table, strategies' runs as arrays."""
    return _sections(_validate(df))


def _rank(sec: Section) -> None:
    """Orders the strategies by the median final result (failed runs count as worst) and tests the lead."""
    which = "top" if sec.pool else "best"
    sec.criterion = (
        "the fraction of the top-5 % set found at the final budget (Top%), ties broken by the best score"
        if sec.pool
        else "the best score at the final budget"
        + (" (equivalently the lowest regret)" if math.isfinite(sec.optimum) else "")
    )
    keyed: list[tuple[float, float, float, str]] = []
    finals: dict[str, pd.Series] = {}
    for s in sec.strategies:
        v = s.final(which).astype(float)
        v = np.where(np.isnan(v), -math.inf, v)
        finals[s.name] = pd.Series(v, index=s.seeds).groupby(level=0).first()
        b = s.final("best").astype(float)
        b = np.where(np.isnan(b), -math.inf, b)
        med = float(_median_sorted(np.sort(v))) if len(v) else -math.inf
        tie = float(_median_sorted(np.sort(b))) if len(b) else -math.inf
        with np.errstate(invalid="ignore"):
            mean = float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else -math.inf
        keyed.append((med, tie, mean, s.name))
    keyed.sort(key=lambda k: (-_nan_low(k[0]), -_nan_low(k[1]), -_nan_low(k[2]), k[3]))
    sec.ranking = [(k[3], k[0]) for k in keyed]
    if len(keyed) >= 2:
        sec.test = _paired_test(finals[keyed[0][3]], finals[keyed[1][3]])


def _nan_low(v: float) -> float:
    return -math.inf if math.isnan(v) else v


# --------------------------------------------------------------------------------------------- plots


def _figure(w: float, h: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _draw(ax: Any, x: np.ndarray, y: np.ndarray, color: str, label: str, floor: float | None = None) -> None:
    med, lo, hi = _band(y)
    if floor is not None:
        med = np.maximum(med, floor)
        lo = None if lo is None else np.maximum(lo, floor)
        hi = None if hi is None else np.maximum(hi, floor)
    ax.plot(x, med, color=color, lw=1.6, label=f"{label} (n={y.shape[0]})")
    if lo is not None and hi is not None:
        ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)


def _on_time_grid(sr: StrategyRuns, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Each run's step curve ``y`` (per experiment) read at the lab times in ``grid``."""
    out = np.full((y.shape[0], len(grid)), math.nan)
    for r in range(y.shape[0]):
        t = sr.lab[r]
        ok = np.isfinite(t)
        if not ok.any():
            continue
        tt, yy = t[ok], y[r][ok]
        order = np.argsort(tt, kind="stable")
        tt, yy = tt[order], yy[order]
        k = np.searchsorted(tt, grid, side="right") - 1
        out[r] = np.where(k >= 0, yy[np.clip(k, 0, None)], math.nan)
    return out


def _color(names: list[str], name: str) -> str:
    return _COLORS[names.index(name) % len(_COLORS)]


def _plot_progress(sec: Section, names: list[str], out_dir: Path) -> list[Path]:
    use_regret = math.isfinite(sec.optimum) and all(s.regret is not None for s in sec.strategies)
    ylabel = "simple regret (optimum − best score)" if use_regret else "best score so far"
    floor = None
    if use_regret:
        vals = np.concatenate([s.regret[np.isfinite(s.regret)].ravel() for s in sec.strategies if s.regret is not None])
        pos = vals[vals > 0]
        floor = float(pos.min() / 10) if len(pos) else 1e-12
    paths: list[Path] = []

    def series(s: StrategyRuns) -> np.ndarray:
        return s.regret if use_regret and s.regret is not None else s.best

    fig = _figure(7, 4.5)
    ax = fig.subplots()
    for s in sec.strategies:
        _draw(ax, sec.x, series(s), _color(names, s.name), s.name, floor)
    ax.set_xlabel("experiment")
    ax.set_ylabel(ylabel)
    if use_regret:
        ax.set_yscale("log")
    ax.set_title(f"{sec.title}: median and 90 % bootstrap band")
    ax.legend(fontsize=8)
    p = out_dir / f"{sec.slug}_{'regret' if use_regret else 'best'}.png"
    fig.savefig(p)
    paths.append(p)

    tmax = max((float(np.nanmax(s.lab)) for s in sec.strategies if np.isfinite(s.lab).any()), default=math.nan)
    if math.isfinite(tmax) and tmax > 0:
        grid = np.linspace(0, tmax, 200)
        fig = _figure(7, 4.5)
        ax = fig.subplots()
        for s in sec.strategies:
            _draw(ax, grid, _on_time_grid(s, series(s), grid), _color(names, s.name), s.name, floor)
        ax.set_xlabel("lab time [h]")
        ax.set_ylabel(ylabel)
        if use_regret:
            ax.set_yscale("log")
        ax.set_title(f"{sec.title}: against lab time")
        ax.legend(fontsize=8)
        p = out_dir / f"{sec.slug}_{'regret' if use_regret else 'best'}_vs_time.png"
        fig.savefig(p)
        paths.append(p)
    return paths


def _plot_pool(sec: Section, names: list[str], out_dir: Path) -> list[Path]:
    x = sec.x
    n = sec.n_pool
    fig = _figure(7, 4.5)
    ax = fig.subplots()
    for s in sec.strategies:
        assert s.top is not None
        _draw(ax, x, s.top, _color(names, s.name), s.name)
    ax.plot(x, random_top_fraction(x, n), "k--", lw=1, label="random, E = i/N")
    ax.set_xlabel("experiment i")
    ax.set_ylabel(f"Top%(i): fraction of the top {sec.n_top} of {n} found")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{sec.title}: Top%")
    ax.legend(fontsize=8)
    p1 = out_dir / f"{sec.slug}_top.png"
    fig.savefig(p1)

    fig = _figure(12, 4.5)
    ax_ef, ax_af = fig.subplots(1, 2)
    levels = np.arange(1, sec.n_top + 1) / sec.n_top
    for s in sec.strategies:
        assert s.top is not None
        c = _color(names, s.name)
        _draw(ax_ef, x, s.top / random_top_fraction(x, n), c, s.name)
        af_med, af_lo, af_hi = [], [], []
        for a in levels:
            med, lo, hi = _boot_median(s.n_to(a))
            nr = random_experiments_to(a, n)
            af_med.append(nr / med if 0 < med < math.inf else math.nan)
            af_lo.append(nr / hi if hi > 0 else math.nan)
            af_hi.append(nr / lo if lo > 0 else math.nan)
        ax_af.plot(levels, af_med, "o-", color=c, ms=3, label=s.name)
        if len(s.run_ids) >= 2:
            ax_af.fill_between(levels, af_lo, af_hi, color=c, alpha=0.2, lw=0)
    ax_ef.axhline(1, color="k", ls="--", lw=1, label="random")
    ax_ef.set_xlabel("experiment i")
    ax_ef.set_ylabel("EF(i) = Top%(i) / (i/N)")
    ax_ef.set_title("enhancement factor")
    ax_ef.legend(fontsize=8)
    ax_af.axhline(1, color="k", ls="--", lw=1, label="random")
    ax_af.set_xlabel("Top% level a")
    ax_af.set_ylabel("AF(a) = ⌈aN⌉ / n(a)")
    ax_af.set_title("acceleration factor (median n(a); unreached levels omitted)")
    ax_af.legend(fontsize=8)
    fig.suptitle(f"{sec.title}: 90 % bootstrap bands")
    p2 = out_dir / f"{sec.slug}_ef_af.png"
    fig.savefig(p2)
    return [p1, p2]


def _plot_ranking(sections: list[Section], names: list[str], out_dir: Path) -> Path:
    ranks = np.full((len(names), len(sections)), math.nan)
    for j, sec in enumerate(sections):
        for r, (name, _) in enumerate(sec.ranking):
            ranks[names.index(name), j] = r + 1
    fig = _figure(max(5, 1.2 * len(sections) + 3), max(2.5, 0.5 * len(names) + 1.5))
    ax = fig.subplots()
    masked = np.ma.masked_invalid(ranks)
    im = ax.imshow(masked, cmap="RdYlGn_r", vmin=1, vmax=max(2, len(names)), aspect="auto")
    for i in range(len(names)):
        for j in range(len(sections)):
            ax.text(j, i, "–" if np.isnan(ranks[i, j]) else f"{int(ranks[i, j])}", ha="center", va="center")
    ax.set_yticks(range(len(names)), names)
    ax.set_xticks(
        range(len(sections)), [f"{s.problem}\nb{s.budget} q{s.batch_size}" for s in sections], rotation=30, ha="right"
    )
    fig.colorbar(im, ax=ax, label="rank (1 = best)")
    ax.set_title("rank per problem (– : not run)")
    p = out_dir / "ranking.png"
    fig.savefig(p)
    return p


# --------------------------------------------------------------------------------------------- text


def _f(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    return f"{v:.4g}"


def _ci(t: tuple[float, float, float], single: bool) -> str:
    med, lo, hi = t
    if math.isnan(med):
        return "—"
    if single or math.isnan(lo):
        return _f(med)
    return f"{_f(med)} [{_f(lo)}, {_f(hi)}]"


def _n_text(t: tuple[float, float, float], budget: int, single: bool) -> str:
    med, lo, hi = t
    if math.isnan(med):
        return "—"

    def one(v: float) -> str:
        return f">{budget}" if math.isinf(v) else f"{v:g}"  # experiment counts: whole, or halves of medians

    if single or math.isnan(lo):
        return one(med)
    return f"{one(med)} [{one(lo)}, {one(hi)}]"


def _af_text(t: tuple[float, float, float], nr: float, single: bool) -> str:
    med, lo, hi = t
    if math.isnan(med):
        return "—"
    if math.isinf(med):
        return "not reached"

    def af(v: float) -> float:
        return 0.0 if math.isinf(v) else nr / v

    if single or math.isnan(lo):
        return _f(af(med))
    return f"{_f(af(med))} [{_f(af(hi))}, {_f(af(lo))}]"


def _ef_points(budget: int) -> list[int]:
    pts = sorted({max(1, round(budget * f)) for f in (0.1, 0.25, 0.5, 1.0)})
    return pts


def _section_md(sec: Section, rel: str) -> list[str]:
    lines = [f"## {sec.title}", ""]
    facts = [f"problem kind: {sec.kind or 'unknown'}"]
    if math.isfinite(sec.optimum):
        facts.append(f"known optimum {_f(sec.optimum)} (regret = optimum − best score)")
    if sec.pool:
        facts.append(f"pool of N = {sec.n_pool}, top set = ⌈0.05·N⌉ = {sec.n_top}")
    lines.append("; ".join(facts) + ".")
    lines.append("")
    n_runs = {s.name: len(s.run_ids) for s in sec.strategies}
    single = max(n_runs.values()) <= 1
    notes = []
    if single:
        notes.append("only one seed per strategy: no intervals and no significance test are possible")
    elif min(n_runs.values()) <= 1:
        lone = [k for k, v in n_runs.items() if v <= 1]
        notes.append(f"one seed only for {', '.join(lone)}: no interval for it")
    if sec.missing:
        notes.append(f"not run on this problem: {', '.join(sec.missing)}")
    failed = [f"{s.name} ({s.failed_runs} of {len(s.run_ids)})" for s in sec.strategies if s.failed_runs]
    if failed:
        notes.append(
            "runs with no successful experiment (excluded from the medians of the table, counted as worst in the "
            f"ranking): {', '.join(failed)}"
        )
    counts = {len(s.run_ids) for s in sec.strategies}
    if len(counts) > 1:
        notes.append("strategies have different numbers of runs: " + ", ".join(f"{k} {v}" for k, v in n_runs.items()))
    for n in notes:
        lines.append(f"> Note: {n}.")
    if notes:
        lines.append("")

    use_regret = math.isfinite(sec.optimum) and all(s.regret is not None for s in sec.strategies)
    header = ["strategy", "runs", "failed exp.", "final best score"]
    if use_regret:
        header.append("final regret")
    ef_pts = _ef_points(sec.budget) if sec.pool else []
    if sec.pool:
        header += ["final Top%"]
        header += [f"n to Top% {int(a * 100)} %" for a in TOP_LEVELS]
        header += [f"AF({a:g})" for a in AF_LEVELS]
        header += [f"EF({i})" for i in ef_pts]
    rows = []
    order = [name for name, _ in sec.ranking]
    by_name = {s.name: s for s in sec.strategies}
    for name in order:
        s = by_name[name]
        one = len(s.run_ids) <= 1
        row = [f"**{name}**" if name == order[0] else name, str(len(s.run_ids)), f"{s.n_failed_exp}/{s.n_exp}"]
        row.append(_ci(_boot_median(s.final("best")), one))
        if use_regret:
            row.append(_ci(_boot_median(s.final("regret")), one))
        if sec.pool:
            row.append(_ci(_boot_median(s.final("top")), one))
            for a in TOP_LEVELS:
                row.append(_n_text(_boot_median(s.n_to(a)), sec.budget, one))
            for a in AF_LEVELS:
                row.append(_af_text(_boot_median(s.n_to(a)), random_experiments_to(a, sec.n_pool), one))
            assert s.top is not None
            for i in ef_pts:
                ef = s.top[:, i - 1] / float(random_top_fraction(i, sec.n_pool))
                row.append(_ci(_boot_median(ef), one))
        rows.append(row)
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines.append("")
    interval = "medians over seeds" if single else "medians over seeds with 90 % bootstrap intervals [lo, hi]"
    lines.append(
        f"Values are {interval}; `>{sec.budget}`: Top% level not reached within the budget; AF = ⌈a·N⌉ / n(a)."
        if sec.pool
        else f"Values are {interval}."
    )
    lines.append("")
    winner = order[0]
    lines.append(f"Ranked by {sec.criterion}.")
    lines.append("")
    if not sec.has_result:
        lines.append("**No winner**: no strategy has a run with a successful experiment.")
    elif len(order) == 1:
        lines.append(f"**Winner: {winner}** (the only strategy run on this problem).")
    else:
        assert sec.test is not None
        runner = order[1]
        med_w, med_r = sec.ranking[0][1], sec.ranking[1][1]
        tie = " (the medians are equal; the tie is broken as stated above)" if med_w == med_r else ""
        if sec.test.significant:
            lines.append(f"**Winner: {winner}**, ahead of {runner}{tie}: {sec.test.text(winner, runner)}.")
        else:
            lines.append(
                f"**Winner: {winner}** by the median, ahead of the runner-up {runner}{tie}, but "
                f"{sec.test.text(winner, runner)}. The data do not separate them."
            )
    lines.append("")
    for p in sec.pngs:
        lines.append(f"![{p.stem}]({rel}{p.name})")
    lines.append("")
    return lines


def _validate(df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"the results table lacks the column(s) {', '.join(missing)}")
    if "score" not in df.columns and "best_so_far" not in df.columns:
        raise ValueError("the results table has neither a 'score' nor a 'best_so_far' column")
    df = df.copy()
    for c in ("seed", "budget", "batch_size", "experiment"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df = df.dropna(subset=["seed", "budget", "batch_size", "experiment"])
    for c in ("seed", "budget", "batch_size", "experiment"):
        df[c] = df[c].astype(int)
    df["strategy"] = df["strategy"].astype(str)
    df["problem"] = df["problem"].astype(str)
    df["run_id"] = df["run_id"].astype(str)
    if "failed" in df.columns:
        df["failed"] = df["failed"].fillna(False).astype(bool)
    for c in ("score", "best_so_far", "regret", "top_frac", "lab_time_h", "optimum", "n_pool", "n_top"):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def write_report(df: pd.DataFrame, out_dir: Path | str, *, title: str | None = None) -> Path:
    """Writes the PNGs, ``ranking.csv``, ``report.json`` and ``report.md`` of a sweep's tidy results table
    into ``out_dir`` (made if missing); returns the path of ``report.md``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = _validate(df)
    if df.empty:
        raise ValueError("the results table has no rows")
    sections = _sections(df)
    names = sorted(df["strategy"].unique())
    for sec in sections:
        _rank(sec)
        sec.pngs = _plot_progress(sec, names, out_dir)
        if sec.pool:
            sec.pngs += _plot_pool(sec, names, out_dir)
    ranking_png = _plot_ranking(sections, names, out_dir)

    rank_rows = [
        {
            "problem": s.problem,
            "budget": s.budget,
            "batch_size": s.batch_size,
            "strategy": name,
            "rank": r + 1,
            "criterion_median": value,
        }
        for s in sections
        for r, (name, value) in enumerate(s.ranking)
    ]
    ranks = pd.DataFrame(rank_rows)
    ranks.to_csv(out_dir / "ranking.csv", index=False)
    mean_rank = ranks.groupby("strategy")["rank"].agg(["mean", "count"]).sort_values(["mean", "count"])
    wins = pd.Series([s.ranking[0][0] for s in sections if s.has_result], dtype=object).value_counts()

    summary = [
        {
            "problem": s.problem,
            "kind": s.kind,
            "budget": s.budget,
            "batch_size": s.batch_size,
            "winner": s.ranking[0][0] if s.has_result else None,
            "runner_up": s.ranking[1][0] if len(s.ranking) > 1 and s.has_result else None,
            "significant": bool(s.test.significant) if s.test and s.has_result else None,
            "test": s.test.method if s.test else None,
            "p": None if s.test is None or math.isnan(s.test.p) else s.test.p,
            "criterion": s.criterion,
            "ranking": [n for n, _ in s.ranking],
        }
        for s in sections
    ]
    (out_dir / "report.json").write_text(json.dumps({"title": title, "sections": summary}, indent=2) + "\n")

    sweep = ", ".join(sorted(df["sweep"].astype(str).unique())) if "sweep" in df.columns else ""
    heading = title or (f"Benchmark report: {sweep}" if sweep else "Benchmark report")
    n_runs = df["run_id"].nunique()
    md = [
        f"# {heading}",
        "",
        f"{n_runs} runs: {len(names)} strategies ({', '.join(names)}) on {df['problem'].nunique()} problem(s), "
        f"{len(sections)} section(s) (one per problem × budget × batch size).",
        "",
        f"**Statistics.** Curves and table entries are medians over seeds; intervals are {int(LEVEL * 100)} % "
        f"percentile-bootstrap intervals of the median ({N_BOOT} resamples of the seeds, generator seed "
        f"{BOOT_SEED}, so the report is reproducible). The winner of a section is the strategy with the best "
        "median final-budget result. Whether its lead over the runner-up is significant is decided by a test "
        "paired by seed on the final-budget results: the two-sided Wilcoxon signed-rank test (p < 0.05) when "
        f"there are at least {WILCOXON_MIN_PAIRS} seeds with a non-zero difference; with fewer seeds, where that "
        "test cannot reach p < 0.05, by whether the 95 % bootstrap interval of the median paired difference "
        f"excludes zero (at least {MIN_PAIRS} seeds; with fewer, no difference is called significant). Each "
        "section says which was used.",
        "",
        "## Ranking",
        "",
        "| problem | budget | batch | winner | runner-up | lead significant? | ranking |",
        "|---|---|---|---|---|---|---|",
    ]
    for s, row in zip(sections, summary, strict=True):
        sig = "n/a" if row["significant"] is None else ("yes" if row["significant"] else "**no**")
        md.append(
            f"| {s.problem} | {s.budget} | {s.batch_size} | {row['winner'] or '—'} | {row['runner_up'] or '—'} | {sig} "
            f"| {' > '.join(n for n, _ in s.ranking)} |"
        )
    md += ["", "Mean rank over the sections each strategy was run on (1 = best):", ""]
    md += ["| strategy | mean rank | sections | wins |", "|---|---|---|---|"]
    for name, r in mean_rank.iterrows():
        md.append(f"| {name} | {r['mean']:.2f} | {int(r['count'])} | {int(wins.get(name, 0))} |")
    md += ["", f"![ranking]({ranking_png.name})", ""]
    for sec in sections:
        md += _section_md(sec, "")
    path = out_dir / "report.md"
    path.write_text("\n".join(md))
    return path


__all__ = ["write_report"]
