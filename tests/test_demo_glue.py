"""The demo's eight GLUE tasks: official layout, determinism, balance, and content
checked against the world they are drawn from."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from kdbudget.demo import SENTIMENT, Realiser, demo_world, write_demo_glue
from kdbudget.demo.glue import DEV_SIZES, TRAIN_SIZES
from kdbudget.demo.glue.language import Describer, named, slot_variants, wh_slot_variants
from kdbudget.demo.world import RELATIONS, Entity, Fact
from kdbudget.glue import loader, tasks

WORDS, SEED = 20_000, 7
# What the official GLUE download holds, written out here (the demo takes it from kdbudget.glue.tasks).
TASKS = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte")
DIRS = {"cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "qqp": "QQP", "stsb": "STS-B", "mnli": "MNLI",
        "qnli": "QNLI", "rte": "RTE"}
LABELS = {"cola": ("0", "1"), "sst2": ("0", "1"), "mrpc": ("0", "1"), "qqp": ("0", "1"), "stsb": None,
          "mnli": ("entailment", "neutral", "contradiction"), "qnli": ("entailment", "not_entailment"),
          "rte": ("entailment", "not_entailment")}
HEADERS: dict[str, tuple[str, ...] | None] = {
    "cola": None, "sst2": ("sentence", "label"), "mrpc": ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),
    "qqp": ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"),
    "stsb": ("index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2",
             "score"),
    "mnli": ("index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
             "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"),
    "qnli": ("index", "question", "sentence", "label"), "rte": ("index", "sentence1", "sentence2", "label"),
}
FILES = {task: ("train", "dev_matched", "dev_mismatched") if task == "mnli" else ("train", "dev") for task in TASKS}
SMALL = {task: 30 for task in TASKS}


@pytest.fixture(scope="module")
def glue(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("glue") / "glue"
    return out, write_demo_glue(out, words=WORDS, seed=SEED)


def _read(path: Path) -> list[list[str]]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and "\r" not in text
    return [line.split("\t") for line in text[:-1].split("\n")]


def _table(root: Path, task: str, stem: str) -> list[dict[str, str]]:
    rows = _read(root / DIRS[task] / f"{stem}.tsv")
    header = HEADERS[task] or ("source", "label", "mark", "sentence")
    if HEADERS[task]:
        rows = rows[1:]
    return [dict(zip(header, row, strict=True)) for row in rows]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- an index of what the world says

def _key(f: Fact) -> tuple[str, str, str]:
    s, o = f.subject.id, f.object.id if isinstance(f.object, Entity) else f.object
    if RELATIONS[f.relation].symmetric:
        s, o = min(s, o), max(s, o)
    return (s, f.relation, o)


@pytest.fixture(scope="module")
def index() -> dict[str, dict[str, set]]:
    """Every true fact of the world, realised with names and with each of its
    descriptions, in both styles: statements, negations, yes/no and wh-questions ->
    the facts they express."""
    world = demo_world(WORDS, SEED)
    describer = Describer(world)
    out: dict[str, dict[str, set]] = {"say": {}, "neg": {}, "yn": {}, "wh": {}, "plain": {}, "described": {},
                                      "descriptions": {}}

    def add(kind: str, text: str, f: Fact, described: bool = False) -> None:
        out[kind].setdefault(text, set()).add(_key(f))
        if kind == "say":
            out["described" if described else "plain"][text] = set()

    for f in world.facts:
        for style in ("wiki", "story"):
            r = Realiser(style)
            for v in range(len(r.variants(f))):
                add("say", r.sentence(f, v), f)
                add("neg", r.negation(f, v), f)
                add("yn", r.question(f, "yn", v), f)
            for v in range(r.n_questions(f)):
                add("wh", r.question(f, "wh", v), f)
            for role, target in (("s", f.subject), ("o", f.object)):
                if not isinstance(target, Entity):
                    continue
                for d in describer.options(target, style):
                    out["descriptions"][d.text.lower()] = set()
                    rd = named(style, {target.id: d.text})
                    for v in slot_variants(f, role):
                        add("say", rd.sentence(f, v), f, described=True)
                        add("yn", rd.question(f, "yn", v), f)
                    for v in wh_slot_variants(f, role):
                        add("wh", rd.question(f, "wh", v), f)
    return out


# --------------------------------------------------------------------------- layout

def test_layout_headers_and_labels(glue: tuple[Path, dict]) -> None:
    root, counts = glue
    assert sorted(p.name for p in root.iterdir()) == sorted(DIRS.values())
    for task in TASKS:
        assert sorted(p.name for p in (root / DIRS[task]).iterdir()) == sorted(f"{s}.tsv" for s in FILES[task])
        for stem in FILES[task]:
            rows = _read(root / DIRS[task] / f"{stem}.tsv")
            header = HEADERS[task]
            if header is None:  # CoLA: no header, four columns
                assert rows[0][0] != "source" and all(len(row) == 4 for row in rows)
                width = 4
            else:
                assert tuple(rows[0]) == header
                rows, width = rows[1:], len(header)
            assert all(len(row) == width for row in rows), (task, stem)
            expected = (TRAIN_SIZES if stem == "train" else DEV_SIZES)[task]
            assert len(rows) == expected == counts[task][stem]
            for row in _table(root, task, stem):
                label = row[{"cola": "label", "sst2": "label", "mrpc": "Quality", "qqp": "is_duplicate",
                             "stsb": "score", "mnli": "gold_label"}.get(task, "label")]
                if LABELS[task] is None:
                    assert 0.0 <= float(label) <= 5.0 and len(label.split(".")[1]) == 3
                else:
                    assert label in LABELS[task]
    assert _read(root / "MNLI" / "train.tsv")[0][-2:] == ["label1", "gold_label"]


def test_the_glue_loader_reads_every_line(glue: tuple[Path, dict]) -> None:
    """The pipeline's reader of the official files finds every row well formed."""
    root, counts = glue
    for task in TASKS:
        spec = tasks.get_task(task)
        assert spec.title == DIRS[task] and spec.header == (HEADERS[task] is not None)
        if spec.labels is not None:
            assert set(LABELS[task]) == set(spec.labels)
        data = loader.load_task(root, task)
        assert not any(data.malformed.values()), data.malformed
        assert len(data.train) == counts[task]["train"]
        assert sum(len(v) for v in data.dev.values()) == sum(n for stem, n in counts[task].items() if stem != "train")


def test_fields_are_clean_and_short(glue: tuple[Path, dict]) -> None:
    root, _ = glue
    texts = {"cola": ("sentence",), "sst2": ("sentence",), "mrpc": ("#1 String", "#2 String"),
             "qqp": ("question1", "question2"), "stsb": ("sentence1", "sentence2"), "mnli": ("sentence1", "sentence2"),
             "qnli": ("question", "sentence"), "rte": ("sentence1", "sentence2")}
    quoted = 0
    for task in TASKS:
        for stem in FILES[task]:
            for row in _table(root, task, stem):
                for col in texts[task]:
                    assert 0 < len(row[col].split()) <= 60, (task, row[col])
                    quoted += '"' in row[col]
    assert quoted > 0  # the dialogue genre quotes speech, written raw


def test_cola_marks_and_sources(glue: tuple[Path, dict]) -> None:
    root, _ = glue
    for stem in FILES["cola"]:
        for row in _table(root, "cola", stem):
            assert row["mark"] == ("*" if row["label"] == "0" else "")
            assert len(row["source"]) == 4 and row["source"][2:].isdigit()


# --------------------------------------------------------------------------- determinism, atomicity, options

def test_deterministic_and_task_seed(tmp_path: Path, glue: tuple[Path, dict]) -> None:
    again = tmp_path / "again"
    write_demo_glue(again, words=WORDS, seed=SEED)
    assert _snapshot(again) == _snapshot(glue[0])
    a, b = tmp_path / "a", tmp_path / "b"
    write_demo_glue(a, words=WORDS, seed=SEED, sizes=SMALL)
    write_demo_glue(b, words=WORDS, seed=SEED, sizes=SMALL, task_seed=1)
    sa, sb = _snapshot(a), _snapshot(b)
    assert sa.keys() == sb.keys() and all(sa[k] != sb[k] for k in sa)


def test_replaces_atomically(tmp_path: Path) -> None:
    out = tmp_path / "glue"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    write_demo_glue(out, words=WORDS, seed=SEED, sizes=SMALL)
    assert not (out / "stale.txt").exists() and (out / "RTE" / "dev.tsv").exists()
    assert os.listdir(tmp_path) == ["glue"]  # no temporary folders left beside it


def test_sizes_and_errors(tmp_path: Path) -> None:
    counts = write_demo_glue(tmp_path / "g", words=WORDS, seed=SEED, sizes={**SMALL, "rte": 40, "MNLI": 31})
    assert counts["rte"] == {"train": 40, "dev": 40}
    assert counts["mnli"] == {"train": 31, "dev_matched": 10, "dev_mismatched": 10}
    assert counts["cola"] == {"train": 30, "dev": 10}
    with pytest.raises(ValueError, match="unknown demo GLUE task"):
        write_demo_glue(tmp_path / "x", words=WORDS, seed=SEED, sizes={"wnli": 50})
    with pytest.raises(ValueError, match=">= 10"):
        write_demo_glue(tmp_path / "x", words=WORDS, seed=SEED, sizes={"rte": 5})
    for bad in ({"words": 0}, {"wiki_fraction": 1.0}, {"task_seed": -1}):
        with pytest.raises(ValueError):
            write_demo_glue(tmp_path / "x", **{"words": WORDS, "seed": SEED, **bad})
    assert not (tmp_path / "x").exists()


def test_fails_loudly_when_examples_run_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kdbudget.demo.glue import draw as module
    from kdbudget.demo.glue.context import Example

    def same(ctx, label, rng):  # a task with a single possible example per label
        return Example((f"Only sentence {label}.",), label, {})

    monkeypatch.setitem(module._BUILDERS, "sst2", same)
    monkeypatch.setattr(module, "_ATTEMPTS", 5)
    with pytest.raises(ValueError, match="cannot draw 30 distinct examples"):
        write_demo_glue(tmp_path / "g", words=WORDS, seed=SEED, sizes=SMALL)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- balance and splits

def test_labels_balanced(glue: tuple[Path, dict]) -> None:
    root, _ = glue
    column = {"cola": "label", "sst2": "label", "mrpc": "Quality", "qqp": "is_duplicate", "mnli": "gold_label",
              "qnli": "label", "rte": "label"}
    for task, col in column.items():
        for stem in FILES[task]:
            counts = Counter(row[col] for row in _table(root, task, stem))
            n, k = sum(counts.values()), len(LABELS[task])
            assert set(counts) == set(LABELS[task])
            assert max(counts.values()) - min(counts.values()) <= 1, (task, stem, counts)
            assert max(counts.values()) / n < 1 / k + 0.01
    scores = [float(row["score"]) for row in _table(root, "stsb", "train")]
    assert min(scores) < 0.5 and max(scores) > 4.8
    assert all(sum(lo <= s < lo + 1 for s in scores) > 60 for lo in range(5))  # graded, not bimodal


def test_train_and_dev_share_no_example(glue: tuple[Path, dict]) -> None:
    root, _ = glue
    for task in TASKS:
        hdr = HEADERS[task] or ("source", "label", "mark", "sentence")
        cols = [c for c in hdr if c in ("sentence", "sentence1", "sentence2", "#1 String", "#2 String", "question",
                                        "question1", "question2")]
        seen: dict[tuple[str, ...], str] = {}
        for stem in FILES[task]:
            for row in _table(root, task, stem):
                key = tuple(row[c] for c in cols)
                assert key not in seen, (task, stem, seen.get(key), key)
                seen[key] = stem


def test_no_fact_is_stated_in_both_train_and_dev(glue: tuple[Path, dict], index: dict) -> None:
    """Dev examples test facts that fine-tuning never states (or denies): only pretraining
    can teach them.  (Questions state nothing: "Who lives in Tavon?" is about everyone.)"""
    root, _ = glue
    facts: dict[str, set] = {"train": set(), "dev": set()}
    for task in TASKS:
        for stem in FILES[task]:
            for row in _table(root, task, stem):
                for text in row.values():
                    for kind in ("say", "neg"):
                        facts["train" if stem == "train" else "dev"] |= index[kind].get(text, set())
    assert len(facts["train"]) > 300 and len(facts["dev"]) > 100
    shared = facts["train"] & facts["dev"]
    assert not shared, sorted(shared)[:10]


def test_mnli_genres(glue: tuple[Path, dict]) -> None:
    root, _ = glue
    genres = {stem: Counter(row["genre"] for row in _table(root, "mnli", stem)) for stem in FILES["mnli"]}
    assert set(genres["train"]) == set(genres["dev_matched"]) == {"wiki", "story"}
    assert set(genres["dev_mismatched"]) == {"dialogue"}
    for stem in FILES["mnli"]:
        for row in _table(root, "mnli", stem):
            assert row["label1"] == row["gold_label"] and row["pairID"][:-1] == row["promptID"]
            assert row["sentence1_binary_parse"].startswith("( ") and row["sentence2_parse"].startswith("(ROOT")
    mismatched = _table(root, "mnli", "dev_mismatched")
    assert all(row["sentence1"].startswith('"') for row in mismatched)


# --------------------------------------------------------------------------- content, checked against the world

def test_mrpc_and_qqp_pairs_match_the_world(glue: tuple[Path, dict], index: dict) -> None:
    root, _ = glue
    for task, kinds, c1, c2, col in (("mrpc", ("say",), "#1 String", "#2 String", "Quality"),
                                     ("qqp", ("yn", "wh"), "question1", "question2", "is_duplicate")):
        checked = Counter()
        for stem in FILES[task]:
            for row in _table(root, task, stem):
                facts = []
                for col_ in (c1, c2):
                    found = [index[k][row[col_]] for k in kinds if row[col_] in index[k]]
                    facts.append(found[0] if len(found) == 1 else None)
                if facts[0] is None or facts[1] is None:
                    continue  # compound sentences, false facts, questions of two kinds
                same = bool(facts[0] & facts[1])
                assert same == (row[col] == "1"), (task, row)
                checked[row[col]] += 1
        assert checked["1"] > 0.5 * DEV_SIZES[task] and checked["0"] > 0.1 * DEV_SIZES[task], (task, checked)


def test_knowledge_pairs_exist(glue: tuple[Path, dict], index: dict) -> None:
    """Many MRPC pairs name an entity in one sentence and describe one in the other:
    positives where the description picks out that entity (only the world says so),
    and negatives, just as fluent, where it picks out another (a false statement)."""
    root, _ = glue
    checked = Counter()
    for stem in FILES["mrpc"]:
        for row in _table(root, "mrpc", stem):
            a, b = row["#1 String"], row["#2 String"]
            for plain, other in ((a, b), (b, a)):
                if plain not in index["plain"] or plain in index["described"]:
                    continue
                if other in index["described"]:
                    assert row["Quality"] == "1" and index["say"][plain] & index["say"][other], row
                    checked["positive"] += 1
                elif other not in index["say"] and any(d in other.lower() for d in index["descriptions"]):
                    assert row["Quality"] == "0", row
                    checked["negative"] += 1
    assert checked["positive"] > 100 and checked["negative"] > 100, checked


def test_cola_negatives_are_not_grammatical_sentences(glue: tuple[Path, dict], index: dict) -> None:
    root, _ = glue
    rows = [row for stem in FILES["cola"] for row in _table(root, "cola", stem)]
    good = {row["sentence"] for row in rows if row["label"] == "1"}
    bad = [row["sentence"] for row in rows if row["label"] == "0"]
    grammatical = good | set(index["say"]) | set(index["neg"]) | set(index["yn"]) | set(index["wh"])
    assert not [s for s in bad if s in grammatical]
    assert sum(s in index["say"] or s in index["neg"] or s in index["yn"] or s in index["wh"] for s in good) > 100


def test_sst_polarity_words_agree_with_labels(glue: tuple[Path, dict]) -> None:
    root, _ = glue
    pos, neg = set(SENTIMENT["positive"]), set(SENTIMENT["negative"])
    checked = 0
    for stem in FILES["sst2"]:
        for row in _table(root, "sst2", stem):
            text = row["sentence"]
            assert text == text.lower() and (text.endswith(" . ") or text.endswith(" ! ")), text
            words = set(text.split())
            if "not" in words:
                continue
            if words & pos and not words & neg:
                assert row["label"] == "1", text
                checked += 1
            if words & neg and not words & pos:
                assert row["label"] == "0", text
                checked += 1
    assert checked > 300


def test_nli_labels_agree_with_the_world(glue: tuple[Path, dict], index: dict) -> None:
    """A contradiction is never a true statement of the world; an entailed hypothesis is
    never the negation of a true fact; a neutral one states nothing the premise says."""
    root, _ = glue
    checked = Counter()
    for task, stems in (("mnli", FILES["mnli"]), ("rte", FILES["rte"])):
        for stem in stems:
            for row in _table(root, task, stem):
                label = row["gold_label"] if task == "mnli" else row["label"]
                hyp = row["sentence2"]
                if label == "contradiction":
                    assert hyp not in index["say"], row
                    checked["c"] += hyp in index["neg"]
                elif label == "entailment":
                    assert hyp not in index["neg"], row
                    checked["e"] += hyp in index["say"]
                else:
                    assert hyp not in row["sentence1"]
    assert checked["c"] > 100 and checked["e"] > 200


def test_qnli_sentences_answer_exactly_when_entailed(glue: tuple[Path, dict], index: dict) -> None:
    root, _ = glue
    checked = Counter()
    for stem in FILES["qnli"]:
        for row in _table(root, "qnli", stem):
            q, s = index["wh"].get(row["question"]), index["say"].get(row["sentence"])
            if q is None:
                continue
            if row["label"] == "entailment":
                # a true sentence; single-fact ones state the asked fact
                if s is not None:
                    assert q & s, row
                    checked["e"] += 1
            elif s is not None:
                # a true sentence that does not state the asked fact
                assert not q & s, row
                checked["n"] += 1
            else:
                checked["other"] += 1
    assert checked["e"] > 200 and checked["n"] > 150
