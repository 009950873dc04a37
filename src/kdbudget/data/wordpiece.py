"""A deterministic WordPiece vocabulary learner.

`tokenizers`' WordPieceTrainer (BPE with a ``##`` continuation prefix) breaks
ties between equally frequent pairs by symbol ids that it assigns in hash-map
order, so two runs on the same text can keep different tokens near the
vocabulary limit (seen: "afterno" in one run, "##oon" in the other). The
packed data, every model trained on it and every GLUE score would then differ
between a local run and a cluster run. This learner runs the same algorithm
with one fixed order: the most frequent pair first, ties by the pair's text.

Only the vocabulary is learned here; encoding is `tokenizers`' WordPiece model
(greedy longest match), as for any BERT vocabulary.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from itertools import pairwise

PREFIX = "##"


# Characters normalized and pre-tokenized at a time. pre_tokenize_str returns a Python tuple per
# word (with its offsets), about 150 bytes each: a whole 50 MB book at once took 3.9 GB.
COUNT_CHUNK_CHARS = 1 << 16


def _line_chunks(text: str, size: int) -> Iterator[str]:
    """``text`` in pieces of about ``size`` characters, cut after a newline: BERT's normalizer and
    pre-tokenizer treat a newline as a word boundary, so the words are those of the whole text."""
    start = 0
    while start < len(text):
        end = text.find("\n", start + size)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def count_words(texts: Iterable[str], normalizer, pre_tokenizer) -> Counter[str]:
    """Word frequencies after BERT normalization and pre-tokenization."""
    counts: Counter[str] = Counter()
    for text in texts:
        for chunk in _line_chunks(text, COUNT_CHUNK_CHARS):
            counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(chunk)))
    return counts


def _pairs(symbols: list[str]) -> Counter[tuple[str, str]]:
    return Counter(pairwise(symbols))


def _merge(symbols: list[str], left: str, right: str, merged: str) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == left and symbols[i + 1] == right:
            out.append(merged)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def learn_vocabulary(word_counts: Mapping[str, int], *, vocab_size: int, min_frequency: int,
                     special_tokens: list[str]) -> list[str]:
    """Special tokens, then the alphabet (sorted), then merged tokens in the order they were learned.

    A word's first character stands alone and the others carry the ``##``
    prefix. Merging stops at ``vocab_size`` tokens or when the most frequent
    pair occurs fewer than ``min_frequency`` times. The special tokens and the
    whole alphabet are always kept, even where they alone exceed ``vocab_size``.
    """
    words = sorted(word_counts)
    counts = [word_counts[w] for w in words]
    split = [[w[0]] + [PREFIX + c for c in w[1:]] for w in words]

    vocab = list(dict.fromkeys(special_tokens))
    known = set(vocab)
    for symbol in sorted({s for symbols in split for s in symbols} - known):
        vocab.append(symbol)
        known.add(symbol)

    pair_counts: Counter[tuple[str, str]] = Counter()
    where: dict[tuple[str, str], set[int]] = {}
    for index, (symbols, count) in enumerate(zip(split, counts, strict=True)):
        for pair, n in _pairs(symbols).items():
            pair_counts[pair] += n * count
            where.setdefault(pair, set()).add(index)
    # Most frequent first; among equals the smallest (left, right) text. Entries go
    # stale when a count changes and are skipped when popped.
    heap = [(-n, left, right) for (left, right), n in pair_counts.items()]
    heapq.heapify(heap)

    while len(vocab) < vocab_size and heap:
        negative, left, right = heapq.heappop(heap)
        if pair_counts.get((left, right), 0) != -negative:
            continue
        if -negative < min_frequency:
            break
        merged = left + right[len(PREFIX):]
        if merged not in known:
            vocab.append(merged)
            known.add(merged)
        changed: set[tuple[str, str]] = set()
        for index in sorted(where.pop((left, right), ())):
            symbols = split[index]
            before = _pairs(symbols)
            if (left, right) not in before:
                continue
            after_symbols = _merge(symbols, left, right, merged)
            after = _pairs(after_symbols)
            split[index] = after_symbols
            for pair in before.keys() | after.keys():
                delta = (after.get(pair, 0) - before.get(pair, 0)) * counts[index]
                if delta:
                    pair_counts[pair] += delta
                    changed.add(pair)
                if pair in after:
                    where.setdefault(pair, set()).add(index)
        pair_counts.pop((left, right), None)
        for pair in sorted(changed):
            n = pair_counts.get(pair, 0)
            if n > 0:
                heapq.heappush(heap, (-n, *pair))
            else:
                pair_counts.pop(pair, None)
    return vocab
