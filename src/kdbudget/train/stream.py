"""A resumable, deterministic stream of pretraining batches.

Epoch ``e`` visits the training sequences in a permutation drawn from
``(seed, e)``; static masks come from copy ``e mod duplication``, dynamic
masks from an RNG keyed by ``(seed, e, offset)``. The stream's whole state is
``(epoch, offset)``, so a resumed run sees exactly the batches an
uninterrupted one would, and a budget longer than one pass simply repeats the
data (the limited-data setting).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kdbudget.data.storage import PackedSplit


@dataclass
class StreamPosition:
    epoch: int = 0
    offset: int = 0


class BatchStream:
    def __init__(self, split: PackedSplit, seed: int, position: StreamPosition | None = None):
        if len(split) == 0:
            raise ValueError("the training split has no sequences")
        self.split = split
        self.seed = seed
        self.position = position or StreamPosition()
        self._order_epoch = -1
        self._order = np.empty(0, dtype=np.int64)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._order_epoch:
            self._order = np.random.default_rng([self.seed, epoch]).permutation(len(self.split))
            self._order_epoch = epoch
        return self._order

    def next(self, size: int) -> dict[str, torch.Tensor]:
        """The next ``size`` sequences as tensors (``input_ids``, ``attention_mask``, ``labels``)."""
        parts = []
        remaining = size
        while remaining:
            pos = self.position
            order = self._permutation(pos.epoch)
            take = min(remaining, len(order) - pos.offset)
            rng = np.random.default_rng([self.seed, pos.epoch, pos.offset, 1])
            parts.append(self.split.batch(order[pos.offset:pos.offset + take], epoch=pos.epoch, rng=rng))
            remaining -= take
            pos.offset += take
            if pos.offset == len(order):
                pos.epoch, pos.offset = pos.epoch + 1, 0
        return {key: torch.from_numpy(np.concatenate([p[key] for p in parts])) for key in parts[0]}

    @property
    def epochs_done(self) -> float:
        """Passes over the data so far, fractional."""
        return self.epochs_at(self.position)

    def epochs_at(self, position: StreamPosition) -> float:
        """Passes over the data at ``position``, fractional."""
        return position.epoch + position.offset / len(self.split)
