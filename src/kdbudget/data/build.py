"""Job-level steps of the corpus stage that turn document shards into packed
sequences: tokenize and pack one shard (a scatter job), then describe all
shards in ``meta.json`` (the gather job)."""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kdbudget.data.documents import read_documents
from kdbudget.data.masking import MaskingSpec, mask_batch
from kdbudget.data.packing import pack_document
from kdbudget.data.sentences import split_sentences
from kdbudget.data.storage import FORMAT, id_dtype, record_dtype, shard_summary, write_shard
from kdbudget.data.tokenizer import load_tokenizer, vocab_hash
from kdbudget.io import write_json
from kdbudget.log import progress

log = logging.getLogger(__name__)

MASK_TOKEN_FRACTION = 0.8
RANDOM_TOKEN_FRACTION = 0.1
# Sequences masked at a time. A shard of at most this many sequences gets exactly the masks it got
# when shards were masked whole; a larger one gets other (equally random, equally seeded) masks.
MASK_CHUNK = 8192


@dataclass(frozen=True)
class PackingConfig:
    """The ``packing`` section of the validated config."""

    seq_len: int = 128
    short_seq_prob: float = 0.1
    masking: str = "static"
    mask_prob: float = 0.15
    max_predictions: int = 20
    duplication: int = 1
    batch_sentences: int = 10000

    @classmethod
    def from_dict(cls, section: dict[str, Any]) -> PackingConfig:
        return cls(**section)


def special_ids(tokenizer) -> dict[str, int]:
    return {"pad": tokenizer.pad_token_id, "cls": tokenizer.cls_token_id, "sep": tokenizer.sep_token_id,
            "mask": tokenizer.mask_token_id, "unk": tokenizer.unk_token_id}


def plain_encoder(tokenizer):
    """The tokenizer's backend without padding or truncation.

    Many saved Hugging Face tokenizers carry padding (e.g. BatchLongest) and
    truncation settings in tokenizer.json; `encode_batch` applies them, which
    would pad every sentence to its batch's longest and cut long ones. Packing
    needs each sentence's own tokens, so it encodes with a copy that has neither.
    """
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.no_truncation()
    return backend


def _tokenized_documents(docs_path: Path, tokenizer, batch_sentences: int) -> Iterator[list[list[int]]]:
    """Yield each document as a list of token-id sentences, encoding in large batches."""
    backend = plain_encoder(tokenizer)
    pending_docs: list[int] = []  # sentence count per buffered document
    pending: list[str] = []

    def flush() -> Iterator[list[list[int]]]:
        encoded = [e.ids for e in backend.encode_batch(pending, add_special_tokens=False)] if pending else []
        start = 0
        for count in pending_docs:
            yield [ids for ids in encoded[start:start + count] if ids]
            start += count
        pending.clear()
        pending_docs.clear()

    for doc in read_documents(docs_path):
        sentences = split_sentences(doc["text"])
        pending.extend(sentences)
        pending_docs.append(len(sentences))
        if len(pending) >= batch_sentences:
            yield from flush()
    yield from flush()


def pack_shard(
    docs_path: str | Path,
    tokenizer_dir: str | Path,
    out_path: str | Path,
    config: PackingConfig,
    *,
    seed: int,
    shard_key: Sequence[int],
    threads: int = 1,
) -> dict[str, Any]:
    """Tokenize, pack and (statically) mask one document shard into ``out_path``."""
    os.environ["RAYON_NUM_THREADS"] = str(max(1, threads))
    tokenizer = load_tokenizer(tokenizer_dir)
    ids = special_ids(tokenizer)
    rng = random.Random(f"pack:{seed}:{':'.join(map(str, shard_key))}")
    started = time.perf_counter()
    # Each document's sequences go into a padded array of the stored id type at once: Python lists
    # of ints cost about 36 bytes a token, the array 2 (uint16), and a shard's sequences stay in
    # memory until masking.
    id_type = id_dtype(len(tokenizer))
    blocks: list[np.ndarray] = [np.full((0, config.seq_len), ids["pad"], dtype=id_type)]
    block_lengths: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    bar = progress(desc=f"pack {Path(docs_path).name}", unit="tok", unit_scale=True)
    for sentences in _tokenized_documents(Path(docs_path), tokenizer, config.batch_sentences):
        if not sentences:
            continue
        packed = pack_document(sentences, seq_len=config.seq_len, short_seq_prob=config.short_seq_prob,
                               cls_id=ids["cls"], sep_id=ids["sep"], rng=rng)
        block = np.full((len(packed), config.seq_len), ids["pad"], dtype=id_type)
        for row, seq in enumerate(packed):
            block[row, : len(seq)] = seq
        blocks.append(block)
        block_lengths.append(np.fromiter(map(len, packed), dtype=np.int64, count=len(packed)))
        bar.update(sum(map(len, sentences)))
    bar.close()
    elapsed = time.perf_counter() - started
    tokenized = bar.n
    base = np.concatenate(blocks)
    lengths = np.concatenate(block_lengths)
    del blocks, block_lengths

    static = config.masking == "static"
    copies = config.duplication if static else 1
    dtype = record_dtype(config.seq_len, len(tokenizer), config.max_predictions, static)
    records = np.zeros((copies, len(base)), dtype=dtype)
    spec = MaskingSpec(mask_prob=config.mask_prob, max_predictions=config.max_predictions, mask_id=ids["mask"],
                       vocab_size=len(tokenizer), special_ids=tuple(sorted(set(ids.values()))),
                       mask_token_fraction=MASK_TOKEN_FRACTION, random_token_fraction=RANDOM_TOKEN_FRACTION)
    for copy in range(copies):
        records["length"][copy] = lengths
        if static:
            # Masked MASK_CHUNK sequences at a time, one generator for the copy: mask_batch's
            # temporaries take about 60 bytes per token slot, 0.7 GB for a whole 12M-token shard.
            rng_copy = np.random.default_rng([seed, *shard_key, copy])
            for start in range(0, len(base), MASK_CHUNK):
                rows = slice(start, start + MASK_CHUNK)
                masked = mask_batch(base[rows], lengths[rows], spec, rng_copy)
                records["input_ids"][copy, rows] = masked.input_ids
                records["mlm_positions"][copy, rows] = masked.positions
                records["mlm_labels"][copy, rows] = masked.labels
        else:
            records["input_ids"][copy] = base
    write_shard(out_path, records)
    stats = {"sequences": len(base), "tokens": int(lengths.sum()), "copies": copies,
             "tokenized_tokens": tokenized, "seconds": round(elapsed, 3),
             "tokens_per_second": round(tokenized / elapsed, 1) if elapsed > 0 else None}
    log.info("packed %s: %d sequences, %d tokens, tokenization at %.0f tokens/s",
             out_path, stats["sequences"], stats["tokens"], tokenized / max(elapsed, 1e-9))
    return stats


def write_meta(
    out_path: str | Path,
    *,
    train_shards: Sequence[str | Path],
    validation_shards: Sequence[str | Path],
    tokenizer_dir: str | Path,
    config: PackingConfig,
    seed: int,
    documents: dict[str, Any],
    language: str,
    sources: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Gather every shard's counts into ``meta.json`` (all shards must sit beside it).

    ``sources`` records downloaded inputs (e.g. which dated dump ``latest`` was)."""
    out_dir = Path(out_path).parent
    tokenizer = load_tokenizer(tokenizer_dir)
    splits = {}
    for name, shards in (("train", train_shards), ("validation", validation_shards)):
        for shard in shards:
            if Path(shard).resolve().parent != out_dir.resolve():
                raise ValueError(f"shard {shard} must be in {out_dir}, beside meta.json")
        summaries = [shard_summary(s) for s in shards]
        splits[name] = {"sequences": sum(s["sequences"] for s in summaries),
                        "tokens": sum(s["tokens"] for s in summaries), "shards": summaries}
    if splits["train"]["sequences"] == 0:
        raise ValueError("no training sequences were packed: the corpus is too small")
    try:
        tokenizer_path = os.path.relpath(tokenizer_dir, out_dir)
    except ValueError:
        tokenizer_path = str(tokenizer_dir)
    meta = {
        "format": FORMAT,
        "seq_len": config.seq_len,
        "vocab_size": len(tokenizer),
        "sequences": splits["train"]["sequences"],
        "tokens": splits["train"]["tokens"],
        "language": language,
        "tokenizer": {"path": tokenizer_path, "vocab_sha256": vocab_hash(tokenizer),
                      "special_ids": special_ids(tokenizer)},
        "masking": {"mode": config.masking, "mask_prob": config.mask_prob, "max_predictions": config.max_predictions,
                    "duplication": config.duplication if config.masking == "static" else 1,
                    "mask_token_fraction": MASK_TOKEN_FRACTION, "random_token_fraction": RANDOM_TOKEN_FRACTION,
                    "seed": seed},
        "packing": {"short_seq_prob": config.short_seq_prob, "segments": 1, "next_sentence_prediction": False},
        "splits": splits,
        "documents": documents,
    }
    if sources:
        meta["sources"] = sources
    write_json(out_path, meta)
    return meta
