"""The gather/scatter point of the corpus stage: all extracted sources are
cleaned, filtered, de-duplicated, split into train and validation by a hash
of each document, and scattered into document shards for parallel packing."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from multiprocessing import Pool
from pathlib import Path
from typing import Any

from kdbudget.data.clean import clean_text, fingerprint, word_count
from kdbudget.data.documents import read_documents
from kdbudget.io import atomic_path
from kdbudget.log import progress

log = logging.getLogger(__name__)


class EmptyCorpusError(ValueError):
    """No document survived cleaning."""


def is_validation(doc_id: str, seed: int, fraction: float) -> bool:
    """Deterministic, order-independent split of a document by its id."""
    digest = hashlib.blake2b(f"{seed}:{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


# Article lines shorter than this are titles and section headings.
WIKI_MIN_LINE_WORDS = 4


def _clean(doc: dict[str, Any]) -> dict[str, Any]:
    min_line_words = WIKI_MIN_LINE_WORDS if doc["source"] == "wikipedia" else 1
    return {**doc, "text": clean_text(doc["text"], min_line_words=min_line_words)}


def _cleaned(inputs: Sequence[Path], processes: int) -> Iterator[dict[str, Any]]:
    docs = (doc for path in inputs for doc in read_documents(path))
    if processes <= 1:
        yield from map(_clean, docs)
        return
    with Pool(processes) as pool:
        yield from pool.imap(_clean, docs, chunksize=64)


def shard_documents(
    inputs: Sequence[str | Path],
    train_shards: Sequence[str | Path],
    validation_shard: str | Path,
    *,
    min_doc_words: int,
    validation_fraction: float,
    seed: int,
    processes: int = 1,
) -> dict[str, Any]:
    """Clean, filter and de-duplicate ``inputs``; write train shards round-robin
    and one validation shard. Returns per-source statistics."""
    inputs = [Path(p) for p in inputs]
    stats: dict[str, Counter] = {}
    seen: set[bytes] = set()
    with ExitStack() as stack:
        train_files = [stack.enter_context(open(stack.enter_context(atomic_path(p)), "w", encoding="utf-8"))
                       for p in train_shards]
        valid_path = stack.enter_context(atomic_path(validation_shard))
        valid_file = stack.enter_context(open(valid_path, "w", encoding="utf-8"))
        next_shard = 0
        for doc in progress(_cleaned(inputs, processes), desc="clean", unit="doc"):
            counts = stats.setdefault(doc["source"], Counter())
            counts["read"] += 1
            words = word_count(doc["text"])
            if words < min_doc_words:
                counts["dropped_short"] += 1
                continue
            key = fingerprint(doc["text"])
            if key in seen:
                counts["dropped_duplicate"] += 1
                continue
            seen.add(key)
            line = json.dumps(doc, ensure_ascii=False) + "\n"
            # A long book's parts share its group: the whole book lands in one split.
            if is_validation(doc.get("group", doc["id"]), seed, validation_fraction):
                valid_file.write(line)
                counts["validation"] += 1
            else:
                train_files[next_shard].write(line)
                next_shard = (next_shard + 1) % len(train_files)
                counts["train"] += 1
            counts["words"] += words
        kept_train = sum(c["train"] for c in stats.values())
        if kept_train == 0:
            read = ", ".join(f"{n} documents from {s}" for s, c in stats.items() for n in [c["read"]]) or "nothing"
            raise EmptyCorpusError(
                f"the corpus is empty after cleaning (read {read} in {', '.join(map(str, inputs))}; "
                f"documents need at least corpus.min_doc_words={min_doc_words} words)"
            )
    result = {source: dict(counts) for source, counts in stats.items()}
    log.info("documents per source: %s", result)
    return result
