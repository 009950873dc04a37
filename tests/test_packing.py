"""Packing and masking invariants, and static vs dynamic masking through the stored format."""

import json
import math
import os
import random
from pathlib import Path

import numpy as np
import pytest

from kdbudget.data.build import PackingConfig, pack_shard, write_meta
from kdbudget.data.masking import MaskingSpec, mask_batch
from kdbudget.data.packing import pack_document
from kdbudget.data.storage import FORMAT, IGNORE_INDEX, PackedSplit, record_dtype, write_shard
from kdbudget.data.tokenizer import save_tokenizer, train_wordpiece
from kdbudget.data.wordpiece import learn_vocabulary

CLS, SEP, PAD, MASK = 2, 3, 0, 4


def test_sentences_fill_up_to_the_limit_and_overflow_is_truncated():
    # Distinct ids so we can tell which tokens survived truncation.
    sentences = [list(range(100 + 50 * i, 150 + 50 * i)) for i in range(5)]
    packed = pack_document(sentences, seq_len=128, short_seq_prob=0.0, cls_id=CLS, sep_id=SEP, rng=random.Random(0))
    flat = [t for s in sentences for t in s]
    # 50+50+50 >= 126 closes the first sequence (trimmed to 126); 50+50 ends the document.
    assert [len(p) for p in packed] == [128, 102]
    first = packed[0][1:-1]
    start = flat.index(first[0])
    assert first == flat[start:start + 126] and start <= 24
    assert packed[1][1:-1] == flat[150:250]
    assert all(p[0] == CLS and p[-1] == SEP for p in packed)


def test_short_sequences_appear_with_short_seq_prob():
    rng = random.Random(1)
    sentences = [[7] * 10 for _ in range(40)]
    lengths = [len(p) for _ in range(200)
               for p in pack_document(sentences, seq_len=128, short_seq_prob=1.0, cls_id=CLS, sep_id=SEP, rng=rng)]
    assert max(lengths) <= 128 and min(lengths) >= 4
    never = [len(p) for p in pack_document(sentences, seq_len=128, short_seq_prob=0.0, cls_id=CLS, sep_id=SEP,
                                          rng=random.Random(2))]
    assert never[:-1] == [128] * (len(never) - 1)


def test_short_sequence_rate_is_short_seq_prob():
    """A document aims at a short target with probability 0.1 (BERT's create_pretraining_data), the
    target uniform in [2, 126]. With 10-token sentences a full target closes the first sequence at
    130 tokens, trimmed to 126 (length 128); a short target t <= 120 closes it at <= 120 tokens
    (length <= 122), which nothing else produces. So P(first sequence < 124) = 0.1 * 119/125."""
    rng = random.Random(11)
    sentences = [[7] * 10 for _ in range(40)]
    n = 3000
    firsts = [pack_document(sentences, seq_len=128, short_seq_prob=0.1, cls_id=CLS, sep_id=SEP, rng=rng)[0]
              for _ in range(n)]
    short = [len(f) for f in firsts if len(f) < 124]
    assert all(len(f) in (128, *range(12, 123, 10)) for f in firsts)
    p = 0.1 * 119 / 125
    bound = 5 * math.sqrt(n * p * (1 - p))  # five binomial standard deviations
    assert abs(len(short) - n * p) < bound, (len(short), n * p, bound)
    # Targets uniform in [2, 120] give first lengths 12, 22, ..., 122: 9 targets give 12, 10 each the rest.
    expected_mean = (9 * 12 + 10 * sum(range(22, 123, 10))) / 119
    assert abs(np.mean(short) - expected_mean) < 5 * np.std(short) / math.sqrt(len(short))


def _batch(n, lengths, vocab=500, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.full((n, 128), PAD, dtype=np.int64)
    for row, length in enumerate(lengths):
        ids[row, 0], ids[row, length - 1] = CLS, SEP
        ids[row, 1:length - 1] = rng.integers(10, vocab, size=length - 2)
    return ids, np.asarray(lengths)


SPEC = MaskingSpec(mask_prob=0.15, max_predictions=20, mask_id=MASK, vocab_size=500, special_ids=(0, 1, 2, 3, 4))


def test_masking_rate_cap_and_positions():
    lengths = [128] * 500 + [60] * 500 + [5] * 100
    ids, lens = _batch(len(lengths), lengths)
    out = mask_batch(ids, lens, SPEC, np.random.default_rng(3))
    expected = [19] * 500 + [9] * 500 + [1] * 100  # round(0.15 * length), at least 1
    assert out.counts.tolist() == expected
    capped = mask_batch(ids, lens, MaskingSpec(0.5, 20, MASK, 500, (0, 1, 2, 3, 4)), np.random.default_rng(3))
    assert capped.counts.max() == 20 and capped.counts[:500].tolist() == [20] * 500
    for row in range(len(lengths)):
        pos = out.positions[row, : out.counts[row]]
        assert len(set(pos.tolist())) == len(pos)
        assert (pos >= 1).all() and (pos <= lens[row] - 2).all()  # never [CLS], [SEP] or padding
        assert (out.labels[row, : out.counts[row]] == ids[row, pos]).all()
        assert (out.positions[row, out.counts[row]:] == 0).all()
    untouched = np.ones_like(ids, dtype=bool)
    for row in range(len(lengths)):
        untouched[row, out.positions[row, : out.counts[row]]] = False
    assert (out.input_ids[untouched] == ids[untouched]).all()


def test_80_10_10_split_within_tolerance():
    ids, lens = _batch(4000, [128] * 4000, seed=5)
    out = mask_batch(ids, lens, SPEC, np.random.default_rng(7))
    used = np.arange(20)[None, :] < out.counts[:, None]
    rows = np.broadcast_to(np.arange(4000)[:, None], out.positions.shape)
    new = out.input_ids[rows[used], out.positions[used]]
    orig = out.labels[used]
    n = used.sum()
    mask_frac = (new == MASK).mean()
    kept_frac = (new == orig).mean()
    random_frac = ((new != MASK) & (new != orig)).mean()
    assert abs(mask_frac - 0.8) < 0.01 and abs(kept_frac - 0.1) < 0.01 and abs(random_frac - 0.1) < 0.01, n
    assert not np.isin(new[(new != MASK) & (new != orig)], SPEC.special_ids).any()


@pytest.fixture
def packed_dirs(tmp_path: Path):
    texts = [" ".join(f"word{(d * 7 + s * 3 + w) % 97} tok{w % 13}" for w in range(12)).capitalize() + "."
             for d in range(30) for s in range(12)]
    tokenizer = train_wordpiece(texts, vocab_size=300, lowercase=True, min_frequency=1)
    save_tokenizer(tokenizer, tmp_path / "tokenizer")
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"source": "bookcorpus", "id": f"d{d}", "title": "",
                                        "text": " ".join(texts[d * 12:(d + 1) * 12])}) + "\n" for d in range(30)))
    out = {}
    for mode, dup in (("static", 3), ("dynamic", 1)):
        cfg = PackingConfig(masking=mode, duplication=dup)
        data = tmp_path / mode
        data.mkdir()
        pack_shard(docs, tmp_path / "tokenizer", data / "train-000.npy", cfg, seed=9, shard_key=(0, 0))
        pack_shard(docs, tmp_path / "tokenizer", data / "validation-000.npy", cfg, seed=9, shard_key=(1, 0))
        write_meta(data / "meta.json", train_shards=[data / "train-000.npy"],
                   validation_shards=[data / "validation-000.npy"], tokenizer_dir=tmp_path / "tokenizer",
                   config=cfg, seed=9, documents={}, language="en")
        out[mode] = data
    return out


def test_static_masks_are_stored_per_copy(packed_dirs):
    split = PackedSplit.open(packed_dirs["static"], "train")
    assert split.copies == 3 and len(split) > 10
    idx = np.arange(len(split))
    a, b, again = split.batch(idx, epoch=0), split.batch(idx, epoch=1), split.batch(idx, epoch=3)
    assert np.array_equal(a["input_ids"], again["input_ids"]) and np.array_equal(a["labels"], again["labels"])
    assert not np.array_equal(a["labels"] != IGNORE_INDEX, b["labels"] != IGNORE_INDEX)
    # Unmasking the stored labels recovers the same original sequence in every copy.
    unmasked = [np.where(x["labels"] != IGNORE_INDEX, x["labels"], x["input_ids"]) for x in (a, b)]
    assert np.array_equal(unmasked[0], unmasked[1])
    assert ((a["labels"] != IGNORE_INDEX).sum(1) <= 20).all()
    assert np.array_equal(a["attention_mask"].sum(1), split.records(idx)["length"])
    assert all(np.array_equal(split.batch(idx)[k], a[k]) for k in a)  # epoch 0 unless told
    assert {k: v.dtype for k, v in a.items()} == dict.fromkeys(a, np.dtype(np.int64))  # what the model takes


def test_dynamic_masks_are_drawn_at_load_time(packed_dirs):
    static = PackedSplit.open(packed_dirs["static"], "train")
    split = PackedSplit.open(packed_dirs["dynamic"], "train")
    assert split.meta["masking"]["mode"] == "dynamic" and split.copies == 1
    idx = np.arange(len(split))
    first = split.batch(idx, rng=np.random.default_rng(1))
    same = split.batch(idx, rng=np.random.default_rng(1))
    other = split.batch(idx, rng=np.random.default_rng(2))
    assert np.array_equal(first["input_ids"], same["input_ids"])
    assert not np.array_equal(first["labels"] != IGNORE_INDEX, other["labels"] != IGNORE_INDEX)
    # Same packing as the static data: only the masks differ.
    unmasked_static = static.batch(idx)
    original = np.where(unmasked_static["labels"] != IGNORE_INDEX, unmasked_static["labels"],
                        unmasked_static["input_ids"])
    assert np.array_equal(split.records(idx)["input_ids"], original)
    with pytest.raises(ValueError, match="rng"):
        split.batch(idx)


def test_meta_describes_the_shards(packed_dirs):
    meta = json.loads((packed_dirs["static"] / "meta.json").read_text())
    records = np.load(packed_dirs["static"] / "train-000.npy")
    assert records.dtype["input_ids"].base == np.uint16
    assert meta["seq_len"] == 128 and meta["sequences"] == records.shape[1]
    assert meta["tokens"] == int(records["length"][0].sum())
    assert meta["masking"]["duplication"] == 3 and len(meta["tokenizer"]["vocab_sha256"]) == 64


def test_trained_vocabulary_is_the_same_in_every_process():
    """Many tied pairs at the vocabulary limit: `tokenizers`' own trainer keeps a
    different vocabulary in every process on this corpus; ours must not."""
    import subprocess
    import sys

    code = ("import random\n"
            "from kdbudget.data.tokenizer import train_wordpiece, vocab_hash\n"
            "rng = random.Random(0)\n"
            "words = [''.join(rng.choice('abcdefgh') for _ in range(rng.randint(3, 7))) for _ in range(400)]\n"
            "texts = [' '.join(words[i:i + 20]) for i in range(0, 400, 20)]\n"
            "print(vocab_hash(train_wordpiece(texts, vocab_size=60, lowercase=True, min_frequency=1)))")
    hashes = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in range(4)}
    assert len(hashes) == 1


def test_wordpiece_vocabulary_merges_the_most_frequent_pair_first_and_ties_by_text():
    # By hand: "ab" x3 and "abc" x2 give (a, ##b) 5 times, (##b, ##c) twice, (b, ##c) once in "bc".
    counts = {"ab": 3, "abc": 2, "bc": 1, "xy": 1, "zw": 1}
    alphabet = ["##b", "##c", "##w", "##y", "a", "b", "x", "z"]
    specials = ["[PAD]", "[UNK]"]
    full = learn_vocabulary(counts, vocab_size=100, min_frequency=1, special_tokens=specials)
    # After "ab", (ab, ##c) occurs twice; then three pairs tie at one: bc, xy, zw in text order.
    assert full == specials + alphabet + ["ab", "abc", "bc", "xy", "zw"]
    assert learn_vocabulary(counts, vocab_size=len(specials) + len(alphabet) + 3, min_frequency=1,
                            special_tokens=specials) == specials + alphabet + ["ab", "abc", "bc"]
    assert learn_vocabulary(counts, vocab_size=100, min_frequency=2,
                            special_tokens=specials) == specials + alphabet + ["ab", "abc"]


def test_trained_tokenizer_encodes_with_the_learned_pieces():
    tokenizer = train_wordpiece(["low lower lowest"] * 5 + ["newer wider"] * 2, vocab_size=40, lowercase=True,
                                min_frequency=1)
    assert tokenizer.tokenize("Lower") == ["lower"]
    assert tokenizer.convert_tokens_to_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]) == [0, 1, 2, 3, 4]


def test_a_tokenizer_saved_with_padding_and_truncation_packs_only_real_tokens(packed_dirs, tmp_path: Path):
    """Saved HF tokenizers often carry padding (BatchLongest) and truncation in tokenizer.json:
    packing must ignore both, so the packed data and its counts equal a plain tokenizer's."""
    from kdbudget.data.tokenizer import load_tokenizer

    plain = load_tokenizer(tmp_path / "tokenizer")
    padded_dir = tmp_path / "padded-tokenizer"
    plain.backend_tokenizer.enable_padding(pad_id=plain.pad_token_id, pad_token="[PAD]")  # BatchLongest
    plain.backend_tokenizer.enable_truncation(max_length=5)
    save_tokenizer(plain, padded_dir)
    saved = json.loads((padded_dir / "tokenizer.json").read_text())
    assert saved["padding"] and saved["truncation"]  # the settings really travel with the file

    cfg = PackingConfig(masking="dynamic", duplication=1)
    docs = tmp_path / "docs.jsonl"
    expected = pack_shard(docs, tmp_path / "tokenizer", tmp_path / "plain.npy", cfg, seed=9, shard_key=(0, 0))
    got = pack_shard(docs, padded_dir, tmp_path / "padded.npy", cfg, seed=9, shard_key=(0, 0))
    for key in ("sequences", "tokens", "tokenized_tokens"):
        assert got[key] == expected[key], key
    # Independently: the tokens of each sentence, encoded one by one by the unpadded tokenizer.
    from kdbudget.data.sentences import split_sentences

    plain_again = load_tokenizer(tmp_path / "tokenizer")
    texts = [json.loads(line)["text"] for line in docs.read_text().splitlines()]
    assert got["tokenized_tokens"] == sum(len(plain_again(sentence, add_special_tokens=False)["input_ids"])
                                          for text in texts for sentence in split_sentences(text))
    from kdbudget.data.storage import open_shard

    records = open_shard(tmp_path / "padded.npy")
    pad = plain.pad_token_id
    assert all((records["input_ids"][0][i, :n] != pad).all() for i, n in enumerate(records["length"][0]))


def test_the_trained_vocabulary_keeps_every_character_beyond_vocab_size(caplog):
    """As BERT's WordPiece: no character becomes [UNK]; the size is exceeded, with a warning."""
    text = "abcdefghij klmnopqrst uvwxyz"
    alphabet = {c for word in text.split() for c in [word[0]] + [f"##{x}" for x in word[1:]]}
    with caplog.at_level("WARNING", logger="kdbudget"):
        tokenizer = train_wordpiece([text], vocab_size=10, lowercase=True, min_frequency=1)
    vocab = set(tokenizer.get_vocab())
    assert alphabet <= vocab and len(vocab) == 5 + len(alphabet)
    assert "tokenizer.vocab_size=10" in caplog.text and f"has {len(vocab)} tokens" in caplog.text
    assert "[UNK]" not in tokenizer.tokenize("ahj uzy")


# --- dynamic masking through the reader ------------------------------------------------------------------------


def _hand_packed(directory: Path, lengths: list[int], vocab: int = 1000, seed: int = 0) -> tuple[Path, np.ndarray]:
    """Unmasked packed data written by hand (the documented layout and meta.json), BERT's 80/10/10 and 15%."""
    rng = np.random.default_rng(seed)
    records = np.zeros((1, len(lengths)), dtype=record_dtype(128, vocab, 20, static=False))
    for row, length in enumerate(lengths):
        records["input_ids"][0, row, 0], records["input_ids"][0, row, length - 1] = CLS, SEP
        records["input_ids"][0, row, 1:length - 1] = rng.integers(10, vocab, size=length - 2)
        records["length"][0, row] = length
    directory.mkdir(parents=True, exist_ok=True)
    write_shard(directory / "train-000.npy", records)
    meta = {"format": FORMAT, "seq_len": 128, "vocab_size": vocab, "sequences": len(lengths),
            "tokenizer": {"special_ids": {"pad": PAD, "unk": 1, "cls": CLS, "sep": SEP, "mask": MASK}},
            "masking": {"mode": "dynamic", "mask_prob": 0.15, "max_predictions": 20, "duplication": 1,
                        "mask_token_fraction": 0.8, "random_token_fraction": 0.1},
            "splits": {"train": {"shards": [{"path": "train-000.npy"}]}}}
    (directory / "meta.json").write_text(json.dumps(meta))
    return directory, records["input_ids"][0].astype(np.int64)


def test_dynamic_masks_follow_bert_counted_over_many_sequences(tmp_path):
    """15% of each sequence, positions uniform over its non-special tokens, 80% [MASK], 10% a random
    non-special token, 10% unchanged: counted here from the batches alone, against the stored ids."""
    n = 2000
    data, original = _hand_packed(tmp_path, [128] * n)
    batch = PackedSplit.open(data).batch(np.arange(n), rng=np.random.default_rng(4))
    predicted = batch["labels"] != IGNORE_INDEX
    assert (predicted.sum(1) == 19).all()  # round(0.15 * 128)
    assert (batch["labels"][predicted] == original[predicted]).all()
    assert (batch["input_ids"][~predicted] == original[~predicted]).all()
    assert not predicted[:, 0].any() and not predicted[:, 127].any()  # never [CLS] or [SEP]
    # Uniform positions: each of the 126 maskable positions is drawn with probability 19/126.
    per_position = predicted[:, 1:127].sum(0)
    p = 19 / 126
    assert np.abs(per_position - n * p).max() < 5 * math.sqrt(n * p * (1 - p)), per_position
    new, old = batch["input_ids"][predicted], original[predicted]
    total = len(new)
    masked, kept = (new == MASK).sum(), (new == old).sum()
    replaced = new[(new != MASK) & (new != old)]
    for count, p in ((masked, 0.8), (kept, 0.1 + 0.1 / 995), (len(replaced), 0.1 - 0.1 / 995)):
        assert abs(count - total * p) < 5 * math.sqrt(total * p * (1 - p)), (count, total * p)
    assert ((replaced >= 5) & (replaced < 1000)).all()  # random tokens are never special
    # The random replacements are spread over the vocabulary, not one token.
    assert len(np.unique(replaced)) > 0.7 * min(len(replaced), 995)


def test_dynamic_mask_count_rounds_15_percent_of_the_whole_sequence(tmp_path):
    """The documented rule: round(0.15 x length), [CLS] and [SEP] included, at least 1. These lengths
    tell it apart from 15% of the maskable tokens: 24 -> 4 (not 3), 44 -> 7 (not 6), 64 -> 10 (not 9)."""
    lengths = [3, 24, 44, 64, 128] * 40
    data, _ = _hand_packed(tmp_path, lengths)
    split = PackedSplit.open(data)
    for seed in range(3):
        batch = split.batch(np.arange(len(lengths)), rng=np.random.default_rng(seed))
        counts = (batch["labels"] != IGNORE_INDEX).sum(1)
        assert counts.tolist() == [1, 4, 7, 10, 19] * 40
        assert (batch["attention_mask"].sum(1) == lengths).all()
        rows, cols = np.nonzero(batch["labels"] != IGNORE_INDEX)
        assert ((cols >= 1) & (cols <= np.asarray(lengths)[rows] - 2)).all()  # inside the sequence, not [SEP]


def test_masks_never_land_on_special_tokens_however_few_remain():
    """A sequence of [UNK]s but one word: it has one maskable token, so one prediction, not round(0.15 x 40)."""
    ids, lens = _batch(3, [40, 40, 40])
    ids[0, 1:39] = 1  # [UNK]
    ids[0, 17] = 77
    out = mask_batch(ids, lens, SPEC, np.random.default_rng(0))
    assert out.counts.tolist() == [1, 6, 6]
    assert out.positions[0].tolist() == [17] + [0] * 19 and out.labels[0].tolist() == [77] + [0] * 19
    assert (out.input_ids[0, :17] == ids[0, :17]).all() and (out.input_ids[0, 18:] == ids[0, 18:]).all()
    assert out.input_ids.dtype == ids.dtype


def test_random_replacements_are_uniform_over_the_non_special_tokens():
    """With a vocabulary of 5 specials and 3 words, a random replacement is each word a third of the time."""
    spec = MaskingSpec(mask_prob=0.15, max_predictions=20, mask_id=MASK, vocab_size=8, special_ids=(0, 1, 2, 3, 4),
                       mask_token_fraction=0.0, random_token_fraction=1.0)
    ids, lens = _batch(3000, [128] * 3000)
    ids[:, 1:127] = np.random.default_rng(1).integers(5, 8, size=(3000, 126))
    out = mask_batch(ids, lens, spec, np.random.default_rng(2))
    used = np.arange(20)[None, :] < out.counts[:, None]
    rows = np.broadcast_to(np.arange(3000)[:, None], out.positions.shape)
    drawn = out.input_ids[rows[used], out.positions[used]]
    n = len(drawn)
    for token in (5, 6, 7):
        assert abs((drawn == token).sum() - n / 3) < 5 * math.sqrt(n * 2 / 9), token
    assert np.isin(drawn, [5, 6, 7]).all()


def test_id_and_position_types_hold_the_largest_value():
    from kdbudget.data.storage import id_dtype

    assert id_dtype(2**16) == np.uint16 and id_dtype(2**16 + 1) == np.uint32  # ids run to vocab_size - 1
    assert record_dtype(256, 100, 20, static=True)["mlm_positions"].base == np.uint8  # positions to 255
    assert record_dtype(257, 100, 20, static=True)["mlm_positions"].base == np.uint16
    assert record_dtype(128, 70000, 20, static=True)["mlm_labels"].base == np.uint32
    assert "mlm_positions" not in record_dtype(128, 100, 20, static=False).names


def test_a_split_of_several_shards_reads_each_sequence_from_its_shard(tmp_path):
    """Global indices run through the shards in order; the ones at the shards' edges included."""
    from kdbudget.data.storage import open_shard

    sizes = [5, 3, 4]
    paths = []
    for s, size in enumerate(sizes):
        records = np.zeros((2, size), dtype=record_dtype(128, 1000, 20, static=True))
        for copy in range(2):
            records["input_ids"][copy, :, 1] = 100 * s + np.arange(size) + 10 * copy  # shard, row, copy
            records["length"][copy] = 3
        paths.append(f"train-{s:03d}.npy")
        write_shard(tmp_path / paths[-1], records)
    meta = {"format": FORMAT, "masking": {"mode": "static"},
            "splits": {"train": {"shards": [{"path": p} for p in paths]}}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    split = PackedSplit.open(tmp_path, "train")
    assert len(split) == 12 and split.copies == 2
    expected = [100 * s + r for s, size in enumerate(sizes) for r in range(size)]
    order = np.array([11, 0, 4, 5, 7, 8, 3, 9])
    assert split.records(order)["input_ids"][:, 1].tolist() == [expected[i] for i in order]
    assert split.records(order, epoch=3)["input_ids"][:, 1].tolist() == [expected[i] + 10 for i in order]
    assert isinstance(open_shard(tmp_path / paths[0]), np.memmap)  # opened without reading it into memory
    with pytest.raises(KeyError, match="'test' not in .*meta.json"):
        PackedSplit.open(tmp_path, "test")


def test_packed_data_descriptions_are_checked(tmp_path):
    from kdbudget.data.storage import load_meta, masking_spec

    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/meta.json.*'data' target"):
        load_meta(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"format": "other-v9"}))
    with pytest.raises(ValueError, match="unknown format 'other-v9'"):
        load_meta(tmp_path)
    meta = {"masking": {"mask_prob": 0.2, "max_predictions": 7, "mask_token_fraction": 0.5,
                        "random_token_fraction": 0.3},
            "tokenizer": {"special_ids": {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}}, "vocab_size": 50}
    spec = masking_spec(meta)
    assert (spec.mask_prob, spec.max_predictions, spec.mask_id, spec.vocab_size) == (0.2, 7, 4, 50)
    assert (spec.mask_token_fraction, spec.random_token_fraction) == (0.5, 0.3)  # the data's, not the defaults
    assert spec.special_ids == (0, 1, 2, 3, 4)
