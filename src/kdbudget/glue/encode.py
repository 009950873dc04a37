"""Tokenization of GLUE examples into flat arrays, and padded batches from them.

Sequences are padded per batch (to the longest of the batch), so a batch of
short sentences costs what its own tokens cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from kdbudget.glue.loader import Example
from kdbudget.glue.tasks import GlueTask


@dataclass(frozen=True)
class Encoded:
    """Tokenized examples as flat arrays: the tokens of example i are ``ids[offsets[i]:offsets[i + 1]]``."""

    ids: np.ndarray
    types: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    pad_id: int

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def batch(self, index: np.ndarray, device: torch.device) -> dict[str, Tensor | None]:
        """A batch padded to its longest sequence; ``attention_mask`` is None when nothing is padded."""
        lengths = self.lengths[index]
        width = int(lengths.max())
        ids = np.full((len(index), width), self.pad_id, dtype=np.int64)
        types = np.zeros((len(index), width), dtype=np.int64)
        for row, (i, n) in enumerate(zip(index, lengths, strict=True)):
            start = self.offsets[i]
            ids[row, :n] = self.ids[start:start + n]
            types[row, :n] = self.types[start:start + n]
        mask = None
        if (lengths < width).any():
            mask = torch.from_numpy(np.arange(width)[None, :] < lengths[:, None]).to(device, non_blocking=True)
        return {"input_ids": torch.from_numpy(ids).to(device, non_blocking=True),
                "token_type_ids": torch.from_numpy(types).to(device, non_blocking=True),
                "attention_mask": mask,
                "labels": torch.from_numpy(self.labels[index]).to(device, non_blocking=True)}


def encode(tokenizer, examples: list[Example], task: GlueTask, max_seq_len: int, chunk: int = 8192) -> Encoded:
    """``[CLS] a [SEP]`` or ``[CLS] a [SEP] b [SEP]`` with token types, truncated (longest first) to ``max_seq_len``."""
    ids, types, lengths = [], [], []
    for start in range(0, len(examples), chunk):
        part = examples[start:start + chunk]
        pairs = [e.text_b for e in part] if task.is_pair else None
        out = tokenizer([e.text_a for e in part], pairs, truncation=True, max_length=max_seq_len,
                        return_attention_mask=False, return_token_type_ids=True)
        for token_ids, token_types in zip(out["input_ids"], out["token_type_ids"], strict=True):
            ids.append(np.asarray(token_ids, dtype=np.int32))
            types.append(np.asarray(token_types, dtype=np.int8))
            lengths.append(len(token_ids))
    label_dtype = np.float32 if task.is_regression else np.int64
    return Encoded(ids=np.concatenate(ids), types=np.concatenate(types),
                   offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                   labels=np.asarray([e.label for e in examples], dtype=label_dtype), pad_id=tokenizer.pad_token_id)
