"""The demo GLUE entry point: sizes, the world's split, and each task's folder written atomically."""

from __future__ import annotations

import itertools
import numbers
import random
from pathlib import Path

from kdbudget.demo.corpus import demo_world
from kdbudget.demo.glue.context import Context, Example, split_entities
from kdbudget.demo.glue.draw import draw_examples, draw_mnli
from kdbudget.demo.glue.files import Ids, task_rows
from kdbudget.demo.glue.language import Describer
from kdbudget.demo.glue.nli import MATCHED_GENRES, MISMATCHED_GENRE
from kdbudget.glue.tasks import OFFICIAL_HEADERS, TASKS
from kdbudget.io import atomic_dir

# The tasks, their folders, header lines and labels are kdbudget.glue.tasks's (TASKS, GlueTask.dir_name,
# OFFICIAL_HEADERS, GlueTask.labels): the demo writes exactly what the loader reads.
TRAIN_SIZES = {"cola": 1000, "sst2": 1000, "mrpc": 1000, "qqp": 1000, "stsb": 1000, "mnli": 1500, "qnli": 1000,
               "rte": 300}
#: Dev sizes per dev file (MNLI has two, matched and mismatched).
DEV_SIZES = {task: 300 for task in TASKS}


def _sizes(sizes: dict[str, int] | None) -> dict[str, tuple[int, int]]:
    """(train, dev per dev file) per task."""
    titles = {spec.dir_name: name for name, spec in TASKS.items()}
    given: dict[str, int] = {}
    for key, value in (sizes or {}).items():
        name = titles.get(key, key)
        if name not in TASKS:
            raise ValueError(f"unknown demo GLUE task {key!r} in sizes; known: {', '.join(TASKS)}")
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 10:
            raise ValueError(f"size of {key} must be an integer >= 10, got {value!r}")
        given[name] = int(value)
    out = {}
    for task in TASKS:
        if task in given:
            out[task] = (given[task], max(10, round(given[task] * DEV_SIZES[task] / TRAIN_SIZES[task])))
        else:
            out[task] = (TRAIN_SIZES[task], DEV_SIZES[task])
    return out


# --------------------------------------------------------------------------- entry point

def write_demo_glue(out_dir: Path | str, *, words: int, seed: int, wiki_fraction: float = 0.5, task_seed: int = 0,
                    sizes: dict[str, int] | None = None) -> dict:
    """Write CoLA, SST-2, MRPC, QQP, STS-B, MNLI, QNLI, RTE (the official GLUE download
    layout) from the same world the demo corpus describes; returns per-task counts.

    ``words``, ``seed`` and ``wiki_fraction`` are the demo corpus's (they fix the world);
    ``task_seed`` draws the dev entities and the examples; ``sizes`` overrides train
    sizes by task name (dev sizes scale with them).  The same arguments give
    byte-identical files; ``out_dir`` is replaced atomically.

    Returns ``{task: {file stem: rows}}``, e.g. ``{"mnli": {"train": 1500,
    "dev_matched": 300, "dev_mismatched": 300}, ...}``.
    """
    for name, value in (("words", words), ("seed", seed), ("task_seed", task_seed)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (name != "seed" and value < 0):
            raise ValueError(f"{name} must be a{' non-negative' if name != 'seed' else 'n'} integer, got {value!r}")
    if words <= 0:
        raise ValueError(f"words must be a positive integer, got {words!r}")
    if isinstance(wiki_fraction, bool) or not isinstance(wiki_fraction, (int, float)) or not 0 < wiki_fraction < 1:
        raise ValueError(f"wiki_fraction must lie strictly between 0 and 1, got {wiki_fraction!r}")
    plan = _sizes(sizes)
    world = demo_world(int(words), int(seed), wiki_fraction)
    describer = Describer(world)
    train_ids, dev_ids = split_entities(world, int(task_seed))
    contexts = {"train": Context(world, describer, train_ids), "dev": Context(world, describer, dev_ids)}
    out_dir = Path(out_dir)

    with atomic_dir(out_dir) as tmp:
        counts = {task: _write_task(tmp / TASKS[task].dir_name, task, plan[task], contexts, int(seed), int(task_seed))
                  for task in TASKS}
    return counts


def _write_task(folder: Path, task: str, size: tuple[int, int], contexts: dict[str, Context], seed: int,
                task_seed: int) -> dict[str, int]:
    n_train, n_dev = size
    seen: set[tuple[str, ...]] = set()
    ids = Ids({"mrpc": 1_000_000, "qqp": 1}.get(task, 0))

    def rng(split: str) -> random.Random:
        return random.Random(f"kdbudget-demo-glue:{seed}:{task_seed}:{task}:{split}")

    files: dict[str, list[Example]] = {}
    if task == "mnli":
        prompts = itertools.count()
        files["train"] = draw_mnli(contexts["train"], n_train, rng("train"), seen, MATCHED_GENRES, prompts)
        files["dev_matched"] = draw_mnli(contexts["dev"], n_dev, rng("dev_matched"), seen, MATCHED_GENRES, prompts)
        files["dev_mismatched"] = draw_mnli(contexts["dev"], n_dev, rng("dev_mismatched"), seen, (MISMATCHED_GENRE,),
                                             prompts)
    else:
        files["train"] = draw_examples(task, contexts["train"], n_train, rng("train"), seen)
        files["dev"] = draw_examples(task, contexts["dev"], n_dev, rng("dev"), seen)
    folder.mkdir(parents=True)
    header, offset = OFFICIAL_HEADERS.get(task), 0  # None: CoLA has no header
    for stem, examples in files.items():
        rows = task_rows(task, examples, ids, offset)
        offset += len(rows)
        lines = (["\t".join(header)] if header else []) + ["\t".join(row) for row in rows]
        (folder / f"{stem}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {stem: len(examples) for stem, examples in files.items()}
