"""Read GLUE tasks from the official download layout, and write that layout
from the Hugging Face hub copy.

The layout: one folder per task (``CoLA/``, ``SST-2/``, ``MRPC/``, ``QQP/``,
``STS-B/``, ``MNLI/``, ``QNLI/``, ``RTE/``) holding ``train.tsv`` and
``dev.tsv`` (MNLI: ``dev_matched.tsv`` and ``dev_mismatched.tsv``). Lines are
tab-separated with no CSV quoting: quote characters are part of the text
(``He said "yes".``), so lines are split on tabs and nothing else, and only
``\\n`` ends a line.

A line is malformed when its field count differs from the header's, a text
field is empty, a label is unknown or a score is unparseable or out of range.
Malformed lines are skipped but never silently: each file's `FileStats`
counts them by reason, the first few are logged as ``file:line: reason``, and
more than ``max_malformed_fraction`` of a file (a wrong layout, a truncated
download) is an error. A missing file, a header without a needed column or a
file with no examples is an error that names the file.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from kdbudget.glue.tasks import OFFICIAL_HEADERS, TASKS, GlueTask, get_task

log = logging.getLogger(__name__)

# More malformed lines than this fraction of a file means the file is not in the expected layout.
DEFAULT_MAX_MALFORMED = 0.01
SAMPLES_KEPT = 5


class GlueFormatError(ValueError):
    """A GLUE file is missing, lacks a needed column, or is not in the expected layout."""


@dataclass(frozen=True, slots=True)
class Example:
    """One example: the text (a second text for pair tasks) and the label index, or the score of STS-B."""

    text_a: str
    text_b: str | None
    label: int | float


@dataclass
class FileStats:
    """What reading one file found: data lines, examples kept, malformed lines by reason."""

    path: str
    lines: int = 0
    examples: int = 0
    malformed: Counter = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())

    def reject(self, line_no: int, reason: str) -> None:
        kind = reason.split(":", 1)[0]
        self.malformed[kind] += 1
        if len(self.samples) < SAMPLES_KEPT:
            self.samples.append(f"{self.path}:{line_no}: {reason}")

    def as_dict(self) -> dict:
        return {"path": self.path, "lines": self.lines, "examples": self.examples,
                "malformed": self.malformed_total, "malformed_by_reason": dict(self.malformed),
                "first_malformed": list(self.samples)}


@dataclass
class TaskData:
    """A task's training and dev examples with the statistics of every file read."""

    task: GlueTask
    train: list[Example]
    dev: dict[str, list[Example]]
    stats: dict[str, FileStats]

    @property
    def malformed(self) -> dict[str, int]:
        """Malformed line counts per file (``SST-2/train.tsv``: n)."""
        return {name: s.malformed_total for name, s in self.stats.items()}


def _parse_label(task: GlueTask, raw: str, label_index: dict[str, int]) -> tuple[int | float | None, str | None]:
    """(label, None) or (None, reason)."""
    value = raw.strip()
    if task.labels is not None:
        if value not in label_index:
            return None, f"unknown label: {value!r} (expected one of {', '.join(task.labels)})"
        return label_index[value], None
    try:
        score = float(value)
    except ValueError:
        return None, f"unparseable score: {value!r}"
    low, high = task.score_range or (-math.inf, math.inf)
    if not math.isfinite(score) or not low <= score <= high:
        return None, f"score out of range: {value!r} (expected {low} to {high})"
    return score, None


def read_file(path: str | Path, task: str | GlueTask, *, max_malformed_fraction: float = DEFAULT_MAX_MALFORMED,
              name: str | None = None) -> tuple[list[Example], FileStats]:
    """The examples of one official GLUE file and what reading it found.

    ``name`` is how the file is called in messages and stats (default: its path).
    """
    task, path = get_task(task), Path(path)
    stats = FileStats(name or str(path))
    if not path.is_file():
        raise GlueFormatError(f"{task.title}: missing file {path}")
    label_index = {label: i for i, label in enumerate(task.labels or ())}
    examples: list[Example] = []
    # utf-8-sig: the MSR paraphrase files start with a byte-order mark before "Quality".
    with open(path, encoding="utf-8-sig", newline="\n") as handle:
        if task.header:
            header = handle.readline()
            if not header:
                raise GlueFormatError(f"{path}: empty file, expected a header line")
            columns, first_line = header.rstrip("\r\n").split("\t"), 2
        else:
            columns, first_line = list(task.columns or ()), 1
        needed = (*task.text_columns, task.label_column)
        missing = [c for c in needed if c not in columns]
        if missing:
            raise GlueFormatError(f"{path}: the header lacks column(s) {', '.join(map(repr, missing))} that "
                                  f"{task.title} needs (header: {columns})")
        text_at = [columns.index(c) for c in task.text_columns]
        label_at = columns.index(task.label_column)
        width = len(columns)

        for line_no, line in enumerate(handle, start=first_line):
            stats.lines += 1
            fields = line.rstrip("\r\n").split("\t")
            if fields == [""]:
                stats.reject(line_no, "blank line")
                continue
            if len(fields) != width:
                stats.reject(line_no, f"wrong field count: {len(fields)} fields, expected {width}")
                continue
            texts = [fields[i] for i in text_at]
            empty = [c for c, t in zip(task.text_columns, texts, strict=True) if not t.strip()]
            if empty:
                stats.reject(line_no, f"empty sentence: column {empty[0]!r}")
                continue
            label, reason = _parse_label(task, fields[label_at], label_index)
            if reason:
                stats.reject(line_no, reason)
                continue
            examples.append(Example(texts[0], texts[1] if task.is_pair else None, label))

    stats.examples = len(examples)
    if stats.malformed_total:
        log.warning("%s: skipped %d malformed of %d lines (%s); first: %s", stats.path, stats.malformed_total,
                    stats.lines, dict(stats.malformed), "; ".join(stats.samples))
    if not examples:
        raise GlueFormatError(f"{path}: no examples ({stats.lines} data lines, {stats.malformed_total} malformed: "
                              f"{'; '.join(stats.samples) or 'empty file'})")
    if stats.malformed_total > max_malformed_fraction * stats.lines:
        raise GlueFormatError(
            f"{path}: {stats.malformed_total} of {stats.lines} lines are malformed (more than "
            f"{max_malformed_fraction:.1%}); is it the official {task.title} layout? First: {'; '.join(stats.samples)}")
    return examples, stats


def load_task(glue_dir: str | Path, task: str | GlueTask, *, splits: tuple[str, ...] | None = None,
              max_malformed_fraction: float = DEFAULT_MAX_MALFORMED) -> TaskData:
    """Read a task's ``train`` split and its dev splits (default: all) from ``glue_dir/<Title>/``."""
    task = get_task(task)
    folder = Path(glue_dir) / task.dir_name
    if not folder.is_dir():
        raise GlueFormatError(f"{task.title}: no folder {folder} (expected the official GLUE layout under {glue_dir})")
    wanted = ("train", *task.dev_splits) if splits is None else splits
    train: list[Example] = []
    dev: dict[str, list[Example]] = {}
    stats: dict[str, FileStats] = {}
    for split in wanted:
        file = task.train_file if split == "train" else task.dev_file(split)
        name = f"{task.dir_name}/{file}"
        examples, stats[name] = read_file(folder / file, task, max_malformed_fraction=max_malformed_fraction,
                                          name=name)
        if split == "train":
            train = examples
        else:
            dev[split] = examples
    log.info("%s: %d train examples, dev %s", task.title, len(train), {k: len(v) for k, v in dev.items()})
    return TaskData(task, train, dev, stats)


# --- writing the official layout from the hub copy ----------------------------------------------------------


def _clean(text: str) -> tuple[str, bool]:
    """The text with tabs and line breaks (which would break the layout) turned into spaces."""
    cleaned = text.replace("\t", " ").replace("\r", " ").replace("\n", " ")
    return cleaned, cleaned != text


def _hub_rows(task: GlueTask, rows) -> tuple[list[str], int]:
    """Lines of the official layout from hub rows; also how many texts needed cleaning."""
    lines, cleaned = [], 0
    columns = task.columns if not task.header else OFFICIAL_HEADERS[task.name]
    for row in rows:
        label = row["label"]
        if task.labels is None:
            label_text = f"{float(label):.3f}"  # as the official files (the hub stores them as float32)
        else:
            if not 0 <= label < len(task.labels):
                raise ValueError(f"{task.name}: hub row {row.get('idx')} has label {label} (test split?)")
            label_text = task.labels[label]
        values = {c: "" for c in columns}
        for ours, theirs in zip(task.text_columns, task.hub_text_columns, strict=True):
            values[ours], changed = _clean(row[theirs])
            cleaned += changed
        values[task.label_column] = label_text
        for key in ("index", "id"):
            if key in values:
                values[key] = str(row["idx"])
        if task.name == "cola":
            values.update(source="hub", mark="" if label else "*")
        if task.name == "mnli":
            values["label1"] = label_text
        lines.append("\t".join(values[c] for c in columns) + "\n")
    return lines, cleaned


def save_hub_glue(out_dir: str | Path, tasks: tuple[str, ...] | None = None,
                  hub_name: str = "nyu-mll/glue") -> dict[str, dict[str, int]]:
    """Load ``hub_name`` (``nyu-mll/glue``, or a local clone of its repository) and write it in
    the official layout under ``out_dir``.

    The hub needs the network (a local rule only); tests give a local clone laid
    out like the hub's. The folder appears atomically; returns the examples
    written per file.
    """
    import datasets

    from kdbudget.io import atomic_dir

    counts: dict[str, dict[str, int]] = {}
    with atomic_dir(out_dir) as tmp:
        for name in tasks or tuple(TASKS):
            task = get_task(name)
            dataset = datasets.load_dataset(hub_name, task.hub_config)
            names = getattr(dataset["train"].features["label"], "names", None)
            if task.labels is not None and "entailment" in task.labels and list(names or ()) != list(task.labels):
                raise ValueError(f"{task.name}: hub label order {names} differs from {task.labels}")
            folder = tmp / task.dir_name
            folder.mkdir()
            dev_files = (f for _, f in task.dev_files)
            splits = [("train", task.train_file)] + list(zip(task.hub_dev_splits, dev_files, strict=True))
            counts[task.name] = {}
            for hub_split, file in splits:
                lines, cleaned = _hub_rows(task, dataset[hub_split])
                header = "\t".join(OFFICIAL_HEADERS[task.name]) + "\n" if task.header else ""
                (folder / file).write_text(header + "".join(lines), encoding="utf-8")
                counts[task.name][file] = len(lines)
                if cleaned:
                    log.warning("%s/%s: %d texts held tabs or line breaks, written as spaces", task.dir_name, file,
                                cleaned)
            log.info("%s: wrote %s", task.title, counts[task.name])
    return counts
