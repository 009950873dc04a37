"""Table 2's rows from the models' loaded summaries: scores, Avg and Delta (building only; ``formats``
renders them as text, ``render`` writes the files).

- **Layout** (``layout``): one block per config group, in config order; one
  row per strategy of the group, in the group's order.
- **Columns.** Total Token Throughput (tokens processed in pretraining, shown
  as ``4.6B``), the seven Table 2 tasks (QNLI, SST-2, MNLI matched, MRPC F1,
  QQP, RTE, CoLA MCC; GLUE dev scores x100; STS-B is not in Table 2), Avg and
  Delta.
- **Avg** is the mean of the seven task columns, from unrounded scores. It is
  defined only when all seven have a score: never a mean over fewer tasks.
- **Delta** is Avg(row) - Avg(the group's No-KD row), from unrounded Avgs (the
  paper appears to subtract its rounded Avgs; see ``paper.py``). The No-KD row
  shows a dash; a group without a No-KD model has no Delta.
- **Missing results** (a summary file, or a task or score within one) are an
  error naming every missing model and file, unless ``allow_missing``: the
  row then shows ``n/a`` in each affected column (Avg and Delta included) and
  lists what is missing.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kdbudget.glue.tasks import TABLE2_TASKS
from kdbudget.report.layout import GroupLayout, ModelLayout
from kdbudget.report.results import ModelResults
from kdbudget.strategies.registry import STRATEGIES

TASKS: tuple[str, ...] = TABLE2_TASKS
TASK_HEADERS: dict[str, tuple[str, str]] = {
    "qnli": ("QNLI", "Acc"), "sst2": ("SST-2", "Acc"), "mnli": ("MNLI", "Acc"), "mrpc": ("MRPC", "F1"),
    "qqp": ("QQP", "Acc"), "rte": ("RTE", "Acc"), "cola": ("CoLA", "MCC"),
}
# Row labels come from the strategy registry (torch-free), so a new strategy is labelled where it is declared.
STRATEGY_LABELS: dict[str, str] = {name: info.label for name, info in STRATEGIES.items()}
_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


class MissingResultsError(LookupError):
    """A model the config defines has no (complete) results."""


def label(strategy: str, layers: int) -> str:
    """The paper's row label, with a Unicode subscript: ``No-KD₆``."""
    return STRATEGY_LABELS.get(strategy, strategy) + str(layers).translate(_SUBSCRIPTS)


# --- rows ------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    model: str
    group: str
    strategy: str
    layers: int
    tokens: int | None
    scores: dict[str, float | None]
    avg: float | None
    delta: float | None
    is_reference: bool
    missing: tuple[str, ...] = ()
    compared: bool = True  # False in a group without a No-KD row: no Delta to show

    @property
    def label(self) -> str:
        return label(self.strategy, self.layers)


@dataclass(frozen=True)
class Block:
    group: str
    title: str
    rows: tuple[Row, ...]
    reference: str | None = None

    def row(self, model: str) -> Row:
        return next(r for r in self.rows if r.model == model)


@dataclass
class _Partial:
    tokens: int | None
    scores: dict[str, float | None]
    missing: list[str] = field(default_factory=list)


def _task_score(glue: Mapping[str, Any], task: str) -> float | None:
    entry = glue.get("tasks", {}).get(task)
    value = entry.get("main") if entry else None
    return 100.0 * float(value) if value is not None and math.isfinite(float(value)) else None


def _partial(model: ModelLayout, results: ModelResults | None) -> _Partial:
    results = results or ModelResults(model.name, None, None, None)
    missing = []
    tokens = None
    if results.pretrain is not None:
        tokens = int(results.pretrain["tokens"])
    else:
        missing.append(f"pretraining summary ({results.where('pretrain')})")
    scores: dict[str, float | None] = dict.fromkeys(TASKS)
    if results.glue is not None:
        scores = {task: _task_score(results.glue, task) for task in TASKS}
        missing += [f"GLUE {TASK_HEADERS[t][0]} score" for t in TASKS if scores[t] is None]
    else:
        missing.append(f"GLUE summary ({results.where('glue')})")
    return _Partial(tokens, scores, missing)


def build_table(layout: Sequence[GroupLayout], results: Mapping[str, ModelResults], *,
                allow_missing: bool = False) -> list[Block]:
    """Table 2's blocks; raises :class:`MissingResultsError` naming every incomplete model unless
    ``allow_missing`` (then a gap is marked ``n/a`` and its Avg and Delta stay undefined)."""
    partials = {m.name: _partial(m, results.get(m.name)) for g in layout for m in g.models}
    incomplete = {name: p.missing for name, p in partials.items() if p.missing}
    if incomplete and not allow_missing:
        lines = "\n".join(f"  {name}: {', '.join(missing)}" for name, missing in incomplete.items())
        raise MissingResultsError(
            f"results missing for {len(incomplete)} model(s) the config defines:\n{lines}\n"
            "Run the pipeline for them (snakemake --cores N table), or pass --allow-missing to mark them as gaps.")
    blocks = []
    for group in layout:
        avgs = {}
        for m in group.models:
            scores = partials[m.name].scores
            avgs[m.name] = statistics.fmean(scores[t] for t in TASKS) if None not in scores.values() else None
        reference_avg = avgs.get(group.reference) if group.reference else None
        rows = []
        for m in group.models:
            p, avg = partials[m.name], avgs[m.name]
            is_reference = m.name == group.reference
            delta = avg - reference_avg if not is_reference and avg is not None and reference_avg is not None else None
            rows.append(Row(m.name, group.name, m.strategy, m.layers, p.tokens, p.scores, avg, delta, is_reference,
                            tuple(p.missing), compared=group.reference is not None))
        blocks.append(Block(group.name, group.title, tuple(rows), group.reference))
    return blocks
