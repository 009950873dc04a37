"""The models of a pretraining run: the student built from its spec, the teacher loaded and checked.

The teacher must have been trained on the vocabulary the packed data was
tokenized with: the same size is not enough (a different tokenizer of the same
size would silently feed it other tokens), so its tokenizer, when present, is
compared by hash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdbudget.model import KDBertForMaskedLM, bert_config, load_pretrained
from kdbudget.model.mobilebert import KDMobileBertForMaskedLM, mobilebert_config
from kdbudget.train.spec import RunSpec


class VocabularyMismatch(ValueError):
    """The teacher's vocabulary is not the one the data was tokenized with."""


def build_student(spec: RunSpec, meta: dict[str, Any]) -> KDBertForMaskedLM | KDMobileBertForMaskedLM:
    """A randomly initialised student of ``spec.student``'s shape over the data's vocabulary."""
    s = spec.student
    pad = meta["tokenizer"]["special_ids"]["pad"]
    if s.mobilebert is not None:  # the inverted-bottleneck student (kdbudget.model.mobilebert); no LayerNorm choice
        config = mobilebert_config(s.layers, s.hidden, s.heads, s.intermediate, meta["vocab_size"], s.max_positions,
                                   **s.mobilebert, hidden_dropout_prob=s.dropout,
                                   attention_probs_dropout_prob=s.dropout, initializer_range=s.init_std,
                                   pad_token_id=pad)
        return KDMobileBertForMaskedLM(config)
    config = bert_config(s.layers, s.hidden, s.heads, s.intermediate, meta["vocab_size"], s.max_positions,
                         hidden_dropout_prob=s.dropout, attention_probs_dropout_prob=s.dropout,
                         initializer_range=s.init_std, layer_norm=s.layer_norm,
                         pad_token_id=pad)
    return KDBertForMaskedLM(config)


def load_teacher(spec: RunSpec, meta: dict[str, Any]) -> KDBertForMaskedLM | None:
    """The frozen teacher of ``spec.teacher_dir`` (None without one), in fp32 on the host: a student may
    still be initialised from it before it moves to the device in its training dtype."""
    if not spec.teacher_dir:
        return None
    teacher_dir = Path(spec.teacher_dir)
    teacher = load_pretrained(teacher_dir)
    check_teacher_vocabulary(teacher_dir, teacher.config.vocab_size, meta, Path(spec.data_dir))
    teacher.requires_grad_(False)
    return teacher


def check_teacher_vocabulary(teacher_dir: Path, teacher_vocab: int, meta: dict[str, Any], data_dir: Path) -> None:
    """Refuse a teacher whose vocabulary differs from the packed data's (in size or in tokens)."""
    if teacher_vocab != meta["vocab_size"]:
        raise VocabularyMismatch(
            f"teacher {teacher_dir} has vocab_size {teacher_vocab} but the packed data in {data_dir} was tokenized "
            f"with {meta['vocab_size']} tokens: prepare the data with the teacher's tokenizer"
        )
    if (teacher_dir / "tokenizer.json").is_file():
        from kdbudget.data.tokenizer import load_tokenizer, vocab_hash

        if vocab_hash(load_tokenizer(teacher_dir)) != meta["tokenizer"]["vocab_sha256"]:
            raise VocabularyMismatch(
                f"the tokenizer in teacher {teacher_dir} differs from the one the data in {data_dir} was tokenized "
                "with (same size, different tokens): prepare the data with the teacher's tokenizer"
            )
