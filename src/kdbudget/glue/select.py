"""Best-of-grid selection, the majority baseline, and a model's GLUE summary.

The paper searches batch sizes {16, 32} x learning rates {1e-5, 3e-5, 5e-5,
8e-5} per task and reports the best dev score (its released code did not
implement this selection). Here:

- fine-tuning seeds (``glue.seeds``) are aggregated, not maximised: per grid
  cell (batch size, lr) the mean, sample standard deviation (n - 1; null for
  one seed) and median of the dev main metric over the seeds; a cell with an
  undefined (null/NaN) score on any seed has an undefined mean;
- the best cell has the highest mean (with one seed: the paper's best dev
  score); an undefined mean ranks below every defined one, and a task with no
  defined score is an error;
- ties (equal mean) go to the smaller learning rate, then the smaller batch
  size: the most conservative setting, and the same choice whatever order the
  results arrive in;
- the chosen cell's per-seed scores are kept (``seeds``, in seed order) and a
  seed whose run predicted one constant label on the dev set is flagged
  (``degenerate``, ``degenerate_seeds``: CoLA's MCC 0 is the typical case), not
  silently averaged away;
- a grid cell (or a seed of it) without a result is an error naming it,
  unless ``allow_missing=True`` (the summary then lists it under ``missing``).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kdbudget.glue.cells import cell_name
from kdbudget.glue.metrics import dev_metrics, main_metric, nan_to_none
from kdbudget.glue.tasks import TABLE2_TASKS, TASKS, GlueTask, get_task

CellResults = Sequence[dict | None] | Mapping[str, dict | None]


class MissingCellError(LookupError):
    """A grid cell has no result."""


def _score(result: dict) -> float | None:
    value = result["dev"].get("main")
    return value if value is not None and math.isfinite(value) else None


def _mean(values: Sequence[float | None]) -> float | None:
    """The mean, undefined (None) when any value is: a cell is only as defined as every one of its seeds."""
    return statistics.fmean(values) if values and None not in values else None


def _std(values: Sequence[float | None]) -> float | None:
    """The sample standard deviation (n - 1); None for one value or any undefined one."""
    return statistics.stdev(values) if len(values) > 1 and None not in values else None


def _median(values: Sequence[float | None]) -> float | None:
    return statistics.median(values) if values and None not in values else None


def is_degenerate(result: dict, task: GlueTask) -> bool:
    """The run predicted one constant label (or value) on the dev set: the fine-tuning result's
    ``constant_prediction``; a result written before that field existed counts as degenerate only when its
    main metric is an MCC of exactly 0 (what a constant prediction scores on CoLA)."""
    if "constant_prediction" in result:
        return bool(result["constant_prediction"])
    return main_metric(task) == "mcc" and result["dev"].get("main") == 0.0


def _rank_key(cell: dict) -> tuple:
    mean = cell["main"]
    return (mean is None, -(mean or 0.0), cell["lr"], cell["batch_size"])


def select_best(cell_results: CellResults, task: str | GlueTask, *,
                expected: Iterable[tuple[int, float]] | None = None, allow_missing: bool = False) -> dict[str, Any]:
    """The best cell of one task's grid by its mean dev score over the fine-tuning seeds (see the module
    docstring for ties and missing cells).

    ``cell_results``: the finetune results of the grid, as a list (None marks a
    missing cell) or a mapping from cell name to result (None: missing).
    ``expected``: the grid's (batch_size, lr) pairs; any without a result is missing.
    """
    task = get_task(task)
    items = list(cell_results.items()) if isinstance(cell_results, Mapping) else [
        (cell_name(r["batch_size"], r["lr"]) if r is not None else f"cell {i + 1} of {len(cell_results)}", r)
        for i, r in enumerate(cell_results)]
    missing = [name for name, result in items if result is None]
    present = [result for _, result in items if result is not None]

    # (batch size, lr) -> seed -> result: a cell of the grid and its runs, one per fine-tuning seed.
    cells: dict[tuple[int, float], dict[int | None, dict]] = {}
    for result in present:
        if result.get("task") != task.name:
            raise ValueError(f"a result for task {result.get('task')!r} among the {task.name} grid")
        key = (int(result["batch_size"]), float(result["lr"]))
        seed = result.get("seed")
        runs = cells.setdefault(key, {})
        if seed in runs:
            raise ValueError(f"{task.name}: two results for cell {cell_name(*key)} (seed {seed})")
        runs[seed] = result
    seeds = sorted({seed for runs in cells.values() for seed in runs}, key=lambda s: (s is None, s or 0))
    seeded = len(seeds) > 1
    for key, runs in sorted(cells.items()):
        missing += [cell_name(*key, seed) for seed in seeds if seed not in runs]
    if expected is not None:
        grid = [(int(b), float(lr)) for b, lr in expected]
        outside = sorted(set(cells) - set(grid))
        if outside:
            raise ValueError(f"{task.name}: results for cells outside the grid: {[cell_name(*c) for c in outside]}")
        missing += [cell_name(*c) for c in grid if c not in cells and cell_name(*c) not in missing]
    if missing and not allow_missing:
        raise MissingCellError(f"{task.name}: no result for grid cell(s) {', '.join(missing)}")
    if not cells:
        raise MissingCellError(f"{task.name}: no grid cell has a result")

    summaries = []
    for (batch_size, lr), runs in sorted(cells.items()):
        ordered = [runs[seed] for seed in seeds if seed in runs]
        scores = [_score(r) for r in ordered]
        summaries.append({"batch_size": batch_size, "lr": lr, "main": _mean(scores), "std": _std(scores),
                          "median": _median(scores), "seeds": scores,
                          "seed_numbers": [r.get("seed") for r in ordered], "runs": ordered})
    best = min(summaries, key=_rank_key)
    if best["main"] is None:
        raise ValueError(f"{task.name}: no grid cell has a defined {main_metric(task)} (all undefined)")
    runs = best["runs"]
    degenerate_seeds = [r.get("seed") for r in runs if is_degenerate(r, task)]
    metrics = dict(runs[0]["dev"]) if len(runs) == 1 else {
        key: _mean([r["dev"].get(key) for r in runs]) for key in runs[0]["dev"]}
    return {
        "task": task.name,
        "main_metric": main_metric(task),
        "main": best["main"],
        "score": best["main"],
        "metrics": metrics,
        "cell": {"batch_size": best["batch_size"], "lr": best["lr"],
                 "seed": best["seed_numbers"] if seeded else runs[0].get("seed"), "epochs": runs[0].get("epochs")},
        "seeds": best["seeds"],
        "seed_numbers": best["seed_numbers"],
        "std": best["std"],
        "median": best["median"],
        "degenerate": bool(degenerate_seeds),
        "degenerate_seeds": degenerate_seeds,
        "cells": [{key: c[key] for key in ("batch_size", "lr", "main", "std", "median", "seeds")} for c in summaries],
        "missing": missing,
    }


def majority_baseline(task: str | GlueTask, train_labels: Sequence,
                      dev_labels: Sequence | Mapping[str, Sequence]) -> dict[str, Any]:
    """The task's metrics of always predicting the most frequent training label (the smallest index on a
    tie), or the training mean for STS-B (whose correlations are then undefined: null).

    ``dev_labels``: the dev labels, or a mapping from dev split to labels (needed for MNLI).
    """
    task = get_task(task)
    if not len(train_labels):
        raise ValueError(f"{task.name}: no training labels")
    if not isinstance(dev_labels, Mapping):
        if len(task.dev_splits) > 1:
            raise ValueError(f"{task.name}: give the labels of each dev split {task.dev_splits} as a mapping")
        dev_labels = {task.main_split: dev_labels}
    if task.is_regression:
        prediction: float | int = float(statistics.fmean(float(x) for x in train_labels))
        shown: Any = prediction
    else:
        counts = Counter(int(x) for x in train_labels)
        prediction = min(counts, key=lambda label: (-counts[label], label))
        shown = task.labels[prediction]
    metrics = dev_metrics(task, {split: ([prediction] * len(labels), list(labels))
                                 for split, labels in dev_labels.items()})
    return {"prediction": shown, **nan_to_none(metrics)}


def _table_order(tasks: Iterable[str]) -> list[str]:
    order = list(TABLE2_TASKS) + [t for t in TASKS if t not in TABLE2_TASKS]
    return sorted(tasks, key=lambda t: order.index(t) if t in order else len(order))


def summarize(model: str, results_by_task: Mapping[str, CellResults], *,
              expected: Iterable[tuple[int, float]] | None = None, allow_missing: bool = False) -> dict[str, Any]:
    """A model's ``summary.json``: per task the best cell's mean main metric over the fine-tuning seeds
    (``main``, also ``score``), its per-seed scores, std, median and degenerate seeds, all its metrics, the
    cell, every cell's score and the majority baseline; plus the average main metric over the Table 2 tasks
    present (null when one of them is undefined), and that average per fine-tuning seed with its std."""
    grid = list(expected) if expected is not None else None
    tasks: dict[str, Any] = {}
    for name in _table_order(results_by_task):
        cell_results = results_by_task[name]
        entry = select_best(cell_results, name, expected=grid, allow_missing=allow_missing)
        values = cell_results.values() if isinstance(cell_results, Mapping) else cell_results
        baselines = [r["majority_baseline"] for r in values if r is not None and r.get("majority_baseline")]
        entry["majority_baseline"] = baselines[0] if baselines else None
        tasks[name] = entry
    averaged = [t for t in tasks if t in TABLE2_TASKS]
    scores = [tasks[t]["main"] for t in averaged]
    average = statistics.fmean(scores) if scores and None not in scores else None
    # Avg per fine-tuning seed (each task's chosen cell at that seed): where the Avg's spread comes from.
    seeds = sorted({s for t in averaged for s in tasks[t]["seed_numbers"] if s is not None})
    by_seed = {s: [dict(zip(tasks[t]["seed_numbers"], tasks[t]["seeds"], strict=True)).get(s) for t in averaged]
               for s in seeds}
    average_by_seed = [_mean(values) for values in by_seed.values()]
    return {"model": model, "tasks": tasks, "average": average, "average_over": averaged,
            "glue_seeds": seeds, "average_by_seed": average_by_seed,
            "average_std": _std(average_by_seed) if len(seeds) > 1 else None,
            "grid": [{"batch_size": b, "lr": lr} for b, lr in grid] if grid is not None else None}


def _percent(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.1f}"


def render_table(summary: Mapping[str, Any]) -> str:
    """A markdown table of a summary: the score (x100) beside the majority baseline, per task."""
    lines = [f"### GLUE dev: {summary['model']}", "",
             "| Task | Metric | Score | Majority | Other metrics (majority) | Batch | LR | Missing cells |",
             "|---|---|---:|---:|---|---:|---:|---|"]
    for name, entry in summary["tasks"].items():
        baseline = entry.get("majority_baseline") or {}
        main = entry["main_metric"]
        others = ", ".join(f"{key} {_percent(value)} ({_percent(baseline.get(key))})"
                           for key, value in entry["metrics"].items() if key not in ("main", main))
        score = _percent(entry["main"])
        if entry.get("std") is not None:
            score += f" ± {_percent(entry['std'])}"
        if entry.get("degenerate"):
            score += f" (constant prediction, seed {', '.join(map(str, entry['degenerate_seeds']))})"
        lines.append(f"| {get_task(name).title} | {main} | {score} | "
                     f"{_percent(baseline.get('main'))} | {others} | {entry['cell']['batch_size']} | "
                     f"{entry['cell']['lr']:g} | {', '.join(entry['missing']) or '-'} |")
    if summary.get("average_over"):
        lines.append(f"| Avg ({len(summary['average_over'])} tasks) | | {_percent(summary['average'])} | | | | | |")
    return "\n".join(lines) + "\n"
