"""Table 2 as text: the cells' formatting and the Markdown, LaTeX, CSV and HTML renderings of built blocks.

A row of several runs shows ``mean ± std`` per task and for Avg, and its Delta
with the 95% interval, ``+1.5 [+0.2, +2.8]*`` (``*``: the interval excludes
0); a task cell with degenerate fine-tuning carries ``†``. The notes that
explain them appear only when a row needs them, so a table of single runs
reads as before. The budget ledger (``ledger``) is a compact last column in
Markdown and full columns in CSV and HTML.

The task columns are the blocks' own (``Block.tasks``: Table 2's seven, or
those of them the config's ``glue.tasks`` lists). Over fewer than seven, Avg
is headed "Avg (3 tasks)", the note says which tasks it averages, and the CSV
gains a last column ``avg_tasks`` (the averaged tasks, space-separated); a
seven-task table renders exactly as it always has.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence

from kdbudget.report.ledger import Ledger
from kdbudget.report.table import STRATEGY_LABELS, TASK_HEADERS, TASKS, Block, Row, avg_label

GAP = "n/a"
TABLE_FILES = {"md": "table2.md", "tex": "table2.tex", "csv": "table2.csv", "html": "table2.html"}
NOTE = ("GLUE dev scores x100 (MNLI: matched accuracy; MRPC: F1; CoLA: Matthews correlation; others: accuracy). "
        "Total Token Throughput: tokens processed in pretraining. Avg: mean of the seven task columns; "
        "Delta: Avg minus the Avg of the group's No-KD row, both from unrounded scores.")
BUDGET_NOTE = ("Budget: what the run spent in its group's budget measure (% of the budget), passes over the "
               "training data (ep), the teacher's share of the run's FLOPs and whether its forward ran in full.")
SPREAD_NOTE = ("Rows of several runs: mean ± sample standard deviation, over the pretraining seeds (each seed's "
               "score a mean over its GLUE seeds), or over the GLUE seeds where there is one pretraining run.")
CI_NOTES = {
    "paired-t": "paired t-interval over the pretraining seeds both rows have (each run against the No-KD run of "
                "its own seed)",
    "welch-t": "Welch t-interval on the two rows' per-GLUE-seed Avgs (one pretraining run each)",
}
SEVEN_AVG = "Avg: mean of the seven task columns"


def table_tasks(blocks: Sequence[Block]) -> tuple[str, ...]:
    """The blocks' task columns (one table, one set of tasks); Table 2's seven for no blocks."""
    found = {b.tasks for b in blocks}
    if len(found) > 1:
        raise ValueError(f"blocks built over different task lists: {sorted(found)}")
    return found.pop() if found else TASKS


def note(tasks: Sequence[str] = TASKS) -> str:
    """:data:`NOTE`, its Avg sentence naming the tasks when there are fewer than seven."""
    if tuple(tasks) == TASKS:
        return NOTE
    names = ", ".join(TASK_HEADERS[t][0] for t in tasks)
    return NOTE.replace(SEVEN_AVG, f"{avg_label(tasks)}: mean of the {len(tasks)} task columns shown ({names}), the "
                                   "only Table 2 tasks in the config's glue.tasks; not comparable with a seven-task "
                                   "Avg or the paper's")


DEGENERATE_MARK = "†"
SIGNIFICANT_MARK = "*"
MEASURE_SHORT = {"flops": "FLOPs", "seconds": "s", "tokens": "tokens"}

# --- cells ------------------------------------------------------------------------

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


def format_spread(x: float | None, spread: float | None) -> str:
    """``61.7 ± 1.2``; the bare score without a spread."""
    return format_score(x) + ("" if x is None or spread is None else f" ± {spread:.1f}")


def delta_cell(row: Row) -> str:
    """Delta, with its 95% interval and the marker where the interval excludes 0."""
    text = format_delta(row.delta, reference=row.is_reference or not row.compared)
    ci = row.delta_ci
    if ci is None or row.delta is None:
        return text
    return f"{text} [{ci.low:+.1f}, {ci.high:+.1f}]" + (SIGNIFICANT_MARK if ci.excludes_zero else "")


def row_cells(row: Row) -> list[str]:
    """A row's printed cells after its label: tokens, the task scores, Avg and Delta."""
    spread = row.std if row.repeated else {}
    flagged = row.degenerate
    return ([format_tokens(row.tokens)]
            + [format_spread(row.scores[t], spread.get(t)) + (DEGENERATE_MARK if t in flagged else "")
               for t in row.tasks]
            + [format_spread(row.avg, row.avg_std if row.repeated else None), delta_cell(row)])


def _amount(value: float | None, measure: str | None) -> str:
    if value is None:
        return GAP
    return f"{format_tokens(value)} {MEASURE_SHORT.get(measure or '', measure or '')}".rstrip()


def _teacher(ledger: Ledger) -> tuple[str, str]:
    """(the teacher's share of the FLOPs, its forward), a dash for a run without a teacher."""
    if not ledger.has_teacher:
        return "–", "–"
    share = GAP if ledger.teacher_share is None else f"{100 * ledger.teacher_share:.0f}%"
    return share, ledger.teacher_forward or GAP


def ledger_compact(ledger: Ledger) -> str:
    """The Markdown column: ``4.6T FLOPs (100.0%), 1.41 ep, teacher 62% partial``."""
    spent = _amount(ledger.spent, ledger.measure)
    if ledger.spent is not None and ledger.amount:
        spent += f" ({100 * ledger.spent / ledger.amount:.1f}%)"
    epochs = GAP if ledger.epochs is None else f"{ledger.epochs:.2f}"
    share, forward = _teacher(ledger)
    teacher = "" if not ledger.has_teacher else f", teacher {share}" + ("" if forward == GAP else f" {forward}")
    return f"{spent}, {epochs} ep{teacher}"


LEDGER_HEADERS = ["Budget measure", "Budget", "Spent", "Epochs", "Teacher share of FLOPs", "Teacher forward",
                  "Teacher pretraining cost", "Device", "GPU-hours"]


def ledger_cells(ledger: Ledger) -> list[str]:
    """The HTML columns of :data:`LEDGER_HEADERS` (tokens are Table 2's own column)."""
    share, forward = _teacher(ledger)
    if not ledger.has_teacher:
        cost = "–"
    else:
        known = [_amount(ledger.teacher_cost_flops, "flops") if ledger.teacher_cost_flops is not None else "",
                 f"{ledger.teacher_cost_gpu_hours:g} GPU-h" if ledger.teacher_cost_gpu_hours is not None else ""]
        cost = ", ".join(k for k in known if k) or GAP
        cost += f" ({ledger.teacher_cost_source})" if ledger.teacher_cost_source and cost != GAP else ""
    return [ledger.measure or GAP, _amount(ledger.amount, ledger.measure), _amount(ledger.spent, ledger.measure),
            GAP if ledger.epochs is None else f"{ledger.epochs:.2f}", share, forward, cost, ledger.device or GAP,
            GAP if ledger.gpu_hours is None else f"{ledger.gpu_hours:.3g}"]


def headers(tasks: Sequence[str] = TASKS) -> list[str]:
    return (["Total Token Throughput"] + [f"{TASK_HEADERS[t][0]} ({TASK_HEADERS[t][1]})" for t in tasks]
            + [avg_label(tasks), "Δ"])


def _missing_notes(blocks: Sequence[Block]) -> list[str]:
    return [f"{row.model}: {', '.join(row.missing)}" for b in blocks for row in b.rows if row.missing]


def extra_notes(blocks: Sequence[Block]) -> list[str]:
    """The notes on spreads, intervals and degenerate runs, for the rows that need them (none for single runs)."""
    rows = [row for b in blocks for row in b.rows]
    notes = [SPREAD_NOTE] if any(row.repeated for row in rows) else []
    methods = list(dict.fromkeys(row.delta_ci.method for row in rows if row.delta_ci is not None))
    if methods:
        notes.append("Δ [95% CI]: " + "; ".join(CI_NOTES[m] for m in methods)
                     + f". {SIGNIFICANT_MARK}: the interval excludes 0.")
    degenerate = [f"{TASK_HEADERS[t][0]}: {', '.join(runs)}"
                  for row in rows for t, runs in row.degenerate.items()]
    if degenerate:
        notes.append(f"{DEGENERATE_MARK}: degenerate fine-tuning (a constant prediction), kept in the mean: "
                     + "; ".join(degenerate) + ".")
    return notes


# --- renderings --------------------------------------------------------------------


def render_markdown(blocks: Sequence[Block], *, ledger: bool = True) -> str:
    """Table 2 in Markdown; ``ledger``: the compact budget ledger as the last column."""
    tasks = table_tasks(blocks)
    cols = ["Model", *headers(tasks), *(["Budget"] if ledger else [])]
    lines = ["| " + " | ".join(cols) + " |",
             "| " + " | ".join([":---"] + ["---:"] * len(headers(tasks)) + [":---"] * ledger) + " |"]
    for block in blocks:
        lines.append("| " + " | ".join([f"*{block.title}*"] + [""] * (len(cols) - 1)) + " |")
        lines += ["| " + " | ".join([row.label, *row_cells(row), *([ledger_compact(row.ledger)] if ledger else [])])
                  + " |" for row in block.rows]
    notes = [note(tasks), *extra_notes(blocks), *([BUDGET_NOTE] if ledger else [])]
    text = "\n".join(lines) + "\n\n" + " ".join(notes) + "\n"
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
        text = f"${text[0]}${text[1:]}"
    return (text.replace(" ± ", r" $\pm$ ").replace(DEGENERATE_MARK, r"$^\dagger$")
            .replace(" [+", " [$+$").replace(" [-", " [$-$").replace(", +", ", $+$").replace(", -", ", $-$"))


def render_latex(blocks: Sequence[Block], *, caption: str | None = None, tex_label: str = "tab:table2") -> str:
    """A booktabs ``table*`` (needs ``\\usepackage{booktabs}``)."""
    tasks = table_tasks(blocks)
    n = 1 + len(headers(tasks))
    avg_top, _, avg_sub = avg_label(tasks).partition(" ")  # "Avg (3 tasks)": its count on the second line
    top = ["", "Total Token"] + [TASK_HEADERS[t][0] for t in tasks] + [avg_top, r"$\Delta$"]
    sub = ["", "Throughput"] + [f"({TASK_HEADERS[t][1]})" for t in tasks] + [avg_sub, ""]
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
    caption = caption or " ".join([note(tasks), *extra_notes(blocks)]).replace("Delta", r"$\Delta$").replace(
        "Δ", r"$\Delta$").replace(" ± ", r" $\pm$ ").replace(DEGENERATE_MARK, r"$^\dagger$")
    missing = _missing_notes(blocks)
    if missing:
        caption += f" {GAP}: results missing ({'; '.join(missing)})."
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_tex_escape_caption(caption)}}}",
              rf"\label{{{tex_label}}}", r"\end{table*}"]
    return "\n".join(lines) + "\n"


def _tex_escape_caption(text: str) -> str:
    parts = text.split("$")  # keep math spans ($\Delta$) as they are
    return "$".join(_tex_escape(p) if i % 2 == 0 else p for i, p in enumerate(parts))


# New columns come last so that existing columns keep their place: "label" (the strategy's row label, without
# the layer subscript), then the runs behind a row and their spread, Delta's interval, the budget ledger.
# Over fewer than seven tasks, "avg_tasks" (the tasks "avg" averages) comes last.
def csv_columns(tasks: Sequence[str] = TASKS) -> list[str]:
    return ["group", "group_title", "model", "strategy", "layers", "tokens", "throughput", *tasks, "avg", "delta",
            "missing", "label", "budget_scale", "runs", "seeds", "glue_seeds", *(f"{t}_std" for t in tasks),
            "avg_std", "delta_ci_low", "delta_ci_high", "delta_ci_method", "delta_ci_excludes_zero", "degenerate",
            "budget_measure", "budget_amount", "budget_spent", "epochs", "teacher_flops_share", "teacher_forward",
            "teacher_cost_flops", "teacher_cost_gpu_hours", "teacher_cost_source", "device", "gpu_hours",
            *([] if tuple(tasks) == TASKS else ["avg_tasks"])]


CSV_COLUMNS = csv_columns()


def render_csv(blocks: Sequence[Block]) -> str:
    """Machine-readable: unrounded scores (x100, 4 decimals); empty cells where a value is undefined."""
    def number(x: float | None) -> str:
        return "" if x is None else f"{x:.4f}"

    def raw(x: object) -> str:
        return "" if x is None else str(x)

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    tasks = table_tasks(blocks)
    writer.writerow(csv_columns(tasks))
    for block in blocks:
        for row in block.rows:
            ci, ledger = row.delta_ci, row.ledger
            writer.writerow([block.group, block.title, row.model, row.strategy, row.layers, raw(row.tokens),
                             "" if row.tokens is None else format_tokens(row.tokens),
                             *(number(row.scores[t]) for t in tasks), number(row.avg), number(row.delta),
                             "; ".join(row.missing), STRATEGY_LABELS.get(row.strategy, row.strategy),
                             f"{row.scale:g}", len(row.runs), " ".join(raw(r.seed) for r in row.runs), row.glue_seeds,
                             *(number(row.std.get(t)) for t in tasks), number(row.avg_std),
                             number(ci and ci.low), number(ci and ci.high), ci.method if ci else "",
                             "" if ci is None else str(ci.excludes_zero).lower(),
                             "; ".join(f"{t}: {', '.join(runs)}" for t, runs in row.degenerate.items()),
                             raw(ledger.measure), raw(ledger.amount), raw(ledger.spent), raw(ledger.epochs),
                             raw(ledger.teacher_share), raw(ledger.teacher_forward), raw(ledger.teacher_cost_flops),
                             raw(ledger.teacher_cost_gpu_hours), raw(ledger.teacher_cost_source), raw(ledger.device),
                             raw(ledger.gpu_hours), *([] if tasks == TASKS else [" ".join(tasks)])])
    return out.getvalue()


HTML_STYLE = ("body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
              "th,td{padding:.25em .7em;text-align:right}th:first-child,td:first-child{text-align:left}"
              "thead th{border-bottom:2px solid #333}tbody tr.block td{font-style:italic;text-align:left;"
              "border-top:1px solid #999;padding-top:.6em}p{max-width:60em;font-size:.9em}")


def render_html(blocks: Sequence[Block], *, title: str = "Table 2") -> str:
    """A standalone HTML page (the report embeds it)."""
    esc = html.escape
    tasks = table_tasks(blocks)
    cols = ["Model", *headers(tasks), *LEDGER_HEADERS]
    body = ["<table>", "<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in cols) + "</tr></thead>", "<tbody>"]
    for block in blocks:
        body.append(f'<tr class="block"><td colspan="{len(cols)}">{esc(block.title)}</td></tr>')
        body += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in [row.label, *row_cells(row), *ledger_cells(row.ledger)])
                 + "</tr>" for row in block.rows]
    body += ["</tbody>", "</table>", *(f"<p>{esc(text)}</p>" for text in [note(tasks), *extra_notes(blocks)])]
    missing = _missing_notes(blocks)
    if missing:
        body.append(f"<p>{GAP}: results missing: {esc('; '.join(missing))}</p>")
    return page(title, "\n".join(body))


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{HTML_STYLE}</style></head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


RENDERERS = {"md": render_markdown, "tex": render_latex, "csv": render_csv, "html": render_html}
