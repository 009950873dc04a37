"""Bad input, one row each: the error names the culprit, a config key or a file.

Two tables, one test each:
- CONFIG_CASES: a config override checked as the workflow checks a config before any
  job (schema validation, then the teachers and the planned models);
- LIBRARY_CASES: a bad file or folder handed to the library function a job calls.
Add a row to the matching table; prefix its id with the stage it belongs to.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import ROOT, base_config

from kdbudget.config import ConfigError, validate_config
from kdbudget.plan import check_teachers, plan_models

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"

TINY = {"layers": 2, "hidden": 32, "heads": 4, "intermediate": 64}

# (id, config override, the key the message must name)
CONFIG_CASES = [
    # passed before issue 11: a regression net
    ("config-unknown-key", {"corpus": {"shardz": 2}}, "corpus.shardz"),
    ("config-teacher-budget-without-limit",
     {"teachers": {"t4": {"source": "pretrain", "shape": TINY, "budget": {"mode": "tokens"}}}}, "teachers.t4.budget"),
    # issue 11
    ("pretrain-batch-not-a-multiple-of-micro-batch",
     {"pretrain": {"batch_size": 100, "micro_batch_size": 32}}, "pretrain.micro_batch_size"),
    ("pretrain-batch-not-split-over-gpus",
     {"pretrain": {"batch_size": 96, "micro_batch_size": 32}, "resources": {"pretrain": {"gpu": 2}}},
     "resources.pretrain.gpu"),
    ("pretrain-reference-budget-with-limit",
     {"groups": {"small": {"student": TINY, "strategies": ["nokd"],
                           "budget": {"mode": "reference", "limit": 1000}}}}, "groups.small.budget.limit"),
]


@pytest.mark.parametrize("override, key", [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_a_bad_config_names_its_key(override, key):
    with pytest.raises(ConfigError) as caught:
        config = validate_config(base_config(**override), SCHEMA)
        check_teachers(config)
        plan_models(config)
    assert f"'{key}'" in str(caught.value)


# --- library level: each case makes its bad input and returns the call that must fail and what its
# message must say: the culprit first, then what to do about it where a raw error named the file already.


def _teacher(folder: Path) -> Path:
    """A tiny teacher folder as transformers' save_pretrained writes it."""
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    BertForMaskedLM(config).save_pretrained(folder)
    return folder


Case = tuple[Callable[[], object], str | list[str]]


def books_missing_folder(tmp_path: Path, monkeypatch) -> Case:
    from kdbudget.data.extract import read_books

    missing = tmp_path / "no-books"
    return lambda: read_books(missing, tmp_path / "books.jsonl"), str(missing)


def teacher_without_config_json(tmp_path: Path, monkeypatch) -> Case:
    from kdbudget.model import load_pretrained

    teacher = _teacher(tmp_path / "teacher")
    (teacher / "config.json").unlink()
    return lambda: load_pretrained(teacher), [str(teacher / "config.json"), "needs config.json and model.safetensors"]


def teacher_config_json_not_json(tmp_path: Path, monkeypatch) -> Case:
    from kdbudget.model import load_pretrained

    teacher = _teacher(tmp_path / "teacher")
    (teacher / "config.json").write_text('{"model_type": "bert", ')
    return lambda: load_pretrained(teacher), [str(teacher / "config.json"), "is not a JSON object"]


def teacher_truncated_safetensors(tmp_path: Path, monkeypatch) -> Case:
    from kdbudget.model import load_pretrained

    teacher = _teacher(tmp_path / "teacher")
    weights = teacher / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])  # an interrupted download
    return lambda: load_pretrained(teacher), str(weights)


def checkpoint_write_on_a_full_disk(tmp_path: Path, monkeypatch) -> Case:
    import kdbudget.train.checkpoint as checkpoint

    def full_disk(state, path):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 536832 vs 536720")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    folder = tmp_path / "checkpoints" / "nokd2"
    return lambda: checkpoint.save_checkpoint(folder, {"x": torch.ones(1)}), [str(folder / "checkpoint.pt"), "MiB free"]


def checkpoint_folder_in_use(tmp_path: Path, monkeypatch) -> Case:
    from kdbudget.train.lock import CheckpointLock

    folder = tmp_path / "checkpoints" / "nokd2"
    holder = CheckpointLock(folder, "nokd2").acquire()

    def second_trainer() -> None:  # its own open file, so refused as another process would be
        try:
            CheckpointLock(folder, "again").acquire()
        finally:
            holder.release()

    return second_trainer, f"{folder} is in use by trainer 'nokd2'"


LIBRARY_CASES = [
    books_missing_folder,  # passed before issue 11: a regression net
    teacher_without_config_json,
    teacher_config_json_not_json,
    teacher_truncated_safetensors,
    checkpoint_write_on_a_full_disk,
    checkpoint_folder_in_use,
]


@pytest.mark.parametrize("case", LIBRARY_CASES, ids=[c.__name__.replace("_", "-") for c in LIBRARY_CASES])
def test_a_bad_file_is_named(case, tmp_path, monkeypatch):
    call, expected = case(tmp_path, monkeypatch)
    with pytest.raises(Exception) as caught:
        call()
    for fragment in [expected] if isinstance(expected, str) else expected:
        assert fragment in str(caught.value), f"{type(caught.value).__name__}: {caught.value}"
