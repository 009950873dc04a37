"""The paper's Table 2 as printed, its internal consistency, and the comparison with a run.

``data/paper_table2.csv`` is a faithful transcription (numbers exactly as
printed, discrepancies included). :func:`check_paper_table` recomputes every
Avg (the mean of the seven task columns) and every Delta (Avg minus the
group's No-KD Avg) from the printed task columns with exact arithmetic,
rounds to one decimal (half away from zero) and reports each printed value
that differs as a :class:`Discrepancy`. Ties cannot occur: sums of seven
one-decimal numbers divided by 7 never end in a 5 at the second decimal.

The side-by-side comparison needs all seven task columns: a run whose config
lists fewer (``glue.tasks``) gets the comparison skipped, with a note saying
why, and the paper's own discrepancies still listed.
"""

from __future__ import annotations

import csv
import html
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from importlib import resources
from pathlib import Path

from kdbudget.report.formats import GAP, format_delta, page, parse_tokens, row_cells, table_tasks
from kdbudget.report.table import TASK_HEADERS, TASKS, Block, label

PAPER = "Bui et al. (2024), Knowledge Distillation vs. Pretraining from Scratch under a Fixed (Computation) Budget"
PAPER_GROUP_TITLES = {
    "unlimited6": "6-Layer: Unlimited Pretraining Tokens within Fixed Compute Budget",
    "unlimited12": "12-Layer: Unlimited Pretraining Tokens within Fixed Compute Budget",
    "limited6": "6-Layer: Limited Pretraining Tokens within Fixed (Increased) Compute Budget",
}
DATA_FILE = "paper_table2.csv"


@dataclass(frozen=True)
class PaperRow:
    group: str
    model: str
    strategy: str
    layers: int
    throughput: str
    scores: dict[str, Decimal]
    avg: Decimal
    delta: Decimal | None  # None: the printed dash of a No-KD row

    @property
    def tokens(self) -> float:
        return parse_tokens(self.throughput)

    @property
    def is_reference(self) -> bool:
        return self.delta is None


def _split_name(model: str) -> tuple[str, int]:
    base = model.split("_")[0]
    digits = len(base) - len(base.rstrip("0123456789"))
    return base[:-digits], int(base[-digits:])


def load_paper_table(path: str | Path | None = None) -> list[PaperRow]:
    """The shipped transcription (or another file in its format)."""
    text = (Path(path).read_text(encoding="utf-8") if path is not None
            else resources.files("kdbudget.report").joinpath("data", DATA_FILE).read_text(encoding="utf-8"))
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    rows = []
    for record in csv.DictReader(lines):
        strategy, layers = _split_name(record["model"])
        rows.append(PaperRow(group=record["group"], model=record["model"], strategy=strategy, layers=layers,
                             throughput=record["throughput"], scores={t: Decimal(record[t]) for t in TASKS},
                             avg=Decimal(record["avg"]), delta=Decimal(record["delta"]) if record["delta"] else None))
    return rows


# --- the paper's own arithmetic -----------------------------------------------------------


def round1(x: Fraction) -> Decimal:
    """Round to one decimal, half away from zero, exactly."""
    tenths = (abs(x) * 10 + Fraction(1, 2)).__floor__()
    return Decimal(tenths if x >= 0 else -tenths) / 10


def exact_avg(row: PaperRow) -> Fraction:
    return sum((Fraction(row.scores[t]) for t in TASKS), Fraction(0)) / len(TASKS)


@dataclass(frozen=True)
class Discrepancy:
    model: str
    column: str  # "avg" or "delta"
    printed: Decimal
    recomputed: Fraction  # exact, from the printed task columns
    note: str

    @property
    def recomputed_rounded(self) -> Decimal:
        return round1(self.recomputed)


def _reference(rows: Sequence[PaperRow], row: PaperRow) -> PaperRow:
    return next(r for r in rows if r.group == row.group and r.is_reference)


def check_paper_table(rows: Sequence[PaperRow]) -> list[Discrepancy]:
    """Every printed Avg or Delta that its own task columns, rounded to one decimal, do not give."""
    found = []
    for row in rows:
        avg = exact_avg(row)
        if round1(avg) != row.avg:
            found.append(Discrepancy(row.model, "avg", row.avg, avg,
                                     f"the task columns average {float(avg):.3f}"))
        if row.delta is None:
            continue
        ref = _reference(rows, row)
        delta = avg - exact_avg(ref)
        if round1(delta) != row.delta:
            of_printed = row.avg - ref.avg
            how = (f"it equals the difference of the printed (rounded) Avgs, {row.avg} - {ref.avg}"
                   if of_printed == row.delta else
                   f"the printed Avgs give {of_printed:+} ({row.avg} - {ref.avg}) as well: a misprint")
            found.append(Discrepancy(row.model, "delta", row.delta, delta,
                                     f"the task columns give {float(delta):+.3f}; {how}"))
    return found


# --- a small document model, rendered as Markdown or HTML ------------------------------------


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]


Element = tuple[str, str] | Table  # ("h1" | "h2" | "p", text) or a table


def render_doc_markdown(doc: Sequence[Element]) -> str:
    out = []
    for element in doc:
        if isinstance(element, Table):
            out.append("| " + " | ".join(element.headers) + " |")
            out.append("| " + " | ".join([":---"] * 2 + ["---:"] * (len(element.headers) - 2)) + " |")
            out += ["| " + " | ".join(row) + " |" for row in element.rows]
            out.append("")
        else:
            kind, text = element
            out += [{"h1": "# ", "h2": "## ", "p": ""}[kind] + text, ""]
    return "\n".join(out)


def render_doc_html(doc: Sequence[Element], title: str) -> str:
    esc = html.escape
    out = []
    for element in doc:
        if isinstance(element, Table):
            out.append("<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in element.headers)
                       + "</tr></thead><tbody>")
            out += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in element.rows]
            out.append("</tbody></table>")
        elif element[0] != "h1":
            tag = element[0]
            out.append(f"<{tag}>{esc(element[1].replace('`', ''))}</{tag}>")
    return page(title, "\n".join(out))


# --- reproduced vs. reported --------------------------------------------------------------


def _diff(ours: float | None, theirs: Decimal | None) -> str:
    if ours is None or theirs is None:
        return GAP
    return format_delta(ours - float(theirs))


def _ratio(ours: int | None, theirs: float) -> str:
    return GAP if ours is None else f"x{ours / theirs:.2g}"


def _paper_cells(row: PaperRow) -> list[str]:
    return ([row.throughput] + [str(row.scores[t]) for t in TASKS] + [str(row.avg)]
            + ["–" if row.delta is None else f"{row.delta:+}"])


def comparison(blocks: Sequence[Block], paper_rows: Sequence[PaperRow]) -> list[Element]:
    """The document behind ``table2_vs_paper.md``: our rows beside the paper's, block by block for the
    blocks that share a model with it (matched by name), and the discrepancies inside the paper's table.
    A row of such a block that the paper does not have (an extra strategy, e.g. DistilBERT) is shown
    with n/a for the paper's numbers, never matched to another row."""
    tasks = table_tasks(blocks)
    if tasks != TASKS:
        return [("h1", "Table 2: reproduced vs. reported"), ("p", skipped_note(tasks)),
                *discrepancy_section(paper_rows)]
    by_name = {r.model: r for r in paper_rows}
    cols = ["Model", "", "Throughput"] + [name for name, _ in TASK_HEADERS.values()] + ["Avg", "Δ"]
    doc: list[Element] = [
        ("h1", "Table 2: reproduced vs. reported"),
        ("p", f"Reproduced: this run's results. Reported: Table 2 of {PAPER}, as printed "
              f"(`kdbudget/report/data/{DATA_FILE}`). Difference: reproduced minus reported, in points "
              "(GLUE dev scores x100); for throughput, the ratio of tokens processed. Models are matched by "
              "name only: a run at another scale (the demo) shares the paper's names, not its sizes."),
    ]
    shared = 0
    for block in blocks:
        rows = [r for r in block.rows if r.model in by_name]
        if not rows:
            continue
        table = Table(cols, [])
        for row in block.rows:
            theirs = by_name.get(row.model)
            if theirs is None:
                table.rows.extend([[f"{row.label} ({row.model})", "reproduced", *row_cells(row)],
                                   ["", "reported (not in the paper)", *[GAP] * len(row_cells(row))],
                                   ["", "difference", *[GAP] * len(row_cells(row))]])
                continue
            table.rows.extend([
                [f"{row.label} ({row.model})", "reproduced", *row_cells(row)],
                ["", "reported", *_paper_cells(theirs)],
                ["", "difference", _ratio(row.tokens, theirs.tokens),
                 *(_diff(row.scores[t], theirs.scores[t]) for t in TASKS), _diff(row.avg, theirs.avg),
                 "–" if row.is_reference or theirs.delta is None else _diff(row.delta, theirs.delta)],
            ])
        shared += len(rows)
        group_title = PAPER_GROUP_TITLES.get(by_name[rows[0].model].group, "")
        doc += [("h2", block.title), ("p", f"The paper's block: {group_title}."), table]
    if not shared:
        doc.append(("p", "No model of this run is in the paper's Table 2 (models are matched by name)."))
    doc += discrepancy_section(paper_rows)
    return doc


def skipped_note(tasks: Sequence[str]) -> str:
    """Why a run over fewer than Table 2's seven tasks is not compared with the paper."""
    names = ", ".join(TASK_HEADERS[t][0] for t in tasks)
    absent = ", ".join(TASK_HEADERS[t][0] for t in TASKS if t not in tasks)
    return (f"Comparison skipped: this run's Table 2 has {len(tasks)} of the paper's {len(TASKS)} task columns "
            f"({names}: the Table 2 tasks in the config's glue.tasks), so its Avg and Δ are not the paper's and "
            f"no row can be set beside the paper's. Add {absent} to glue.tasks to compare with {PAPER}.")


def discrepancy_section(paper_rows: Sequence[PaperRow]) -> list[Element]:
    found = check_paper_table(paper_rows)
    n_delta = sum(r.delta is not None for r in paper_rows)
    doc: list[Element] = [
        ("h2", "Discrepancies in the paper's Table 2"),
        ("p", f"Each printed Avg ({len(paper_rows)}) and Delta ({n_delta}) recomputed from the paper's own task "
              "columns with exact arithmetic and rounded to one decimal. "
              + (f"{len(found)} printed value(s) disagree beyond rounding:" if found else "All agree.")),
    ]
    if found:
        names = {r.model: label(r.strategy, r.layers) for r in paper_rows}
        doc.append(Table(["Row", "Column", "Printed", "From the task columns", "Note"],
                         [[f"{names[d.model]} ({d.model})", "Avg" if d.column == "avg" else "Δ",
                           f"{d.printed}" if d.column == "avg" else f"{d.printed:+}",
                           f"{d.recomputed_rounded}" if d.column == "avg" else f"{d.recomputed_rounded:+}",
                           d.note] for d in found]))
    return doc


def render_comparison(blocks: Sequence[Block], paper_rows: Sequence[PaperRow] | None = None) -> dict[str, str]:
    """``{"md": ..., "html": ...}`` of the comparison document."""
    doc = comparison(blocks, paper_rows if paper_rows is not None else load_paper_table())
    return {"md": render_doc_markdown(doc), "html": render_doc_html(doc, "Table 2: reproduced vs. reported")}

