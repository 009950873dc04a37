"""The data jobs' memory does not grow with the largest document: long books are split between
paragraphs into documents of at most MAX_DOC_CHARS characters, words are counted a chunk at a
time, packed sequences are kept as compact arrays and masked a chunk at a time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, write_books

from kdbudget.data import build, extract, wordpiece
from kdbudget.data.build import PackingConfig, pack_shard
from kdbudget.data.documents import MAX_DOC_CHARS, bounded_lines, read_documents, split_text
from kdbudget.data.shard import shard_documents
from kdbudget.data.storage import open_shard

PROBE = ROOT / "tests" / "memory_probe.py"


def test_long_lines_and_texts_are_split_without_losing_a_character(tmp_path: Path):
    text = ("short line\n" + "word " * 50 + "\n" + "x" * 230 + "\n" + "tail without newline")
    path = tmp_path / "book.txt"
    path.write_text(text, encoding="utf-8")
    with open(path, encoding="utf-8") as handle:
        lines = list(bounded_lines(handle, 100))
    assert "".join(lines) == text and max(map(len, lines)) <= 100
    # The 250-character paragraph breaks after a space, never inside a word.
    assert lines[1] == "word " * 20 and lines[2] == "word " * 20 and lines[3] == "word " * 10 + "\n"
    # A 230-character word has no space to break at: cut at the limit.
    assert lines[4:7] == ["x" * 100, "x" * 100, "x" * 30 + "\n"]
    parts = list(split_text(lines, 100))
    assert "".join(parts) == text and max(map(len, parts)) <= 100
    assert parts[0] == "short line\n"  # the next line does not fit beside it: parts break between lines


def test_a_long_book_becomes_documents_of_one_split(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(extract, "MAX_DOC_CHARS", 400)
    books = write_books(tmp_path / "books", n_books=12)  # about 3,000 characters each
    docs = tmp_path / "bookcorpus.jsonl"
    stats = extract.read_books(books, docs)
    read = list(read_documents(docs))
    assert stats == {"documents": len(read), "books": 12, "split_books": 12, "skipped_not_text": 0}
    for book in sorted(books.iterdir()):
        parts = [d for d in read if d.get("group") == f"book:{book.name}"]
        assert len(parts) >= 7 and all(len(d["text"]) <= 400 for d in parts)
        assert [d["id"] for d in parts] == [f"book:{book.name}#{n}" for n in range(1, len(parts) + 1)]
        assert "".join(d["text"] for d in parts) == book.read_text(encoding="utf-8")
    out = tmp_path / "docs"
    train = [out / f"train-{i:03d}.jsonl" for i in range(3)]
    shard_documents([docs], train, out / "validation-000.jsonl", min_doc_words=1, validation_fraction=0.5, seed=3)
    validation_groups = {d["group"] for d in read_documents(out / "validation-000.jsonl")}
    train_groups = {d["group"] for path in train for d in read_documents(path)}
    assert validation_groups and train_groups and not validation_groups & train_groups  # no book in both


def test_words_are_counted_the_same_a_chunk_at_a_time(monkeypatch):
    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    text = "\n".join(f"Élan {i}, the café's 東京 line:\tword{i % 7}.\n\u0301accent" for i in range(300))
    # Independently: the whole text at once (the old way).
    expected: dict[str, int] = {}
    for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)):
        expected[word] = expected.get(word, 0) + 1
    monkeypatch.setattr(wordpiece, "COUNT_CHUNK_CHARS", 50)
    assert dict(wordpiece.count_words([text], normalizer, pre_tokenizer)) == expected


def test_masking_a_chunk_at_a_time_keeps_every_mask_valid(packed_data: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(build, "MASK_CHUNK", 3)
    pack_shard(packed_data / "docs.jsonl", packed_data / "tokenizer", tmp_path / "train-000.npy",
               PackingConfig(duplication=2), seed=0, shard_key=(0, 0))
    chunked = open_shard(tmp_path / "train-000.npy")
    whole = open_shard(packed_data / "train-000.npy")  # the same documents and seed, masked whole
    assert chunked.shape == whole.shape and chunked.shape[1] > 3 * 5
    assert np.array_equal(chunked["length"], whole["length"])

    def unmasked(rec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        used = rec["mlm_positions"] > 0
        rows = np.broadcast_to(np.arange(len(rec))[:, None], used.shape)
        original = rec["input_ids"].astype(np.int64)
        original[rows[used], rec["mlm_positions"][used]] = rec["mlm_labels"][used]
        assert (rec["mlm_positions"] < rec["length"][:, None]).all()
        return original, used.sum(1)

    for copy in range(2):
        tokens, counts = unmasked(chunked[copy])
        expected_tokens, expected_counts = unmasked(whole[copy])
        assert np.array_equal(tokens, expected_tokens)  # the same text under the masks
        assert np.array_equal(counts, expected_counts) and counts.min() >= 1  # as many predictions
    assert not np.array_equal(chunked["mlm_positions"], whole["mlm_positions"])  # masks drawn anew per chunk


def _probe(*args: str | Path) -> dict:
    result = subprocess.run([sys.executable, str(PROBE), *map(str, args)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.slow
def test_a_large_book_is_read_tokenized_and_packed_in_bounded_memory(tmp_path: Path):
    """One 24 MB book, each job in its own process as under Snakemake. Before, the book stayed one
    document and its memory grew with it: 383 MB (sharding), 1.9 GB (tokenizer) and 1.2 GB
    (packing) above the imported libraries; now each step stays far below LIMIT_MB."""
    limit_mb = 250
    books = tmp_path / "books"
    _probe("book", books / "shelf.txt", 24)
    work = tmp_path / "work"
    steps = [
        _probe("read", books, work / "bookcorpus.jsonl"),
        _probe("shard", work, work / "bookcorpus.jsonl"),
        _probe("tokenizer", work / "train-000.jsonl", work / "tokenizer"),
        _probe("pack", work / "train-000.jsonl", work / "tokenizer", work / "train-000.npy"),
    ]
    growth = {step["step"]: step["growth_mb"] for step in steps}
    assert all(mb < limit_mb for mb in growth.values()), growth
    assert steps[0]["result"]["documents"] >= 24e6 / MAX_DOC_CHARS
    assert max(len(d["text"]) for d in read_documents(work / "bookcorpus.jsonl")) <= MAX_DOC_CHARS
    assert steps[3]["result"]["tokens"] > 4_000_000  # the whole book was packed
