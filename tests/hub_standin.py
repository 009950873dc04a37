"""Local stand-ins for what the paper config fetches from the Hugging Face hub.

Laid out as the hub serves them, so the pipeline's real fetching code runs
against them offline:

- ``glue_clone``: a local clone of the ``nyu-mll/glue`` dataset repository
  (one parquet file per config and split, and the README's ``configs``), with
  the hub's schema written out here independently of ``kdbudget.glue.tasks``;
- ``text_dataset_clone``: a one-column ``text`` dataset repository, like
  ``bookcorpus/bookcorpus``;
- ``warm_model_cache``: a model in a Hugging Face cache (``HF_HOME``) as a
  previous online ``snapshot_download`` would have left it, which
  ``HF_HUB_OFFLINE=1`` then serves.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

# nyu-mll/glue as the hub has it: text columns, label names (None: a float32 score), splits.
GLUE_HUB_SCHEMA: dict[str, tuple[tuple[str, ...], list[str] | None, tuple[str, ...]]] = {
    "cola": (("sentence",), ["unacceptable", "acceptable"], ("train", "validation", "test")),
    "sst2": (("sentence",), ["negative", "positive"], ("train", "validation", "test")),
    "mrpc": (("sentence1", "sentence2"), ["not_equivalent", "equivalent"], ("train", "validation", "test")),
    "qqp": (("question1", "question2"), ["not_duplicate", "duplicate"], ("train", "validation", "test")),
    "stsb": (("sentence1", "sentence2"), None, ("train", "validation", "test")),
    "mnli": (("premise", "hypothesis"), ["entailment", "neutral", "contradiction"],
             ("train", "validation_matched", "validation_mismatched", "test_matched", "test_mismatched")),
    "qnli": (("question", "sentence"), ["entailment", "not_entailment"], ("train", "validation", "test")),
    "rte": (("sentence1", "sentence2"), ["entailment", "not_entailment"], ("train", "validation", "test")),
}

WORDS = ("the river mill town apple cheese wool salt market bridge farmer hill water stone autumn fair "
         "north valley near sold built old miller daughter rain clouds").split()


def _sentence(i: int, n: int = 7) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n)).capitalize() + "."


def glue_rows(config: str, split: str, n: int) -> dict[str, list]:
    """``n`` rows of one config and split; test splits have label -1, as on the hub."""
    text_columns, names, _ = GLUE_HUB_SCHEMA[config]
    rows: dict[str, list] = {column: [_sentence(i + k) for i in range(n)] for k, column in enumerate(text_columns)}
    if names is None:
        rows["label"] = [float((i * 7) % 26) / 5 for i in range(n)]
    else:
        rows["label"] = [-1 if split.startswith("test") else i % len(names) for i in range(n)]
    rows["idx"] = list(range(n))
    return rows


def glue_clone(root: Path, rows_per_split: int = 24, configs: tuple[str, ...] | None = None) -> Path:
    """A local clone of the nyu-mll/glue dataset repository."""
    from datasets import ClassLabel, Dataset, Features, Value

    root.mkdir(parents=True, exist_ok=True)
    readme = ["---", "configs:"]
    for config in configs or tuple(GLUE_HUB_SCHEMA):
        text_columns, names, splits = GLUE_HUB_SCHEMA[config]
        features = Features({**{c: Value("string") for c in text_columns},
                             "label": Value("float32") if names is None else ClassLabel(names=names),
                             "idx": Value("int32")})
        (root / config).mkdir(exist_ok=True)
        readme += [f"- config_name: {config}", "  data_files:"]
        for split in splits:
            Dataset.from_dict(glue_rows(config, split, rows_per_split), features=features).to_parquet(
                str(root / config / f"{split}-00000-of-00001.parquet"))
            readme += [f"  - split: {split}", f"    path: {config}/{split}-*"]
    (root / "README.md").write_text("\n".join(readme + ["---", "", "A local clone of nyu-mll/glue for tests."]) + "\n")
    return root


def text_dataset_clone(root: Path, lines: list[str]) -> Path:
    """A dataset repository with one ``text`` column in a train split (like bookcorpus/bookcorpus)."""
    from datasets import Dataset

    (root / "data").mkdir(parents=True, exist_ok=True)
    Dataset.from_dict({"text": lines}).to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    (root / "README.md").write_text("---\nconfigs:\n- config_name: plain_text\n  data_files:\n"
                                    "  - split: train\n    path: data/train-*\n---\n")
    return root


def warm_model_cache(hf_home: Path, repo_id: str, files: Path) -> Path:
    """Put the files of directory ``files`` into ``hf_home``'s hub cache as ``repo_id``'s main revision."""
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for item in files.iterdir():
        if item.is_file():
            shutil.copyfile(item, snapshot / item.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot
