"""Table 2 from a run's small summaries: the layout, the rows, Avg and Delta.

Reads only ``results/pretrain/{model}/summary.json``, ``metrics.jsonl`` and
``results/glue/{model}/summary.json`` (never weights, never torch).

- **Layout.** One block per config group, in config order, titled with the
  group's ``title``; one row per strategy of the group, in the group's order.
  Only the models the config defines appear.
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

import csv
import html
import io
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdbudget.glue.tasks import TABLE2_TASKS
from kdbudget.io import read_json
from kdbudget.plan import REFERENCE_STRATEGY, PlannedModel, plan_models
from kdbudget.strategies.registry import STRATEGIES

TASKS: tuple[str, ...] = TABLE2_TASKS
TASK_HEADERS: dict[str, tuple[str, str]] = {
    "qnli": ("QNLI", "Acc"), "sst2": ("SST-2", "Acc"), "mnli": ("MNLI", "Acc"), "mrpc": ("MRPC", "F1"),
    "qqp": ("QQP", "Acc"), "rte": ("RTE", "Acc"), "cola": ("CoLA", "MCC"),
}
# Row labels come from the strategy registry (torch-free), so a new strategy is labelled where it is declared.
STRATEGY_LABELS: dict[str, str] = {name: info.label for name, info in STRATEGIES.items()}
GAP = "n/a"
TABLE_FILES = {"md": "table2.md", "tex": "table2.tex", "csv": "table2.csv", "html": "table2.html"}
NOTE = ("GLUE dev scores x100 (MNLI: matched accuracy; MRPC: F1; CoLA: Matthews correlation; others: accuracy). "
        "Total Token Throughput: tokens processed in pretraining. Avg: mean of the seven task columns; "
        "Delta: Avg minus the Avg of the group's No-KD row, both from unrounded scores.")
_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


class MissingResultsError(LookupError):
    """A model the config defines has no (complete) results."""


# --- layout -------------------------------------------------------------------


@dataclass(frozen=True)
class ModelLayout:
    name: str
    strategy: str
    layers: int


@dataclass(frozen=True)
class GroupLayout:
    name: str
    title: str
    models: tuple[ModelLayout, ...]

    @property
    def reference(self) -> str | None:
        return next((m.name for m in self.models if m.strategy == REFERENCE_STRATEGY), None)


def layout_from_plan(models: Mapping[str, PlannedModel], groups: Mapping[str, Mapping[str, Any]]) -> list[GroupLayout]:
    """Table 2's blocks: the config's groups (``config["groups"]``) in order, each with its planned models."""
    return [GroupLayout(name=group, title=settings.get("title") or group,
                        models=tuple(ModelLayout(m.name, m.strategy, int(m.shape["layers"]))
                                     for m in models.values() if m.group == group))
            for group, settings in groups.items()]


def layout_from_config(config: Mapping[str, Any]) -> list[GroupLayout]:
    """Table 2's blocks for a validated config."""
    return layout_from_plan(plan_models(dict(config)), config["groups"])


def layout_to_data(layout: Sequence[GroupLayout]) -> list[dict[str, Any]]:
    """Plain data (for Snakemake params, which also makes a changed layout a rerun trigger)."""
    return [{"name": g.name, "title": g.title,
             "models": [{"name": m.name, "strategy": m.strategy, "layers": m.layers} for m in g.models]}
            for g in layout]


def layout_from_data(data: Sequence[Mapping[str, Any]]) -> list[GroupLayout]:
    return [GroupLayout(g["name"], g["title"], tuple(ModelLayout(m["name"], m["strategy"], int(m["layers"]))
                                                     for m in g["models"])) for g in data]


def model_names(layout: Sequence[GroupLayout]) -> list[str]:
    return [m.name for g in layout for m in g.models]


def label(strategy: str, layers: int) -> str:
    """The paper's row label, with a Unicode subscript: ``No-KD₆``."""
    return STRATEGY_LABELS.get(strategy, strategy) + str(layers).translate(_SUBSCRIPTS)


# --- loading the summaries -----------------------------------------------------


@dataclass(frozen=True)
class ModelResults:
    """One model's summaries; None where a file was not found (its expected path is in ``paths``)."""

    name: str
    pretrain: dict[str, Any] | None
    metrics: list[dict[str, Any]] | None
    glue: dict[str, Any] | None
    paths: dict[str, str | None] = field(default_factory=dict)

    def where(self, key: str) -> str:
        return self.paths.get(key) or "not given"


def result_paths(results_dir: str | Path, name: str) -> dict[str, Path]:
    """Where the pipeline writes a model's summaries under a results folder."""
    results_dir = Path(results_dir)
    return {"pretrain": results_dir / "pretrain" / name / "summary.json",
            "metrics": results_dir / "pretrain" / name / "metrics.jsonl",
            "glue": results_dir / "glue" / name / "summary.json"}


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_model_results(name: str, *, pretrain: str | Path | None = None, metrics: str | Path | None = None,
                       glue: str | Path | None = None) -> ModelResults:
    """Read the summaries that exist (None for a path that is None or absent); a summary of
    another model (a copied file) is an error."""
    paths = {"pretrain": pretrain, "metrics": metrics, "glue": glue}
    readers = {"pretrain": read_json, "metrics": read_metrics, "glue": read_json}
    loaded = {key: readers[key](path) if path is not None and Path(path).is_file() else None
              for key, path in paths.items()}
    for key, name_field in (("pretrain", "name"), ("glue", "model")):
        found = (loaded[key] or {}).get(name_field)
        if found is not None and found != name:
            raise ValueError(f"{paths[key]}: a summary of model {found!r} where {name!r} was expected")
    return ModelResults(name, loaded["pretrain"], loaded["metrics"], loaded["glue"],
                        {key: None if path is None else str(path) for key, path in paths.items()})


def load_results(layout: Sequence[GroupLayout], results_dir: str | Path) -> dict[str, ModelResults]:
    """Every model of the layout, from the standard layout of a results folder."""
    return {name: load_model_results(name, **result_paths(results_dir, name)) for name in model_names(layout)}


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


# --- formatting -------------------------------------------------------------------

_UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


def format_tokens(n: float | None) -> str:
    """A token count as the paper prints it: ``4.6B``, ``27.9B``; small runs ``893K``."""
    if n is None:
        return GAP
    for i, (scale, suffix) in enumerate(_UNITS):
        if n >= scale * 0.99995:
            x = n / scale
            text = f"{x:.0f}" if x >= 99.95 else f"{x:.1f}"
            if float(text) >= 1000 and i > 0:  # 999.96K shows as 1.0M
                return f"{n / _UNITS[i - 1][0]:.1f}{_UNITS[i - 1][1]}"
            return text + suffix
    return f"{n:.0f}"


def parse_tokens(text: str) -> float:
    """``4.6B`` -> 4.6e9 (the inverse of :func:`format_tokens`, up to its rounding)."""
    scales = {suffix: scale for scale, suffix in _UNITS}
    text = text.strip()
    return float(text[:-1]) * scales[text[-1]] if text[-1:] in scales else float(text)


def format_score(x: float | None) -> str:
    if x is None:
        return GAP
    text = f"{x:.1f}"
    return "0.0" if text == "-0.0" else text


def format_delta(x: float | None, *, reference: bool = False) -> str:
    """``+1.2``, ``-0.4``; the No-KD row's own Delta is a dash."""
    if reference:
        return "–"
    if x is None:
        return GAP
    text = f"{x:+.1f}"
    return "0.0" if text in ("+0.0", "-0.0") else text


def row_cells(row: Row) -> list[str]:
    """A row's printed cells after its label: tokens, the task scores, Avg and Delta."""
    return ([format_tokens(row.tokens)] + [format_score(row.scores[t]) for t in TASKS]
            + [format_score(row.avg), format_delta(row.delta, reference=row.is_reference or not row.compared)])


def headers() -> list[str]:
    return (["Total Token Throughput"] + [f"{name} ({metric})" for name, metric in TASK_HEADERS.values()]
            + ["Avg", "Δ"])


def _missing_notes(blocks: Sequence[Block]) -> list[str]:
    return [f"{row.model}: {', '.join(row.missing)}" for b in blocks for row in b.rows if row.missing]


# --- renderings --------------------------------------------------------------------


def render_markdown(blocks: Sequence[Block]) -> str:
    cols = ["Model", *headers()]
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join([":---"] + ["---:"] * (len(cols) - 1)) + " |"]
    for block in blocks:
        lines.append("| " + " | ".join([f"*{block.title}*"] + [""] * (len(cols) - 1)) + " |")
        lines += ["| " + " | ".join([row.label, *row_cells(row)]) + " |" for row in block.rows]
    text = "\n".join(lines) + "\n\n" + NOTE + "\n"
    missing = _missing_notes(blocks)
    if missing:
        text += f"\n{GAP}: results missing (rendered with --allow-missing):\n" + "".join(f"- {m}\n" for m in missing)
    return text


def _tex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                          ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"),
                          ("^", r"\textasciicircum{}")):
        text = text.replace(char, escaped)
    return text


def _tex_cell(text: str) -> str:
    if text == "–":
        return "--"
    if text[:1] in "+-" and text != GAP:
        return f"${text[0]}${text[1:]}"
    return text


def render_latex(blocks: Sequence[Block], *, caption: str | None = None, tex_label: str = "tab:table2") -> str:
    """A booktabs ``table*`` (needs ``\\usepackage{booktabs}``)."""
    n = 1 + len(headers())
    top = ["", "Total Token"] + [name for name, _ in TASK_HEADERS.values()] + ["Avg", r"$\Delta$"]
    sub = ["", "Throughput"] + [f"({metric})" for _, metric in TASK_HEADERS.values()] + ["", ""]
    lines = [
        "% Table 2, generated by kdbudget.report from the run's summaries. Needs \\usepackage{booktabs}.",
        r"\begin{table*}[t]", r"\centering", r"\small",
        r"\begin{tabular}{l" + "r" * (n - 1) + "}", r"\toprule",
        " & ".join(top) + r" \\", " & ".join(sub) + r" \\",
    ]
    for block in blocks:
        lines += [r"\midrule", rf"\multicolumn{{{n}}}{{l}}{{\textit{{{_tex_escape(block.title)}}}}} \\", r"\midrule"]
        for row in block.rows:
            name = f"{_tex_escape(STRATEGY_LABELS.get(row.strategy, row.strategy))}$_{{{row.layers}}}$"
            lines.append(" & ".join([name] + [_tex_cell(c) for c in row_cells(row)]) + r" \\")
    caption = caption or NOTE.replace("Delta", r"$\Delta$")
    missing = _missing_notes(blocks)
    if missing:
        caption += f" {GAP}: results missing ({'; '.join(missing)})."
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_tex_escape_caption(caption)}}}",
              rf"\label{{{tex_label}}}", r"\end{table*}"]
    return "\n".join(lines) + "\n"


def _tex_escape_caption(text: str) -> str:
    parts = text.split("$")  # keep math spans ($\Delta$) as they are
    return "$".join(_tex_escape(p) if i % 2 == 0 else p for i, p in enumerate(parts))


# "label" (the strategy's row label, without the layer subscript) comes last so that existing columns keep their place.
CSV_COLUMNS = ["group", "group_title", "model", "strategy", "layers", "tokens", "throughput", *TASKS, "avg", "delta",
               "missing", "label"]


def render_csv(blocks: Sequence[Block]) -> str:
    """Machine-readable: unrounded scores (x100, 4 decimals); empty cells where a value is undefined."""
    def number(x: float | None) -> str:
        return "" if x is None else f"{x:.4f}"

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for block in blocks:
        for row in block.rows:
            writer.writerow([block.group, block.title, row.model, row.strategy, row.layers,
                             "" if row.tokens is None else row.tokens, format_tokens(row.tokens) if row.tokens is not None else "",
                             *(number(row.scores[t]) for t in TASKS), number(row.avg), number(row.delta),
                             "; ".join(row.missing), STRATEGY_LABELS.get(row.strategy, row.strategy)])
    return out.getvalue()


HTML_STYLE = ("body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
              "th,td{padding:.25em .7em;text-align:right}th:first-child,td:first-child{text-align:left}"
              "thead th{border-bottom:2px solid #333}tbody tr.block td{font-style:italic;text-align:left;"
              "border-top:1px solid #999;padding-top:.6em}p{max-width:60em;font-size:.9em}")


def render_html(blocks: Sequence[Block], *, title: str = "Table 2") -> str:
    """A standalone HTML page (the report embeds it)."""
    esc = html.escape
    n = 1 + len(headers())
    body = ["<table>", "<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in ["Model", *headers()]) + "</tr></thead>",
            "<tbody>"]
    for block in blocks:
        body.append(f'<tr class="block"><td colspan="{n}">{esc(block.title)}</td></tr>')
        body += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in [row.label, *row_cells(row)]) + "</tr>"
                 for row in block.rows]
    body += ["</tbody>", "</table>", f"<p>{esc(NOTE)}</p>"]
    missing = _missing_notes(blocks)
    if missing:
        body.append(f"<p>{GAP}: results missing: {esc('; '.join(missing))}</p>")
    return page(title, "\n".join(body))


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{HTML_STYLE}</style></head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


RENDERERS = {"md": render_markdown, "tex": render_latex, "csv": render_csv, "html": render_html}
