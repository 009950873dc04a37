"""The embedded demo's world and its two corpus sources (dump + books)."""

from __future__ import annotations

import bz2
import json
import os
import random
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kdbudget.demo import (
    SENTIMENT,
    Entity,
    Fact,
    Realiser,
    build_world,
    corrupt,
    demo_world,
    sentiment_sentence,
    write_demo_corpus,
)
from kdbudget.demo.realise import SENTIMENT_VERBS
from kdbudget.demo.world import ORG_PROFESSIONS, RELATIONS

WORDS, SEED = 20_000, 7
NS = "{http://www.mediawiki.org/xml/export-0.10/}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("demo")
    return d, write_demo_corpus(d / "wiki.xml.bz2", d / "books", words=WORDS, seed=SEED)


@pytest.fixture(scope="module")
def pages(corpus: tuple[Path, dict]) -> list[dict]:
    root = ET.fromstring(bz2.decompress((corpus[0] / "wiki.xml.bz2").read_bytes()))
    out = []
    for page in root.iter(f"{NS}page"):
        redirect = page.find(f"{NS}redirect")
        out.append({"title": page.findtext(f"{NS}title"), "ns": int(page.findtext(f"{NS}ns") or -1),
                    "redirect": None if redirect is None else redirect.get("title"),
                    "text": page.findtext(f"{NS}revision/{NS}text") or ""})
    return out


@pytest.fixture(scope="module")
def extracted(corpus: tuple[Path, dict]) -> dict[str, str]:
    out = corpus[0] / "extracted"
    subprocess.run([sys.executable, "-m", "wikiextractor.WikiExtractor", str(corpus[0] / "wiki.xml.bz2"),
                    "-o", str(out), "--json"], check=True, capture_output=True)
    docs = [json.loads(line) for f in sorted(out.rglob("wiki_*")) for line in f.read_text().splitlines()]
    return {d["title"]: d["text"] for d in docs}


def _snapshot(d: Path) -> dict[str, bytes]:
    files = {"wiki.xml.bz2": (d / "wiki.xml.bz2").read_bytes()}
    files.update({f"books/{p.name}": p.read_bytes() for p in sorted((d / "books").iterdir())})
    return files


# --------------------------------------------------------------------------- determinism

def test_same_seed_gives_identical_bytes_across_processes(corpus: tuple[Path, dict], tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from kdbudget.demo import write_demo_corpus; "
            f"write_demo_corpus(Path(sys.argv[1]) / 'wiki.xml.bz2', Path(sys.argv[1]) / 'books', "
            f"words={WORDS}, seed={SEED})")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # a different str-hash order must not matter
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, env=env)
    assert _snapshot(tmp_path) == _snapshot(corpus[0])


def test_different_seed_gives_different_output(corpus: tuple[Path, dict], tmp_path: Path) -> None:
    write_demo_corpus(tmp_path / "wiki.xml.bz2", tmp_path / "books", words=WORDS, seed=SEED + 1)
    other, mine = _snapshot(tmp_path), _snapshot(corpus[0])
    assert other["wiki.xml.bz2"] != mine["wiki.xml.bz2"]
    assert [v for k, v in sorted(other.items()) if k.startswith("books/")] != \
           [v for k, v in sorted(mine.items()) if k.startswith("books/")]


def test_rewrite_replaces_outputs_and_leaves_no_temp_files(tmp_path: Path) -> None:
    dump, books = tmp_path / "wiki.xml.bz2", tmp_path / "books"
    write_demo_corpus(dump, books, words=6000, seed=1)
    (books / "stale.txt").write_text("old")
    write_demo_corpus(dump, books, words=6000, seed=2)
    assert not (books / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["books", "wiki.xml.bz2"]


# --------------------------------------------------------------------------- the dump

def test_dump_has_mediawiki_structure(corpus: tuple[Path, dict], pages: list[dict]) -> None:
    raw = bz2.decompress((corpus[0] / "wiki.xml.bz2").read_bytes()).decode()
    assert raw.startswith('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/"')
    assert '<namespace key="10" case="first-letter">Template</namespace>' in raw
    assert '<namespace key="14" case="first-letter">Category</namespace>' in raw
    templates = [p for p in pages if p["ns"] == 10]
    assert templates and all(p["title"].startswith("Template:") for p in templates)
    redirects = [p for p in pages if p["redirect"]]
    assert redirects and all(p["text"] == f"#REDIRECT [[{p['redirect']}]]" for p in redirects)
    articles = "\n".join(p["text"] for p in pages if p["ns"] == 0 and not p["redirect"])
    for markup in ("{{Infobox person", "{{cite book", "{{nowrap|", "<ref name=", " />", "[[Category:",
                   '{| class="wikitable', "'''", "== Early life =="):
        assert markup in articles, markup
    assert re.search(r"\[\[[^|\]]+\|[^\]]+\]\]", articles)
    stats = corpus[1]
    assert stats["redirects"] == len(redirects) and stats["templates"] == len(templates)
    assert stats["pages"] == len(pages)


def test_wikiextractor_keeps_articles_and_link_text_only(pages: list[dict], extracted: dict[str, str]) -> None:
    articles = {p["title"]: p["text"] for p in pages if p["ns"] == 0 and not p["redirect"]}
    assert set(extracted) == set(articles)  # no redirect, template or category page survives
    for title, text in extracted.items():
        for leftover in ("[[", "]]", "{{", "}}", "<ref", "|}", "{|", "'''", "&lt;"):
            assert leftover not in text, (title, leftover)
    piped = [(t, m) for t, text in articles.items() for m in re.findall(r"\[\[([^|\]]+)\|([^\]]+)\]\]", text)]
    assert len(piped) > 10
    for title, (target, shown) in piped:
        assert shown in extracted[title], (title, target, shown)
    lead = next(t for t in extracted.values() if "(born " in t)
    assert re.search(r"\(born \d{4}\) is an? ", lead)  # the defined Nowrap template was expanded


# --------------------------------------------------------------------------- sizes and arguments

def test_word_count_close_to_request(corpus: tuple[Path, dict], extracted: dict[str, str]) -> None:
    d, stats = corpus
    wiki = sum(len(t.split()) for t in extracted.values())
    books = sum(len(p.read_text().split()) for p in (d / "books").glob("*.txt"))
    assert abs(wiki + books - WORDS) <= 0.1 * WORDS
    assert abs(wiki - WORDS / 2) <= 0.1 * WORDS / 2 and abs(books - WORDS / 2) <= 0.1 * WORDS / 2
    assert stats["book_words"] == books and abs(stats["wiki_words"] - wiki) <= 0.01 * wiki
    assert stats["books"] == len(list((d / "books").glob("*.txt"))) >= 2


def test_wiki_fraction_sets_the_split(tmp_path: Path) -> None:
    stats = write_demo_corpus(tmp_path / "w.xml.bz2", tmp_path / "b", words=10_000, seed=3, wiki_fraction=0.8)
    assert abs(stats["wiki_words"] - 8000) < 800 and abs(stats["book_words"] - 2000) < 500


@pytest.mark.parametrize("kwargs", [{"words": 0}, {"words": -5}, {"words": 1.5}, {"wiki_fraction": 0.0},
                                    {"wiki_fraction": 1.0}, {"wiki_fraction": 1.2}, {"language": "de"}])
def test_bad_arguments_raise(tmp_path: Path, kwargs: dict) -> None:
    args = {"words": 1000, "seed": 1, **kwargs}
    with pytest.raises(ValueError):
        write_demo_corpus(tmp_path / "w.xml.bz2", tmp_path / "b", **args)
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError):
        build_world(1, 3)


# --------------------------------------------------------------------------- the world

def test_world_facts_are_consistent() -> None:
    w = build_world(3, 400)
    assert w.facts == build_world(3, 400).facts
    assert len({e.name for e in w.entities}) == len(w.entities)
    for f in w.facts:
        spec = RELATIONS[f.relation]
        assert f.subject.kind in spec.subject_kinds
        assert isinstance(f.object, Entity) == bool(spec.object_kinds)
        if isinstance(f.object, Entity):
            assert f.object.kind in spec.object_kinds and f.object is not f.subject
    for p in w.of_kind("person"):
        for rel in ("lives_in", "born_in", "works_for", "profession", "birth_year", "hair", "temperament"):
            assert len(w.facts_about(p, rel)) == 1, (p.name, rel)
        org = w.value(p, "works_for")
        assert isinstance(org, Entity) and w.value(p, "profession") in ORG_PROFESSIONS[org.type]
        assert not set(w.objects(p, "likes")) & set(w.objects(p, "dislikes"))
        for child in w.objects(p, "parent_of"):
            assert isinstance(child, Entity) and child.family == p.family
            assert 15 <= int(str(w.value(child, "birth_year"))) - int(str(w.value(p, "birth_year"))) <= 45
            assert w.value(child, "born_in") in [w.value(q, "lives_in") for q in w.subjects("parent_of", child)]
    for o in w.of_kind("organisation"):
        founder = w.value(o, "founded_by")
        assert isinstance(founder, Entity)
        assert 20 <= int(str(w.value(o, "founded_year"))) - int(str(w.value(founder, "birth_year"))) <= 55
    for thing in w.of_kind("animal") + w.of_kind("object"):
        assert len(w.subjects("owns", thing)) == 1
    pairs = [(f.subject.id, f.object.id) for f in w.facts if f.relation == "friend_of"]  # type: ignore[union-attr]
    assert len(pairs) == len(set(pairs)) and not {(b, a) for a, b in pairs} & set(pairs)


def test_facts_appear_in_both_sources(corpus: tuple[Path, dict], extracted: dict[str, str]) -> None:
    w = demo_world(WORDS, SEED)
    people = [p for p in w.of_kind("person") if p.name in extracted]
    assert len(people) > 20
    for p in people:
        text = extracted[p.name]
        for rel in ("lives_in", "born_in", "works_for"):
            assert w.value(p, rel).name in text, (p.name, rel)  # type: ignore[union-attr]
        assert f" {w.value(p, 'profession')}" in text and str(w.value(p, "birth_year")) in text
    for book in sorted((corpus[0] / "books").glob("*.txt")):
        paragraphs = book.read_text().split("\n\n")
        hero_line = paragraphs[paragraphs.index("Chapter One") + 1]
        hero = next(p for p in w.of_kind("person") if hero_line.startswith(p.name + " "))
        home = w.value(hero, "lives_in")
        assert isinstance(home, Entity) and hero_line.startswith(f"{hero.name} lived in {home.name}, ")
        assert w.value(hero, "works_for").name in hero_line  # type: ignore[union-attr]


# --------------------------------------------------------------------------- the realiser

def test_realiser_paraphrases_questions_and_agreement() -> None:
    w = build_world(5, 200)
    r, story = Realiser("wiki"), Realiser("story")
    p = w.of_kind("person")[0]
    lives = w.facts_about(p, "lives_in")[0]
    home = lives.object
    assert isinstance(home, Entity)
    paraphrases = r.paraphrases(lives)
    assert len(set(paraphrases)) == len(paraphrases) >= 3 and all(home.name in s for s in paraphrases)
    assert r.sentence(lives) == f"{p.name} lives in {home.name}."
    assert story.sentence(lives) == f"{p.name} lived in {home.name}."
    assert r.negation(lives) == f"{p.name} does not live in {home.name}."
    assert r.question(lives) == f"Does {p.name} live in {home.name}?"
    assert r.question(lives, "wh") == f"Where does {p.name} live?" and r.wh_answer(lives) is home
    assert r.question(lives, "wh", person=2) == "Where do you live?"
    assert r.sentence(lives, person=1) == f"I live in {home.name}."
    pronoun = "She" if p.gender == "female" else "He"
    assert r.sentence(lives, pronoun=True) == f"{pronoun} lives in {home.name}."
    assert r.relative(lives) == f"who lives in {home.name}"
    friend = Fact(p, "friend_of", w.of_kind("person")[1])
    assert " are friends." in r.sentence(friend, 1) and " were friends." in story.sentence(friend, 1)
    region = Entity("region:x", "region", "Orla Hills", "hills", plural=True)
    assert r.sentence(Fact(region, "type", "hills")) == "The Orla Hills are a group of hills."
    born = w.facts_about(p, "born_in")[0]
    assert r.sentence(born).startswith(f"{p.name} was born in ")  # pinned past tense in the wiki style
    false = w.false_fact(lives, random.Random(0))
    assert not w.holds(false) and w.holds(lives) and false.object != home


def test_sentiment_and_corruption() -> None:
    w = build_world(5, 200)
    rng = random.Random(1)
    for e in w.of_kind("organisation")[:5] + w.of_kind("person")[:5]:
        for polarity in ("positive", "negative"):
            s = sentiment_sentence(e, polarity, rng)
            verbs = [f for v in SENTIMENT_VERBS[polarity] for f in (v.base, v.third, v.past)]
            assert any(word in s.split() or word + "." in s.split() for word in SENTIMENT[polarity] + tuple(verbs)), s
            other = "negative" if polarity == "positive" else "positive"
            neg = sentiment_sentence(e, polarity, rng, negated=True)
            assert "not at all" in neg and any(word in neg for word in SENTIMENT[other]), neg
    r = Realiser("wiki")
    kinds = set()
    for f in w.facts[:200]:
        good = r.sentence(f)
        bad, kind = corrupt(good, rng)
        assert bad != good
        kinds.add(kind)
    assert {"agreement", "article", "omission", "order"} <= kinds
    with pytest.raises(ValueError):
        Realiser("news")  # type: ignore[arg-type]
