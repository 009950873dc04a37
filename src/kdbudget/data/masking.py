"""BERT's masked-LM corruption, vectorised over a batch of packed sequences.

Per sequence: ``round(mask_prob * length)`` positions (at least 1, at most
``max_predictions``) are drawn uniformly among the non-special tokens; each
becomes [MASK] with probability 0.8, a random non-special token with 0.1 and
stays unchanged with 0.1. The same function serves static masking (at
packing time, once per duplicate) and dynamic masking (at load time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MaskingSpec:
    mask_prob: float
    max_predictions: int
    mask_id: int
    vocab_size: int
    special_ids: tuple[int, ...]
    mask_token_fraction: float = 0.8
    random_token_fraction: float = 0.1


@dataclass(frozen=True)
class MaskedBatch:
    input_ids: np.ndarray  # [N, L] corrupted tokens
    positions: np.ndarray  # [N, P] masked positions, 0 where unused ([CLS] is never masked)
    labels: np.ndarray  # [N, P] original tokens at ``positions``, 0 where unused
    counts: np.ndarray  # [N] number of predictions per sequence


def predictions_per_sequence(lengths: np.ndarray, spec: MaskingSpec) -> np.ndarray:
    """How many tokens of each sequence are predicted (lengths include [CLS]/[SEP])."""
    maskable = np.maximum(lengths - 2, 0)
    wanted = np.maximum(1, np.rint(lengths * spec.mask_prob)).astype(np.int64)
    return np.minimum(np.minimum(wanted, spec.max_predictions), maskable)


def mask_batch(input_ids: np.ndarray, lengths: np.ndarray, spec: MaskingSpec, rng: np.random.Generator) -> MaskedBatch:
    """Apply masked-LM corruption to ``input_ids`` (not modified in place)."""
    n, seq_len = input_ids.shape
    ids = input_ids.astype(np.int64)
    candidate = np.arange(seq_len)[None, :] < lengths[:, None]
    candidate &= ~np.isin(ids, np.asarray(spec.special_ids))
    keys = np.where(candidate, rng.random((n, seq_len)), np.inf)
    order = np.argsort(keys, axis=1, kind="stable")[:, : spec.max_predictions]
    counts = predictions_per_sequence(lengths, spec)
    counts = np.minimum(counts, candidate.sum(axis=1))
    used = np.arange(spec.max_predictions)[None, :] < counts[:, None]
    # Report positions in ascending order, as the reference data does.
    positions = np.sort(np.where(used, order, seq_len), axis=1)
    used = positions < seq_len
    positions = np.where(used, positions, 0)
    rows = np.broadcast_to(np.arange(n)[:, None], positions.shape)
    labels = np.where(used, ids[rows, positions], 0)

    roll = rng.random(positions.shape)
    replace_mask = used & (roll < spec.mask_token_fraction)
    random_end = spec.mask_token_fraction + spec.random_token_fraction
    replace_random = used & (roll >= spec.mask_token_fraction) & (roll < random_end)
    random_tokens = _random_non_special(rng, positions.shape, spec)
    corrupted = ids.copy()
    corrupted[rows[replace_mask], positions[replace_mask]] = spec.mask_id
    corrupted[rows[replace_random], positions[replace_random]] = random_tokens[replace_random]
    return MaskedBatch(corrupted.astype(input_ids.dtype), positions, labels, used.sum(axis=1))


def _random_non_special(rng: np.random.Generator, shape: tuple[int, ...], spec: MaskingSpec) -> np.ndarray:
    allowed = np.setdiff1d(np.arange(spec.vocab_size), np.asarray(spec.special_ids))
    return allowed[rng.integers(0, len(allowed), size=shape)]
