"""Table 2's rows from the models' loaded summaries: scores, Avg and Delta (building only; ``formats``
renders them as text, ``render`` writes the files).

- **Layout** (``layout``): one block per config group, in config order; one
  row per strategy of the group, in the group's order. A group run at several
  budget scales has one block per scale (ascending), titled with the scale.
- **Columns.** Total Token Throughput (tokens processed in pretraining, shown
  as ``4.6B``), the seven Table 2 tasks (QNLI, SST-2, MNLI matched, MRPC F1,
  QQP, RTE, CoLA MCC; GLUE dev scores x100; STS-B is not in Table 2), Avg and
  Delta.
- **Tasks** (``report_tasks``): Table 2's seven tasks that the config's
  ``glue.tasks`` lists, in Table 2's order (a laptop study may fine-tune on
  fewer); ``build_table`` takes them explicitly, Table 2's seven by default.
- **Avg** is the mean of the table's task columns, from unrounded scores. It is
  defined only when every one of them has a score: never a mean over fewer
  tasks than the columns. With fewer than seven it is labelled so
  (``avg_label``: "Avg (3 tasks)") and never compared with the paper's.
- **Delta** is Avg(row) - Avg(the block's No-KD row), from unrounded Avgs (the
  paper appears to subtract its rounded Avgs; see ``paper.py``). The No-KD row
  shows a dash; a group without a No-KD model has no Delta.
- **Several runs.** A row is one strategy at one budget scale; with
  pretraining seeds it holds one run per seed. A task's score is the GLUE
  summary's ``score`` (the mean over GLUE seeds of the chosen cell; ``main``
  in older summaries); the row shows the mean over its runs. The spread
  (``std``, sample standard deviation) is over pretraining seeds when there
  are several (each seed's value already a GLUE-seed mean), else over the
  GLUE seeds of the one run (the summary's per-seed ``seeds``). Avg's spread
  is over the per-seed Avgs alike.
- **Delta's 95% interval** (``stats``): with two or more pretraining seeds,
  a paired t-interval over the seeds both rows have (d_k = Avg_k(row) -
  Avg_k(No-KD), the No-KD run of the same seed); with one pretraining run
  and two or more GLUE seeds, a Welch t-interval on the two rows' per-GLUE-seed
  Avgs; otherwise none (one run renders exactly as before).
- **Degenerate fine-tuning** (a constant prediction, e.g. CoLA MCC 0: the GLUE
  summary's ``degenerate``/``degenerate_seeds``) is kept in the mean, as the
  GLUE summary's score keeps it, but flagged: the cell carries a marker and
  the table a note naming the model, task and seeds.
- **Missing results** (a summary file, or a task or score within one) are an
  error naming every missing model and file, unless ``allow_missing``: the
  row then shows ``n/a`` in each affected column (Avg and Delta included) and
  lists what is missing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kdbudget.glue.tasks import TABLE2_TASKS
from kdbudget.glue.tasks import TASKS as GLUE_TASKS
from kdbudget.plan import REFERENCE_STRATEGY
from kdbudget.report.layout import GroupLayout, ModelLayout, parse_model_name
from kdbudget.report.ledger import Ledger, combine, ledger_of
from kdbudget.report.results import ModelResults
from kdbudget.report.stats import Interval, mean, paired_t_interval, std, welch_t_interval
from kdbudget.strategies.registry import STRATEGIES

TASKS: tuple[str, ...] = TABLE2_TASKS
TASK_HEADERS: dict[str, tuple[str, str]] = {
    "qnli": ("QNLI", "Acc"), "sst2": ("SST-2", "Acc"), "mnli": ("MNLI", "Acc"), "mrpc": ("MRPC", "F1"),
    "qqp": ("QQP", "Acc"), "rte": ("RTE", "Acc"), "cola": ("CoLA", "MCC"),
}
# Row labels come from the strategy registry (torch-free), so a new strategy is labelled where it is declared.
STRATEGY_LABELS: dict[str, str] = {name: info.label for name, info in STRATEGIES.items()}
_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def report_tasks(configured: Iterable[str]) -> tuple[str, ...]:
    """Table 2's task columns for a config's ``glue.tasks``: the Table 2 tasks it lists, in Table 2's order
    (STS-B and any other task outside Table 2 never appear); a ValueError naming the key when there is none."""
    configured = set(configured)
    unknown = sorted(configured - set(GLUE_TASKS))
    if unknown:
        raise ValueError(f"glue.tasks: unknown GLUE task(s) {', '.join(unknown)}")
    tasks = tuple(t for t in TASKS if t in configured)
    if not tasks:
        raise ValueError(f"glue.tasks lists none of Table 2's tasks ({', '.join(TASKS)}): the report has no task "
                         "column and no Avg to show")
    return tasks


def avg_label(tasks: Sequence[str]) -> str:
    """``Avg`` over Table 2's seven tasks; ``Avg (3 tasks)`` over fewer, so that it is never read as GLUE's Avg."""
    n = len(tasks)
    return "Avg" if tuple(tasks) == TASKS else f"Avg ({n} task{'s' if n != 1 else ''})"


class MissingResultsError(LookupError):
    """A model the config defines has no (complete) results."""


def label(strategy: str, layers: int) -> str:
    """The paper's row label, with a Unicode subscript: ``No-KD₆``."""
    return STRATEGY_LABELS.get(strategy, strategy) + str(layers).translate(_SUBSCRIPTS)


def scale_suffix(scale: float) -> str:
    """The model-name suffix of a budget scale: ``-x0.25``; none at scale 1."""
    return "" if scale == 1 else f"-x{scale:g}"


# --- one pretraining run ------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One model of the plan: one pretraining run and its GLUE summary (scores x100)."""

    model: str
    base: str
    seed: int | None
    scale: float
    tokens: int | None
    scores: dict[str, float | None]  # per task: the mean over GLUE seeds
    seed_scores: dict[str, tuple[float, ...]]  # per task: each GLUE seed's score (empty when not given)
    degenerate: dict[str, tuple[Any, ...]]  # flagged tasks: their degenerate GLUE seeds (empty: not said which)
    ledger: Ledger
    missing: tuple[str, ...] = ()
    flops: float | None = None
    tasks: tuple[str, ...] = TASKS  # the table's task columns: Avg is their mean

    @property
    def avg(self) -> float | None:
        values = [self.scores.get(t) for t in self.tasks]
        return mean(values) if None not in values else None

    @property
    def seed_avgs(self) -> tuple[float, ...]:
        """Avg per GLUE seed (the i-th seed of every task); empty unless every task has the same two or more."""
        counts = {len(self.seed_scores.get(t, ())) for t in self.tasks}
        if len(counts) != 1 or counts == {0} or counts == {1}:
            return ()
        return tuple(mean(values) for values in zip(*(self.seed_scores[t] for t in self.tasks), strict=True))


def _finite100(value: Any) -> float | None:
    return 100.0 * float(value) if value is not None and math.isfinite(float(value)) else None


def _task_entry(glue: Mapping[str, Any], task: str) -> tuple[float | None, tuple[float, ...], tuple[Any, ...] | None]:
    """(score, per-seed scores, degenerate seeds or None when not flagged) of one task's GLUE entry."""
    entry = glue.get("tasks", {}).get(task)
    if not entry:
        return None, (), None
    score = _finite100(entry["score"] if "score" in entry else entry.get("main"))
    seeds = [_finite100(s.get("score", s.get("main")) if isinstance(s, Mapping) else s)
             for s in entry.get("seeds") or ()]
    per_seed = tuple(s for s in seeds if s is not None) if None not in seeds else ()
    flagged = entry.get("degenerate") or bool(entry.get("degenerate_seeds"))
    return score, per_seed, tuple(entry.get("degenerate_seeds") or ()) if flagged else None


def load_run(model: ModelLayout, results: ModelResults | None, tasks: Sequence[str] = TASKS) -> Run:
    """A run's scores on ``tasks``, identity (base, seed, scale: its summary, else the plan, else its name) and
    ledger."""
    tasks = tuple(tasks)
    results = results or ModelResults(model.name, None, None, None)
    summary, missing = results.pretrain, []
    if summary is None:
        missing.append(f"pretraining summary ({results.where('pretrain')})")
    parsed = parse_model_name(model.name)
    found = summary or {}
    base = found.get("base") or model.base or parsed.base
    seed = next((s for s in (found.get("seed"), model.seed, parsed.seed) if s is not None), None)
    scale = float(next((s for s in (found.get("budget_scale"), model.scale) if s is not None), parsed.scale))
    scores: dict[str, float | None] = dict.fromkeys(tasks)
    seed_scores: dict[str, tuple[float, ...]] = {}
    degenerate: dict[str, tuple[Any, ...]] = {}
    if results.glue is not None:
        for task in tasks:
            scores[task], seed_scores[task], flagged = _task_entry(results.glue, task)
            if flagged is not None:
                degenerate[task] = flagged
        missing += [f"GLUE {TASK_HEADERS[t][0]} score" for t in tasks if scores[t] is None]
    else:
        missing.append(f"GLUE summary ({results.where('glue')})")
    return Run(model.name, base, None if seed is None else int(seed), scale,
               None if summary is None else int(summary["tokens"]), scores, seed_scores, degenerate,
               ledger_of(summary), tuple(missing), None if summary is None else float(summary["flops"]), tasks)


# --- rows and blocks -------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    model: str  # the model, or for several runs their base name with its scale suffix
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
    runs: tuple[Run, ...] = ()
    scale: float = 1.0
    std: dict[str, float | None] = field(default_factory=dict)  # per task; empty for a single run
    avg_std: float | None = None
    delta_ci: Interval | None = None
    ledger: Ledger = field(default_factory=Ledger)
    tasks: tuple[str, ...] = TASKS  # the table's task columns: Avg is their mean

    @property
    def label(self) -> str:
        return label(self.strategy, self.layers)

    @property
    def glue_seeds(self) -> int:
        return max((len(s) for run in self.runs for s in run.seed_scores.values()), default=0)

    @property
    def repeated(self) -> bool:
        """More than one run behind the numbers (pretraining seeds or GLUE seeds): show their spread."""
        return len(self.runs) > 1 or self.glue_seeds > 1

    @property
    def degenerate(self) -> dict[str, list[str]]:
        """Per flagged task: the runs (and GLUE seeds, where known) whose fine-tuning was degenerate."""
        found: dict[str, list[str]] = {}
        for run in self.runs:
            for task, seeds in run.degenerate.items():
                found.setdefault(task, []).append(
                    run.model + (f" (GLUE seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})"
                                 if seeds else ""))
        return found


@dataclass(frozen=True)
class Block:
    group: str
    title: str
    rows: tuple[Row, ...]
    reference: str | None = None
    scale: float = 1.0
    group_title: str = ""  # the group's own title (``title`` adds the scale in a sweep)
    tasks: tuple[str, ...] = TASKS  # the table's task columns: Avg is their mean

    def row(self, model: str) -> Row:
        return next(r for r in self.rows if r.model == model)


def _row(runs: Sequence[Run], model: ModelLayout, group: str, compared: bool, tasks: tuple[str, ...]) -> Row:
    single = len(runs) == 1
    name = runs[0].model if single else runs[0].base + scale_suffix(runs[0].scale)
    scores = {t: None if any(r.scores[t] is None for r in runs) else mean([r.scores[t] for r in runs]) for t in tasks}
    avgs = [r.avg for r in runs]
    avg = None if None in avgs else mean(avgs)
    if not single:  # spread over pretraining seeds
        spread = {t: None if scores[t] is None else std([r.scores[t] for r in runs]) for t in tasks}
        avg_std = None if avg is None else std(avgs)
    else:  # spread over the GLUE seeds of the one run (none for one seed)
        spread = {t: std(runs[0].seed_scores.get(t, ())) for t in tasks}
        avg_std = std(runs[0].seed_avgs)
    tokens = [r.tokens for r in runs]
    missing = tuple(m if single else f"{r.model}: {m}" for r in runs for m in r.missing)
    return Row(name, group, model.strategy, model.layers, None if None in tokens else round(mean(tokens)), scores,
               avg, None, model.strategy == REFERENCE_STRATEGY and compared, missing, compared, tuple(runs),
               runs[0].scale, spread if any(v is not None for v in spread.values()) else {}, avg_std, None,
               combine([r.ledger for r in runs]), tasks)


def delta_interval(row: Row, reference: Row) -> Interval | None:
    """Delta's 95% interval: paired over pretraining seeds, else Welch over GLUE seeds (module docstring)."""
    if len(row.runs) > 1 or len(reference.runs) > 1:
        mine = {r.seed: r.avg for r in row.runs if r.avg is not None}
        theirs = {r.seed: r.avg for r in reference.runs if r.avg is not None}
        seeds = [s for s in mine if s in theirs]
        return paired_t_interval([mine[s] for s in seeds], [theirs[s] for s in seeds])
    return welch_t_interval(row.runs[0].seed_avgs, reference.runs[0].seed_avgs)


def _with_delta(row: Row, reference: Row | None) -> Row:
    if reference is None or row is reference or row.avg is None or reference.avg is None:
        return row
    ci = delta_interval(row, reference) if row.repeated or reference.repeated else None
    return replace(row, delta=row.avg - reference.avg, delta_ci=ci)


def _blocks(group: GroupLayout, runs: Mapping[str, Run], tasks: tuple[str, ...]) -> list[Block]:
    scales = sorted({runs[m.name].scale for m in group.models})
    compared = any(m.strategy == REFERENCE_STRATEGY for m in group.models)
    blocks = []
    for scale in scales:
        rows_runs: dict[str, list[Run]] = {}
        layouts: dict[str, ModelLayout] = {}
        for m in group.models:
            run = runs[m.name]
            if run.scale == scale:
                rows_runs.setdefault(run.base, []).append(run)
                layouts.setdefault(run.base, m)
        rows = [_row(rs, layouts[base], group.name, compared, tasks) for base, rs in rows_runs.items()]
        reference = next((r for r in rows if r.is_reference), None)
        rows = [_with_delta(r, reference) for r in rows]
        title = group.title if scale == 1 and len(scales) == 1 else f"{group.title} (budget x{scale:g})"
        blocks.append(Block(group.name, title, tuple(rows), reference.model if reference else None, scale, group.title,
                            tasks))
    return blocks


def build_table(layout: Sequence[GroupLayout], results: Mapping[str, ModelResults], *,
                allow_missing: bool = False, tasks: Iterable[str] = TASKS) -> list[Block]:
    """Table 2's blocks over ``tasks`` (the config's ``glue.tasks``; :func:`report_tasks` keeps Table 2's and
    orders them); raises :class:`MissingResultsError` naming every incomplete model unless ``allow_missing``
    (then a gap is marked ``n/a`` and its Avg and Delta stay undefined)."""
    columns = report_tasks(tasks)
    runs = {m.name: load_run(m, results.get(m.name), columns) for g in layout for m in g.models}
    incomplete = {name: run.missing for name, run in runs.items() if run.missing}
    if incomplete and not allow_missing:
        lines = "\n".join(f"  {name}: {', '.join(missing)}" for name, missing in incomplete.items())
        raise MissingResultsError(
            f"results missing for {len(incomplete)} model(s) the config defines:\n{lines}\n"
            "Run the pipeline for them (snakemake --cores N table), or pass --allow-missing to mark them as gaps.")
    return [block for group in layout for block in _blocks(group, runs, columns)]
