"""Packing a document's sentences into fixed-length sequences, as the paper's
code (BERT's create_pretraining_data without next-sentence prediction) does:
one segment of whole sentences up to ``seq_len - 2`` tokens between [CLS] and
[SEP]; with probability ``short_seq_prob`` a document aims at a shorter random
target length; a chunk longer than the limit is truncated at a random end."""

from __future__ import annotations

import random
from collections.abc import Sequence


def pack_document(
    sentences: Sequence[Sequence[int]],
    *,
    seq_len: int,
    short_seq_prob: float,
    cls_id: int,
    sep_id: int,
    rng: random.Random,
) -> list[list[int]]:
    """Return the packed sequences ([CLS] ... [SEP], unpadded) of one document."""
    max_tokens = seq_len - 2
    target = max_tokens
    if rng.random() < short_seq_prob:
        target = rng.randint(2, max_tokens)
    sequences: list[list[int]] = []
    chunk: list[int] = []
    for index, sentence in enumerate(sentences):
        chunk.extend(sentence)
        if len(chunk) >= target or index == len(sentences) - 1:
            excess = len(chunk) - max_tokens
            if excess > 0:
                # BERT trims one token at a time from a random end.
                front = sum(rng.random() < 0.5 for _ in range(excess))
                chunk = chunk[front : len(chunk) - (excess - front)]
            if chunk:
                sequences.append([cls_id, *chunk, sep_id])
            chunk = []
    return sequences
