"""Plots of a run, from its summaries (PNG for the report and README, PDF for a paper).

- ``throughput``: tokens/s and total tokens per model, grouped as Table 2, each
  KD bar labelled with how many times slower than its group's No-KD run it is
  (the paper's "KD is 1.8x slower").
- ``loss_curves``: training loss against wall-clock seconds and against FLOPs,
  a row per group.
- ``glue_delta``: GLUE score minus the group's No-KD score, per task (and Avg)
  and strategy.
- ``budget``: the budget each model spent, in its group's measure, against the
  group's budget.
- ``compute_quality`` (only for groups run at several budget scales): GLUE
  Avg (error bars: its standard deviation over seeds, where there are
  several) against the FLOPs spent, log scale, one line per strategy; the
  right panel charges each KD run its teacher's amortised pretraining FLOPs
  (``sweep``).

Figures are built on :class:`matplotlib.figure.Figure` without pyplot, so no
global backend is touched, and written atomically.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from kdbudget.io import atomic_path
from kdbudget.report.formats import format_tokens, table_tasks
from kdbudget.report.results import ModelResults
from kdbudget.report.sweep import Sweep
from kdbudget.report.table import TASK_HEADERS, Block, Row, avg_label
from kdbudget.strategies.registry import STRATEGIES

PLOTS = ("throughput", "loss_curves", "glue_delta", "budget")
FORMATS = ("png", "pdf")
# Colours come from the strategy registry (torch-free), so a new strategy is coloured where it is declared.
COLORS: dict[str, str] = {name: info.color for name, info in STRATEGIES.items()}
UNITS = {"seconds": "wall-clock time (s)", "flops": "compute (FLOPs)", "tokens": "tokens processed"}
STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.spines.top": False, "axes.spines.right": False,
         "savefig.dpi": 150}
_TOKENS = FuncFormatter(lambda x, _: format_tokens(x) if x > 0 else "0")


def _color(strategy: str) -> str:
    return COLORS.get(strategy, "#8c564b")


def save(fig: Figure, stem: str | Path) -> list[Path]:
    """``stem.png`` and ``stem.pdf``, each written atomically."""
    paths = []
    for fmt in FORMATS:
        path = Path(f"{stem}.{fmt}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, bbox_inches="tight")
        paths.append(path)
    return paths


def _positions(blocks: Sequence[Block]) -> tuple[list[tuple[float, Row]], list[tuple[float, Block]]]:
    """Bar positions with a gap between groups; the centre of each group."""
    bars, centres, x = [], [], 0.0
    for block in blocks:
        start = x
        for row in block.rows:
            bars.append((x, row))
            x += 1
        centres.append(((start + x - 1) / 2, block))
        x += 0.8
    return bars, centres


def _group_labels(ax, centres, *, width: int = 22) -> None:
    for centre, block in centres:
        n = len(block.rows)
        ax.annotate(textwrap.fill(block.title, max(width, 12 * n)), xy=(centre, 0), xycoords=("data", "axes fraction"),
                    xytext=(0, -28), textcoords="offset points", ha="center", va="top", fontsize=9, style="italic")


def _run_results(results: Mapping[str, ModelResults], row: Row) -> list[ModelResults]:
    """The loaded results behind a row: one per pretraining run (seed)."""
    names = [run.model for run in row.runs] or [row.model]
    return [results[name] for name in names if name in results]


def _summaries(results: Mapping[str, ModelResults], row: Row) -> list[dict[str, Any]]:
    return [r.pretrain for r in _run_results(results, row) if r.pretrain]


def _tokens_per_second(results: Mapping[str, ModelResults], row: Row) -> float | None:
    """The row's mean tokens/s over its runs; None when a run measured no time."""
    speeds = [s.get("tokens_per_second") for s in _summaries(results, row)]
    return None if not speeds or None in speeds else sum(map(float, speeds)) / len(speeds)


def plot_throughput(blocks: Sequence[Block], results: Mapping[str, ModelResults]) -> Figure:
    bars, centres = _positions(blocks)
    fig = Figure(figsize=(max(6.5, 0.75 * len(bars) + 2.5), 7.0), layout="constrained")
    speed_ax, tokens_ax = fig.subplots(2, 1, sharex=True)
    # Keyed by row: a group at several budget scales has one block (and one No-KD row) per scale.
    references = {id(row): next((r for r in b.rows if r.is_reference), None) for b in blocks for row in b.rows}
    for x, row in bars:
        speed = _tokens_per_second(results, row)
        ref = references[id(row)]
        ref_speed = _tokens_per_second(results, ref) if ref else None
        ref_tokens = ref.tokens if ref else None
        for ax, value in ((speed_ax, speed), (tokens_ax, row.tokens)):
            if value is None:
                ax.text(x, 0, "missing", ha="center", va="bottom", rotation=90, fontsize=8)
                continue
            ax.bar(x, value, color=_color(row.strategy), width=0.8)
            text = format_tokens(value)
            ref_value = ref_speed if ax is speed_ax else ref_tokens
            if ref_value and not row.is_reference:
                words = ("slower", "faster") if ax is speed_ax else ("fewer", "more")
                text += (f"\n{ref_value / value:.1f}x {words[0]}" if value < ref_value
                         else f"\n{value / ref_value:.1f}x {words[1]}")
            ax.annotate(text, (x, value), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                        fontsize=8)
    speed_ax.set_ylabel("pretraining throughput (tokens/s)")
    speed_ax.set_title("Pretraining speed (KD bars: compared with the group's No-KD run)")
    tokens_ax.set_ylabel("total tokens processed (tokens)")
    tokens_ax.set_title("Total Token Throughput within the group's budget (Table 2)")
    for ax in (speed_ax, tokens_ax):
        ax.yaxis.set_major_formatter(_TOKENS)
        ax.margins(y=0.22)
    tokens_ax.set_xticks([x for x, _ in bars], [row.label for _, row in bars])
    _group_labels(tokens_ax, centres)
    return fig


def _curve(rows: Sequence[dict[str, Any]], x_key: str) -> tuple[list[float], list[float]]:
    points = [(float(r[x_key]), float(r["loss"])) for r in rows
              if r.get(x_key) is not None and r.get("loss") is not None and float(r["loss"]) > 0]
    return [p[0] for p in points], [p[1] for p in points]


def plot_loss_curves(blocks: Sequence[Block], results: Mapping[str, ModelResults]) -> Figure:
    fig = Figure(figsize=(11, 3.4 * len(blocks) + 0.4), layout="constrained")
    axes = fig.subplots(len(blocks), 2, squeeze=False)
    for (time_ax, flops_ax), block in zip(axes, blocks, strict=True):
        for row in block.rows:
            for i, run in enumerate(r for r in _run_results(results, row) if r.metrics):
                for ax, key in ((time_ax, "seconds"), (flops_ax, "flops")):
                    xs, ys = _curve(run.metrics, key)
                    ax.plot(xs, ys, color=_color(row.strategy), label=None if i else row.label, lw=1.6)
        for ax, key in ((time_ax, "seconds"), (flops_ax, "flops")):
            ax.set_yscale("log")
            ax.set_xlabel(UNITS[key])
            if key == "flops":
                ax.xaxis.set_major_formatter(_TOKENS)
            ax.set_ylabel("training loss (log scale)")
            ax.set_title(textwrap.fill(f"{block.title}: loss vs. {'time' if key == 'seconds' else 'FLOPs'}", 60))
            ax.grid(alpha=0.3)
        handles, labels = time_ax.get_legend_handles_labels()
        if handles:
            flops_ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8,
                            title="each on its\nown objective", title_fontsize=8)
        else:
            time_ax.text(0.5, 0.5, "no metrics.jsonl", transform=time_ax.transAxes, ha="center")
    return fig


def plot_glue_delta(blocks: Sequence[Block]) -> Figure:
    tasks = table_tasks(blocks)  # the configured Table 2 tasks only
    columns = list(tasks) + ["avg"]
    names = [TASK_HEADERS[t][0] for t in tasks] + [avg_label(tasks)]
    fig = Figure(figsize=(10, 3.3 * len(blocks) + 0.4), layout="constrained")
    axes = fig.subplots(len(blocks), 1, squeeze=False)[:, 0]
    for ax, block in zip(axes, blocks, strict=True):
        ax.set_title(textwrap.fill(block.title, 90))
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(columns)), names)
        ax.set_ylabel("score - No-KD score (points)")
        ax.grid(axis="y", alpha=0.3)
        reference = block.row(block.reference) if block.reference else None
        others = [r for r in block.rows if not r.is_reference]
        if reference is None or not others:
            ax.text(0.5, 0.5, "no No-KD row to compare with", transform=ax.transAxes, ha="center")
            continue
        width = 0.8 / len(others)
        for i, row in enumerate(others):
            values = [None if row.scores[t] is None or reference.scores[t] is None
                      else row.scores[t] - reference.scores[t] for t in tasks] + [row.delta]
            xs = [c - 0.4 + width * (i + 0.5) for c in range(len(columns))]
            ax.bar([x for x, v in zip(xs, values, strict=True) if v is not None], [v for v in values if v is not None],
                   width=width, color=_color(row.strategy), label=row.label)
        ax.legend(fontsize=8, ncols=len(others), loc="best")
    fig.suptitle("GLUE dev score difference against the group's No-KD model (x100; Avg: the Table 2 Delta)")
    return fig


def _measure(summary: Mapping[str, Any]) -> str:
    budget = summary["budget"]
    return budget.get("measure") or budget["unit"]


def _group_budget(block: Block, summaries: Mapping[str, Mapping[str, Any]], measure: str) -> float | None:
    """What every run of the group was given: the No-KD reference run's spend, or the explicit limit."""
    reference = summaries.get(block.reference) if block.reference else None
    if reference is not None and reference["budget"].get("role") == "reference":
        return float(reference["spent"][measure])
    limits = [float(s["budget"]["limit"]) for s in summaries.values()
              if s["budget"].get("unit") == measure and s["budget"].get("limit")]
    return max(limits) if limits else None


def plot_budget(blocks: Sequence[Block], results: Mapping[str, ModelResults]) -> Figure:
    fig = Figure(figsize=(max(6.5, 1.6 * max(len(b.rows) for b in blocks) + 2), 3.4 * len(blocks) + 0.4),
                 layout="constrained")
    axes = fig.subplots(len(blocks), 1, squeeze=False)[:, 0]
    for ax, block in zip(axes, blocks, strict=True):
        # A row of several runs (seeds): its first run's summary stands for the budget, the mean for the spend.
        runs = {r.model: _summaries(results, r) for r in block.rows}
        summaries = {model: found[0] for model, found in runs.items() if found}
        ax.set_title(textwrap.fill(block.title, 80))
        ax.set_xticks(range(len(block.rows)), [r.label for r in block.rows])
        if not summaries:
            ax.text(0.5, 0.5, "no pretraining summaries", transform=ax.transAxes, ha="center")
            continue
        measure = _measure(next(iter(summaries.values())))
        limit = _group_budget(block, summaries, measure)
        for i, row in enumerate(block.rows):
            summary = summaries.get(row.model)
            if summary is None:
                ax.text(i, 0, "missing", ha="center", va="bottom", rotation=90, fontsize=8)
                continue
            spent = sum(float(s["spent"][measure]) for s in runs[row.model]) / len(runs[row.model])
            ax.bar(i, spent, color=_color(row.strategy), width=0.6)
            text = format_tokens(spent) + (f"\n{100 * spent / limit:.1f}%" if limit else "")
            ax.annotate(text, (i, spent), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                        fontsize=8)
        if limit:
            ax.axhline(limit, color="crimson", ls="--", lw=1, label=f"group budget: {format_tokens(limit)}")
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.set_ylabel(f"budget spent: {UNITS[measure]}")
        ax.yaxis.set_major_formatter(_TOKENS)
        ax.margins(y=0.25)
    fig.suptitle("Pretraining budget spent per model (each run stops within half an optimizer step of it)")
    return fig


def plot_compute_quality(found: Sequence[Sweep], amortise_over: int = 1) -> Figure:
    fig = Figure(figsize=(11, 3.8 * len(found) + 0.4), layout="constrained")
    axes = fig.subplots(len(found), 2, squeeze=False)
    for (spent_ax, charged_ax), sweep in zip(axes, found, strict=True):
        for strategy, points in sweep.points.items():
            for ax, charge in ((spent_ax, False), (charged_ax, True)):
                shown = [(p.charged(amortise_over) if charge else p.flops, p) for p in points]
                shown = [(x, p) for x, p in shown if x is not None and p.avg is not None]
                if not shown:
                    continue
                ax.errorbar([x for x, _ in shown], [p.avg for _, p in shown],
                            yerr=[p.avg_std or 0.0 for _, p in shown], color=_color(strategy), marker="o",
                            capsize=3, lw=1.6, label=points[0].label)
        for ax, what in ((spent_ax, "FLOPs spent in pretraining"),
                         (charged_ax, f"FLOPs charged: KD + teacher pretraining / {amortise_over}")):
            ax.set_xscale("log")
            ax.set_xlabel(what)
            ax.set_ylabel(f"GLUE {avg_label(sweep.tasks)} (x100)")
            ax.grid(alpha=0.3)
            ax.set_title(textwrap.fill(sweep.title + (f": teacher amortised over {amortise_over}" if ax is charged_ax
                                                      else ""), 60))
        handles, labels = spent_ax.get_legend_handles_labels()
        if handles:
            charged_ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.suptitle("Compute sweep: GLUE Avg against compute (error bars: standard deviation over seeds)")
    return fig


def write_compute_quality(found: Sequence[Sweep], out_dir: str | Path, amortise_over: int = 1) -> list[Path]:
    """``out_dir/compute_quality.png`` and ``.pdf``."""
    with mpl.rc_context(STYLE):
        return save(plot_compute_quality(found, amortise_over), Path(out_dir) / "compute_quality")


def write_plots(blocks: Sequence[Block], results: Mapping[str, ModelResults], out_dir: str | Path) -> list[Path]:
    """Every plot of :data:`PLOTS` as ``out_dir/{name}.png`` and ``.pdf``."""
    out_dir = Path(out_dir)
    makers = {"throughput": lambda: plot_throughput(blocks, results),
              "loss_curves": lambda: plot_loss_curves(blocks, results),
              "glue_delta": lambda: plot_glue_delta(blocks),
              "budget": lambda: plot_budget(blocks, results)}
    written = []
    with mpl.rc_context(STYLE):
        for name in PLOTS:
            written += save(makers[name](), out_dir / name)
    return written

