"""``matloop plot``: PNGs of a campaign's progress (best-so-far vs experiment and vs lab time), its Pareto
front (several objectives) and the partial dependence of a GP fitted on its completed experiments.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no display needed).
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.lifecycle import ExperimentState
from agent.results import Scored

if TYPE_CHECKING:
    from agent.campaign import Campaign


def _figure(w: float, h: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def write_plots(campaign: Campaign, out_dir: Path, *, grid_size: int = 25) -> list[Path]:
    """Writes ``best_so_far.png``, ``pareto.png`` (two objectives or more) and ``partial_dependence_<objective>.png``
    (three completed experiments or more) into ``out_dir``; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scored = campaign.scored()
    paths = [_best_so_far(campaign, scored, out_dir / "best_so_far.png")]
    if len(campaign.spec.objectives) >= 2:
        paths.append(_pareto(campaign, scored, out_dir / "pareto.png"))
    paths += _partial_dependence(campaign, out_dir, grid_size)
    return paths


def _lab_hours(campaign: Campaign) -> dict[int, float]:
    row = campaign.row
    if row is None or row.id is None:
        return {}
    return {
        e.index: e.lab_time_end_s / 3600
        for e in campaign.store.experiments(row.id)
        if e.state == ExperimentState.COMPLETED and e.lab_time_end_s is not None
    }


def _best_so_far(campaign: Campaign, scored: list[Scored], path: Path) -> Path:
    spec = campaign.spec
    hours = _lab_hours(campaign)
    k = len(spec.objectives)
    fig = _figure(11, 3.6 * k)
    axes = fig.subplots(k, 2, squeeze=False)
    for i, obj in enumerate(spec.objectives):
        ax_n, ax_t = axes[i]
        label = f"{obj.name} [{obj.unit}]" if obj.unit not in ("", "1") else obj.name
        for ax, xs_of, xlabel in (
            (ax_n, lambda s: float(s.index), "experiment"),
            (ax_t, lambda s: hours.get(s.index, float("nan")), "lab time [h]"),
        ):
            feas = [s for s in scored if s.feasible]
            infeas = [s for s in scored if not s.feasible]
            ax.scatter(
                [xs_of(s) for s in feas], [s.values[obj.name][0] for s in feas], s=18, c="tab:blue", label="feasible"
            )
            if infeas:
                ax.scatter(
                    [xs_of(s) for s in infeas],
                    [s.values[obj.name][0] for s in infeas],
                    s=18,
                    marker="x",
                    c="tab:gray",
                    label="infeasible",
                )
            order = sorted(feas, key=xs_of)
            bx: list[float] = []
            by: list[float] = []
            best_score: float | None = None
            best_value = 0.0
            for s in order:
                if best_score is None or s.scores[i] > best_score:
                    best_score, best_value = s.scores[i], s.values[obj.name][0]
                bx.append(xs_of(s))
                by.append(best_value)
            if bx:
                ax.step(bx, by, where="post", c="tab:red", label="best so far")
            if obj.direction == "target" and obj.target is not None:
                ax.axhline(obj.target, ls="--", c="k", lw=0.8, label="target")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(label)
            ax.set_title(f"{obj.direction} {obj.name}")
            if scored:
                ax.legend(fontsize=8)
    if not scored:
        fig.suptitle(f"{spec.name}: no completed experiment yet")
    else:
        fig.suptitle(f"{spec.name}: best so far")
    fig.savefig(path)
    return path


def _pareto(campaign: Campaign, scored: list[Scored], path: Path) -> Path:
    spec = campaign.spec
    front = {s.index for s in campaign.best()}
    pairs = list(combinations(range(len(spec.objectives)), 2))
    fig = _figure(5.5 * len(pairs), 5)
    axes = fig.subplots(1, len(pairs), squeeze=False)[0]
    for ax, (a, b) in zip(axes, pairs, strict=True):
        oa, ob = spec.objectives[a], spec.objectives[b]
        rest = [s for s in scored if s.index not in front]
        top = sorted((s for s in scored if s.index in front), key=lambda s: s.values[oa.name][0])
        ax.scatter(
            [s.values[oa.name][0] for s in rest],
            [s.values[ob.name][0] for s in rest],
            c=["tab:gray" if s.feasible else "lightgray" for s in rest],
            s=18,
            label="observed",
        )
        if top:
            ax.scatter(
                [s.values[oa.name][0] for s in top],
                [s.values[ob.name][0] for s in top],
                c="tab:red",
                s=36,
                label="non-dominated (feasible)",
                zorder=3,
            )
            if len(spec.objectives) == 2:
                ax.plot([s.values[oa.name][0] for s in top], [s.values[ob.name][0] for s in top], c="tab:red", lw=0.8)
            for s in top:
                ax.annotate(str(s.index), (s.values[oa.name][0], s.values[ob.name][0]), fontsize=7)
        for o, setter in ((oa, ax.axvline), (ob, ax.axhline)):
            if o.threshold is not None:
                setter(o.threshold, ls="--", c="k", lw=0.8)
        ax.set_xlabel(f"{oa.name} ({oa.direction}) [{oa.unit}]")
        ax.set_ylabel(f"{ob.name} ({ob.direction}) [{ob.unit}]")
        ax.legend(fontsize=8)
    fig.suptitle(f"{spec.name}: Pareto front ({len(front)} non-dominated of {len(scored)})")
    fig.savefig(path)
    return path


def _partial_dependence(campaign: Campaign, out_dir: Path, grid_size: int) -> list[Path]:
    from surrogate.base import StrategyError
    from surrogate.partial_dependence import partial_dependence

    spec = campaign.spec
    observations = campaign.observations()
    paths = []
    for obj in spec.objectives:
        try:
            pd = partial_dependence(spec.space, observations, obj.name, grid_size=grid_size, seed=spec.seed)
        except StrategyError:
            continue  # too few completed experiments for a model
        n = len(pd)
        cols = min(3, n)
        rows = (n + cols - 1) // cols
        fig = _figure(4.2 * cols, 3.2 * rows)
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax, item in zip(axes, pd.values(), strict=False):
            lo = [m - 2 * s for m, s in zip(item.mean, item.sigma, strict=True)]
            hi = [m + 2 * s for m, s in zip(item.mean, item.sigma, strict=True)]
            if item.categorical:
                xs = list(range(len(item.grid)))
                ax.errorbar(xs, item.mean, yerr=[2 * s for s in item.sigma], fmt="o", capsize=4)
                ax.set_xticks(xs, [str(g) for g in item.grid])
            else:
                xs_f = [float(g) for g in item.grid]
                ax.plot(xs_f, item.mean, c="tab:blue")
                ax.fill_between(xs_f, lo, hi, color="tab:blue", alpha=0.2, lw=0)
                p = next((q for q in spec.space.parameters if q.name == item.input), None)
                if p is not None and getattr(p, "log_scale", False):
                    from matplotlib.ticker import NullFormatter

                    ax.set_xscale("log")
                    ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(f"{item.input} [{item.unit}]" if item.unit not in ("", "1") else item.input)
            ax.set_ylabel(obj.name)
            ax.set_title(f"range {item.spread:.3g}", fontsize=9)
        for ax in axes[n:]:
            ax.set_visible(False)
        used = sum(1 for o in observations if not o.failed and obj.name in o.values)
        fig.suptitle(f"{spec.name}: partial dependence of {obj.name} (GP on {used} experiments, mean ± 2σ)")
        path = out_dir / f"partial_dependence_{obj.name}.png"
        fig.savefig(path)
        paths.append(path)
    return paths


__all__ = ["write_plots"]
