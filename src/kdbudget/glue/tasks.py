"""The eight GLUE tasks: where their files are, which columns they read, how
they are scored.

Files follow the official GLUE download (``CoLA/train.tsv``, ``MNLI/dev_matched.tsv``,
...). Columns are named as in each file's header; CoLA has no header, so its four
columns are named here (source, label, mark, sentence). Label lists are in the
order of the Hugging Face ``nyu-mll/glue`` dataset, so a label's index is the
same in both. Metrics follow Table 2 of the paper and the GLUE paper: the first
metric of a task is its main one; MNLI is scored on both dev sets, matched first.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task.

    name: the name used in paths and configs (``sst2``).
    title: the name in tables (``SST-2``), also the folder of the official download.
    train_file: the training file inside the task folder.
    dev_files: (split, file) pairs; the first split is the one the main metric uses.
    text_columns: one (single sentence) or two (sentence pair) column names.
    label_column: the gold label (or score) column.
    labels: the label strings in index order; None for a regression task (STS-B).
    header: whether the files start with a header line.
    columns: the column names of a headerless file.
    metrics: metric names per dev set, the main one first.
    score_range: the valid scores of a regression task.
    hub_config, hub_text_columns, hub_dev_splits: the same data in ``nyu-mll/glue``.
    """

    name: str
    title: str
    train_file: str
    dev_files: tuple[tuple[str, str], ...]
    text_columns: tuple[str, ...]
    label_column: str
    labels: tuple[str, ...] | None
    header: bool
    metrics: tuple[str, ...]
    columns: tuple[str, ...] | None = None
    score_range: tuple[float, float] | None = None
    hub_config: str = ""
    hub_text_columns: tuple[str, ...] = ()
    hub_dev_splits: tuple[str, ...] = ("validation",)

    @property
    def dir_name(self) -> str:
        return self.title

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2

    @property
    def num_labels(self) -> int:
        """Outputs of the classification head (1 for regression)."""
        return 1 if self.labels is None else len(self.labels)

    @property
    def dev_splits(self) -> tuple[str, ...]:
        return tuple(split for split, _ in self.dev_files)

    @property
    def main_split(self) -> str:
        return self.dev_files[0][0]

    def dev_file(self, split: str) -> str:
        for name, file in self.dev_files:
            if name == split:
                return file
        raise KeyError(f"{self.name} has no dev split {split!r} (has {', '.join(self.dev_splits)})")


BINARY = ("0", "1")
ENTAILMENT2 = ("entailment", "not_entailment")
DEV = (("dev", "dev.tsv"),)

TASKS: dict[str, GlueTask] = {
    task.name: task
    for task in (
        GlueTask("cola", "CoLA", "train.tsv", DEV, ("sentence",), "label", BINARY, header=False,
                 columns=("source", "label", "mark", "sentence"), metrics=("mcc",),
                 hub_config="cola", hub_text_columns=("sentence",)),
        GlueTask("sst2", "SST-2", "train.tsv", DEV, ("sentence",), "label", BINARY, header=True,
                 metrics=("accuracy",), hub_config="sst2", hub_text_columns=("sentence",)),
        GlueTask("mrpc", "MRPC", "train.tsv", DEV, ("#1 String", "#2 String"), "Quality", BINARY, header=True,
                 metrics=("f1", "accuracy"), hub_config="mrpc", hub_text_columns=("sentence1", "sentence2")),
        GlueTask("qqp", "QQP", "train.tsv", DEV, ("question1", "question2"), "is_duplicate", BINARY, header=True,
                 metrics=("accuracy", "f1"), hub_config="qqp", hub_text_columns=("question1", "question2")),
        GlueTask("stsb", "STS-B", "train.tsv", DEV, ("sentence1", "sentence2"), "score", None, header=True,
                 metrics=("pearson", "spearman"), score_range=(0.0, 5.0),
                 hub_config="stsb", hub_text_columns=("sentence1", "sentence2")),
        GlueTask("mnli", "MNLI", "train.tsv", (("matched", "dev_matched.tsv"), ("mismatched", "dev_mismatched.tsv")),
                 ("sentence1", "sentence2"), "gold_label", ("entailment", "neutral", "contradiction"), header=True,
                 metrics=("accuracy",), hub_config="mnli", hub_text_columns=("premise", "hypothesis"),
                 hub_dev_splits=("validation_matched", "validation_mismatched")),
        GlueTask("qnli", "QNLI", "train.tsv", DEV, ("question", "sentence"), "label", ENTAILMENT2, header=True,
                 metrics=("accuracy",), hub_config="qnli", hub_text_columns=("question", "sentence")),
        GlueTask("rte", "RTE", "train.tsv", DEV, ("sentence1", "sentence2"), "label", ENTAILMENT2, header=True,
                 metrics=("accuracy",), hub_config="rte", hub_text_columns=("sentence1", "sentence2")),
    )
}

# Training examples of the official GLUE train sets (the nyu-mll/glue hub copy has the same), by
# task name: what a fine-tuning job's runtime is sized by (kdbudget.cluster.glue_cell_minutes).
TRAIN_EXAMPLES: dict[str, int] = {
    "cola": 8551, "sst2": 67349, "mrpc": 3668, "qqp": 363846,
    "stsb": 5749, "mnli": 392702, "qnli": 104743, "rte": 2490,
}

# The tasks of the paper's Table 2, in its column order (STS-B is not in the table).
TABLE2_TASKS = ("qnli", "sst2", "mnli", "mrpc", "qqp", "rte", "cola")


def get_task(task: str | GlueTask) -> GlueTask:
    """The task of that name; fails with the list of known names."""
    if isinstance(task, GlueTask):
        return task
    try:
        return TASKS[task]
    except KeyError:
        raise KeyError(f"unknown GLUE task {task!r}; known: {', '.join(TASKS)}") from None


# Header lines of the official GLUE files (CoLA has none). The hub writer fills
# the columns the hub copy lacks with empty strings; the demo writes them all.
OFFICIAL_HEADERS: dict[str, tuple[str, ...]] = {
    "sst2": ("sentence", "label"),
    "mrpc": ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),
    "qqp": ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"),
    "stsb": ("index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2",
             "score"),
    "mnli": ("index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
             "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"),
    "qnli": ("index", "question", "sentence", "label"),
    "rte": ("index", "sentence1", "sentence2", "label"),
}
