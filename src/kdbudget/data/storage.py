"""On-disk format of packed pretraining data, and its reader.

Each shard is one ``.npy`` file holding a structured array of shape
``(copies, sequences)``: ``input_ids`` (uint16 when the vocabulary fits,
else uint32; padded with [PAD]), ``length`` (tokens incl. [CLS]/[SEP]) and,
with static masking, ``mlm_positions``/``mlm_labels`` (0 where unused:
position 0 is [CLS], never masked). Static masking writes ``duplication``
differently masked copies; dynamic masking stores one unmasked copy and
masks at load time. ``meta.json`` beside the shards describes them all; the
reader memory-maps shards, so a corpus far larger than RAM costs nothing to
open.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kdbudget.data.masking import MaskingSpec, mask_batch
from kdbudget.io import atomic_path, read_json

FORMAT = "kdbudget-packed-v1"
IGNORE_INDEX = -100


def id_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def record_dtype(seq_len: int, vocab_size: int, max_predictions: int, static: bool) -> np.dtype:
    ids = id_dtype(vocab_size)
    fields: list[tuple[Any, ...]] = [("input_ids", ids, (seq_len,)), ("length", np.uint16)]
    if static:
        positions = np.uint8 if seq_len <= 2**8 else np.uint16
        fields += [("mlm_positions", positions, (max_predictions,)), ("mlm_labels", ids, (max_predictions,))]
    return np.dtype(fields)


def write_shard(path: str | Path, records: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, records, allow_pickle=False)


def open_shard(path: str | Path) -> np.ndarray:
    return np.load(path, mmap_mode="r", allow_pickle=False)


def shard_summary(path: str | Path) -> dict[str, Any]:
    records = open_shard(path)
    lengths = records["length"][0] if records.shape[1] else np.zeros(0, np.uint16)
    return {"path": Path(path).name, "sequences": int(records.shape[1]), "tokens": int(lengths.sum(dtype=np.int64))}


def load_meta(data_dir: str | Path) -> dict[str, Any]:
    path = Path(data_dir) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"packed data description not found: {path} (run the 'data' target first)")
    meta = read_json(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta


def masking_spec(meta: dict[str, Any]) -> MaskingSpec:
    masking, tokenizer = meta["masking"], meta["tokenizer"]
    return MaskingSpec(
        mask_prob=masking["mask_prob"], max_predictions=masking["max_predictions"],
        mask_id=tokenizer["special_ids"]["mask"], vocab_size=meta["vocab_size"],
        special_ids=tuple(sorted(set(tokenizer["special_ids"].values()))),
        mask_token_fraction=masking["mask_token_fraction"], random_token_fraction=masking["random_token_fraction"],
    )


@dataclass
class PackedSplit:
    """Random access to one split (train or validation) of the packed data."""

    meta: dict[str, Any]
    shards: list[np.ndarray]
    offsets: np.ndarray  # first global index of each shard, plus the total

    @classmethod
    def open(cls, data_dir: str | Path, split: str = "train") -> PackedSplit:
        meta = load_meta(data_dir)
        if split not in meta["splits"]:
            raise KeyError(f"split {split!r} not in {Path(data_dir) / 'meta.json'}")
        shards = [open_shard(Path(data_dir) / s["path"]) for s in meta["splits"][split]["shards"]]
        offsets = np.cumsum([0] + [s.shape[1] for s in shards])
        return cls(meta, shards, offsets)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def copies(self) -> int:
        return self.shards[0].shape[0] if self.shards else 1

    def records(self, indices: np.ndarray, epoch: int = 0) -> np.ndarray:
        """Records at global ``indices``; static masks come from copy ``epoch % copies``."""
        indices = np.asarray(indices, dtype=np.int64)
        shard_of = np.searchsorted(self.offsets, indices, side="right") - 1
        copy = epoch % self.copies
        out = np.empty(len(indices), dtype=self.shards[0].dtype)
        for shard in np.unique(shard_of):
            where = shard_of == shard
            out[where] = self.shards[shard][copy, indices[where] - self.offsets[shard]]
        return out

    def batch(self, indices: np.ndarray, epoch: int = 0,
              rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """A model-ready batch: ``input_ids``, ``attention_mask`` and ``labels`` (-100 where not predicted).

        Static data returns its stored masks; dynamic data is masked here with ``rng``.
        """
        rec = self.records(indices, epoch)
        ids = rec["input_ids"].astype(np.int64)
        lengths = rec["length"].astype(np.int64)
        if self.meta["masking"]["mode"] == "static":
            positions, labels = rec["mlm_positions"].astype(np.int64), rec["mlm_labels"].astype(np.int64)
            used = positions > 0
        else:
            if rng is None:
                raise ValueError("dynamic masking needs an rng")
            masked = mask_batch(ids, lengths, masking_spec(self.meta), rng)
            ids, positions, labels, used = masked.input_ids, masked.positions, masked.labels, masked.positions > 0
        full_labels = np.full(ids.shape, IGNORE_INDEX, dtype=np.int64)
        rows = np.broadcast_to(np.arange(len(ids))[:, None], positions.shape)
        full_labels[rows[used], positions[used]] = labels[used]
        attention_mask = (np.arange(ids.shape[1])[None, :] < lengths[:, None]).astype(np.int64)
        return {"input_ids": ids, "attention_mask": attention_mask, "labels": full_labels}
