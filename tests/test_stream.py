"""The training stream over several epochs: every epoch visits each sequence once, in a new order,
with the static mask copy of that epoch (copy e mod duplication), checked against the shard file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import make_packed_data

from kdbudget.data.storage import IGNORE_INDEX, PackedSplit
from kdbudget.train.stream import BatchStream, StreamPosition

COPIES = 3


@pytest.fixture(scope="module")
def three_copies(tmp_path_factory) -> Path:
    return make_packed_data(tmp_path_factory.mktemp("three-copies"), docs=12, duplication=COPIES)


def _stored(data: Path) -> np.ndarray:
    """The shard as written: records[copy, sequence]."""
    return np.load(data / "train-000.npy")


def _key(input_ids: np.ndarray, labels: np.ndarray) -> bytes:
    return input_ids.astype(np.int64).tobytes() + labels.astype(np.int64).tobytes()


def _stored_keys(records: np.ndarray, copy: int) -> dict[bytes, int]:
    """Each stored sequence of one copy, as the model sees it (masked ids, -100 outside the masks)."""
    keys = {}
    for index, record in enumerate(records[copy]):
        labels = np.full(record["input_ids"].shape, IGNORE_INDEX, dtype=np.int64)
        used = record["mlm_positions"] > 0
        labels[record["mlm_positions"][used].astype(np.int64)] = record["mlm_labels"][used]
        keys[_key(record["input_ids"], labels)] = index
    assert len(keys) == records.shape[1]  # every stored sequence tells itself apart
    return keys


def test_each_epoch_is_a_new_order_with_its_own_mask_copy(three_copies):
    records = _stored(three_copies)
    n = records.shape[1]
    assert records.shape[0] == COPIES and n > 20
    keys = [_stored_keys(records, copy) for copy in range(COPIES)]
    assert not set(keys[0]) & set(keys[1]) and not set(keys[1]) & set(keys[2])  # the copies' masks differ

    stream = BatchStream(PackedSplit.open(three_copies, "train"), seed=5)
    epochs = 4
    seen: list[tuple[int, int]] = []  # (copy found in, sequence index)
    while len(seen) < epochs * n:
        batch = stream.next(7)  # batches straddle the epoch boundaries
        for ids, labels in zip(batch["input_ids"].numpy(), batch["labels"].numpy(), strict=True):
            found = [(copy, keys[copy][_key(ids, labels)]) for copy in range(COPIES) if _key(ids, labels) in keys[copy]]
            assert len(found) == 1, found
            seen.append(found[0])
    orders = []
    for epoch in range(epochs):
        part = seen[epoch * n:(epoch + 1) * n]
        assert {copy for copy, _ in part} == {epoch % COPIES}, epoch
        order = [index for _, index in part]
        assert Counter(order) == Counter(range(n)), epoch  # each sequence exactly once
        orders.append(order)
    assert len({tuple(o) for o in orders}) == epochs  # a new order every epoch
    assert all(o != list(range(n)) for o in orders)
    assert stream.epochs_done == pytest.approx(len(seen) / n)


def _unmasked(batch: dict) -> list[bytes]:
    labels, ids = batch["labels"].numpy(), batch["input_ids"].numpy()
    return [np.where(lab != IGNORE_INDEX, lab, ids_).tobytes() for lab, ids_ in zip(labels, ids, strict=True)]


def test_dynamic_masks_are_reproducible_resumable_and_new_each_epoch(packed_dynamic):
    split = PackedSplit.open(packed_dynamic, "train")
    n = len(split)
    first, again = BatchStream(split, seed=5), BatchStream(split, seed=5)
    batches, positions = [], []
    while first.position.epoch < 2:
        positions.append((first.position.epoch, first.position.offset))
        batches.append(first.next(7))
    for batch in batches:  # the same seed draws the same order and the same masks
        other = again.next(7)
        assert all(torch_equal(batch[k], other[k]) for k in batch)
    # A stream resumed where a batch began goes on with the batches the first stream read.
    k = len(batches) // 2 + 1
    resumed = BatchStream(split, seed=5, position=StreamPosition(*positions[k]))
    for batch in batches[k:]:
        other = resumed.next(7)
        assert all(torch_equal(batch[key], other[key]) for key in batch)
    # Each epoch masks each sequence anew (sequences that occur twice in the data left aside).
    rows = [(key, labels.numpy().tobytes()) for batch in batches
            for key, labels in zip(_unmasked(batch), batch["labels"], strict=True)]
    once = {key for key, count in Counter(key for key, _ in rows[:n]).items() if count == 1}
    epoch0 = {key: mask for key, mask in rows[:n] if key in once}
    epoch1 = {key: mask for key, mask in rows[n:2 * n] if key in once}
    assert epoch0.keys() == epoch1.keys() and len(epoch0) > 0.9 * n
    assert sum(epoch0[key] != epoch1[key] for key in epoch0) > 0.9 * len(epoch0)
    # Another seed: another order and other masks.
    other = BatchStream(split, seed=6).next(n)
    mine = [labels for batch in batches for labels in batch["labels"]][:n]
    assert sorted(_unmasked(other)) == sorted(key for key, _ in rows[:n])
    assert sum(torch_equal(a, b) for a, b in zip(other["labels"], mine, strict=True)) < 0.2 * n


def torch_equal(a, b) -> bool:
    return bool((a == b).all()) and a.dtype == b.dtype


def test_an_empty_split_is_refused():
    empty = PackedSplit({}, [], np.zeros(1, dtype=np.int64))
    with pytest.raises(ValueError, match="no sequences"):
        BatchStream(empty, seed=1)
