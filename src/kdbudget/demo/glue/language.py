"""Language helpers for the demo GLUE tasks, on top of :mod:`kdbudget.demo.realise`.

Why: a task only rewards pretraining if some of its pairs can only be judged by
someone who knows the world.  :class:`Describer` gives *unique definite
descriptions* of entities from the world's facts ("the bank that Mira Lerigel works
for", "the mother of Dolya Nethsakbral"): a sentence that names an entity and one
that describes it state the same fact exactly when the description picks out that
entity, which only the world's facts decide.  :func:`named` realises a fact with
some entities described instead of named.

Also here: sentence combination and short passages (:func:`combine`,
:func:`passage`), the third MNLI genre (``dialogue``: quoted first-person speech, see
:func:`dialogue`), the one inference sentence the grammar lacks (:func:`works_in`),
opinions without evaluative words (:func:`opinion_sentence`), a filter for
corruptions that stay grammatical (:func:`still_ungrammatical`) and the official
files' text forms (:func:`sst_text`, :func:`parses`).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Literal

from kdbudget.demo.realise import QUESTIONS, WORK, Agr, Realiser, Style, Tense, capitalise, verb_group
from kdbudget.demo.world import RELATIONS, Entity, Fact, World

Role = Literal["s", "o"]
#: Kinds whose names :meth:`Realiser.name` prefixes with "the".
_THE_KINDS = ("organisation", "region", "object")
_KIN = {"female": ("mother", "daughter"), "male": ("father", "son")}


@dataclass(frozen=True)
class Description:
    """``text`` stands where :meth:`Realiser.name` prints the entity's name (without the
    "the" that ``name`` adds for organisations, regions and objects); ``fact`` is the
    world fact that makes it pick out the entity."""

    text: str
    fact: Fact


def _present(style: Style) -> bool:
    return style == "wiki"


class Describer:
    """Unique definite descriptions of the world's entities (see the module docstring).

    A description is offered only when no other entity of the same type fits it, so
    it refers to exactly one entity.
    """

    def __init__(self, world: World) -> None:
        self.world = world
        self._attr: dict[tuple[str, str, str], list[Entity]] = {}  # (relation, value, type) -> subjects
        for f in world.facts:
            if isinstance(f.object, str):
                self._attr.setdefault((f.relation, f.object, f.subject.type), []).append(f.subject)
        self._name = Realiser("wiki").name  # untracked: full names, "the" for organisations

    def options(self, e: Entity, style: Style, avoid: tuple[str, ...] = ()) -> list[Description]:
        """Every description of ``e`` whose fact mentions none of the entity ids in ``avoid``
        (a sentence about Mira must not describe her town as "where Mira lives")."""
        w, name, now = self.world, self._name, _present(style)
        t = e.type
        out: list[tuple[str, Fact]] = []
        if e.kind == "place":
            for f in w.facts_mentioning(e):
                x = name(f.subject)
                if f.relation == "born_in":
                    out.append((f"{t} where {x} was born", f))
                elif f.relation == "lives_in":
                    out.append((f"{t} where {x} {'lives' if now else 'lived'}", f))
                elif f.relation == "located_in" and f.subject.kind == "organisation":
                    out.append((f"{t} where {x} {'is' if now else 'was'} located", f))
            for f in w.facts_about(e, "famous_for"):
                if len(self._attr.get(("famous_for", str(f.object), t), [])) == 1:
                    out.append((f"{t} famous for its {f.object}", f))
        elif e.kind == "region":
            for f in w.facts_mentioning(e):
                if f.relation == "located_in":
                    out.append((f"{t} in which {name(f.subject)} {'lies' if now else 'lay'}", f))
        elif e.kind == "organisation":
            for f in w.facts_mentioning(e):
                if f.relation == "works_for":
                    out.append((f"{t} that {name(f.subject)} {'works' if now else 'worked'} for", f))
            for f in w.facts_about(e):
                if f.relation == "founded_by" and isinstance(f.object, Entity):
                    founded = [g.subject for g in w.facts_mentioning(f.object)
                               if g.relation == "founded_by" and g.subject.type == t]
                    if len(founded) == 1:
                        out.append((f"{t} founded by {name(f.object)}", f))
                elif f.relation == "founded_year" and len(self._attr.get(("founded_year", str(f.object), t), [])) == 1:
                    out.append((f"{t} founded in {f.object}", f))
        elif e.kind == "person":
            parent_noun, child_noun = _KIN[e.gender or "female"]
            for f in w.facts_about(e, "parent_of"):
                child = f.object
                assert isinstance(child, Entity)
                if sum(p.gender == e.gender for p in w.subjects("parent_of", child)) == 1:
                    out.append((f"the {parent_noun} of {name(child)}", f))
            for f in w.facts_mentioning(e):
                if f.relation == "parent_of":
                    kids = [c for c in w.objects(f.subject, "parent_of")
                            if isinstance(c, Entity) and c.gender == e.gender]
                    if len(kids) == 1:
                        out.append((f"the {child_noun} of {name(f.subject)}", f))
                elif f.relation == "founded_by":
                    out.append((f"the founder of {name(f.subject)}", f))
            for f in w.facts_about(e, "owns"):
                if len(w.subjects("owns", f.object)) == 1:
                    out.append((f"the owner of {name(f.object)}", f))  # type: ignore[arg-type]
        elif e.kind in ("animal", "object"):
            for f in w.facts_mentioning(e):
                if f.relation == "owns":
                    same = [o for o in w.objects(f.subject, "owns") if isinstance(o, Entity) and o.type == t]
                    if len(same) == 1:
                        out.append((f"{t} that {name(f.subject)} {'owns' if now else 'owned'}", f))
        the = "" if e.kind in _THE_KINDS else "the "
        return [Description(the + text if not text.startswith("the ") else text, f) for text, f in out
                if not any(x.id in avoid for x in (f.subject, f.object) if isinstance(x, Entity) and x.id != e.id)]

    def describe(self, e: Entity, style: Style, rng: random.Random, avoid: tuple[str, ...] = (),
                 outer: Fact | None = None, within: set[str] | None = None) -> Description | None:
        """A random description of ``e`` (None if it has none).  With ``outer``, the fact
        the description will stand in, none that uses that fact's relation on its
        subject ("the hamlet famous for its silk is famous for its silk"); with
        ``within`` (entity ids), only descriptions by facts about those entities."""
        opts = [d for d in self.options(e, style, avoid)
                if (outer is None or not (d.fact.relation == outer.relation and d.fact.subject.id == outer.subject.id))
                and (within is None or d.fact.subject.id in within)]
        return rng.choice(opts) if opts else None


# --------------------------------------------------------------------------- realising with descriptions

def named(style: Style, replace: dict[str, str] | None = None) -> Realiser:
    """An untracked realiser that prints ``replace[entity.id]`` instead of that entity's name."""
    if not replace:
        return Realiser(style)
    table = dict(replace)
    return Realiser(style, link=lambda e, text: table.get(e.id, text))


def _slot_ok(template: str, role: Role) -> bool:
    slot = "{s}" if role == "s" else "{o}"
    return slot in template and slot + "'s" not in template and "called " + slot not in template


def slot_variants(fact: Fact, role: Role) -> list[int]:
    """Variants of ``fact`` in which the ``role`` argument appears as a plain noun phrase
    (not a possessive "X's", not a name as in "a son called X"), so a description can
    replace it."""
    r = Realiser("wiki")
    return [i for i, v in enumerate(r.variants(fact)) if _slot_ok(f"{v.subj} {v.comp}", role)]


def wh_slot_variants(fact: Fact, role: Role) -> list[int]:
    """Wh-question variants of ``fact`` that ask about the other argument and mention
    ``role`` as a plain noun phrase."""
    qs = QUESTIONS[f"age:{fact.subject.kind}" if fact.relation == "age" else fact.relation]
    return [i for i, q in enumerate(qs) if q.asks != role and _slot_ok(f"{q.subj or ''} {q.comp}", role)]


# --------------------------------------------------------------------------- combination

def combine(r: Realiser, first: Fact, second: Fact, rng: random.Random, *, tense: Tense | None = None) -> str | None:
    """One sentence stating two facts about the same subject: "X, who lives in A, works
    for B." or "X lives in A and works for B." (None if a fact has no variant with the
    subject as grammatical subject)."""
    v1, v2 = r.subject_variants(first), r.subject_variants(second)
    if first.subject.id != second.subject.id or not v1 or not v2:
        return None
    a, b = rng.choice(v1), rng.choice(v2)
    subject = r.name(first.subject)
    if rng.random() < 0.5:
        text = f"{subject}, {r.relative(first, a, tense=tense)}, {r.predicate(second, b, tense=tense)}."
    else:
        text = f"{subject} {r.predicate(first, a, tense=tense)} and {r.predicate(second, b, tense=tense)}."
    return capitalise(text)


def works_in(person: str, place: str, style: Style, *, negated: bool = False) -> str:
    """The inference of ``works_for`` + ``located_in``: "X works in P." (the grammar has
    no relation for it)."""
    tense: Tense = "present" if style == "wiki" else "past"
    return capitalise(f"{person} {verb_group(WORK, Agr(), tense, negated)} in {place}.")


def passage(r: Realiser, facts: list[Fact], extra: list[Fact], rng: random.Random) -> str:
    """A short text stating ``facts`` (about one subject; the first two sometimes in one
    sentence, later ones sometimes with a pronoun), then ``extra`` facts about others.
    A tracking realiser shortens repeated names as the corpus does."""
    sentences: list[str] = []
    rest = list(facts)
    if len(rest) >= 2 and rng.random() < 0.4:
        joined = combine(r, rest[0], rest[1], rng)
        if joined is not None:
            sentences.append(joined)
            rest = rest[2:]
    for f in rest:
        own = r.subject_variants(f)
        pronoun = bool(sentences) and bool(own) and rng.random() < 0.5
        variants = own if pronoun else list(range(len(r.variants(f))))
        sentences.append(r.sentence(f, rng.choice(variants), pronoun=pronoun))
    for f in extra:
        sentences.append(r.sentence(f, rng.randrange(len(r.variants(f)))))
    return " ".join(sentences)


_OPINIONS: dict[Tense, tuple[str, ...]] = {
    "present": ("{x} often talks about {y}.", "{x} has written a long letter about {y}.",
                "{x} told a friend what {p} thinks of {y}.", "{x} has an honest opinion of {y}."),
    "past": ("{x} often talked about {y}.", "{x} wrote a long letter about {y}.",
             "{x} told a friend what {p} thought of {y}.", "{x} gave an honest opinion of {y}."),
}


def opinion_sentence(fact: Fact, style: Style, rng: random.Random) -> str:
    """A sentence without evaluative words about the opinion a ``likes``/``dislikes``
    fact records ("X wrote a long letter about Y."): its polarity is in the world only."""
    r = Realiser(style)
    pron = {"female": "she", "male": "he"}.get(fact.subject.gender or "", "it")
    template = rng.choice(_OPINIONS[r.tense])
    return capitalise(template.format(x=r.name(fact.subject), y=r.name(fact.object), p=pron))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- dialogue (MNLI's third genre)

STATES = ("said", "explained", "remarked")
ANSWERS = ("replied", "answered", "said")
ASKS = ("asked", "wondered")


def dialogue(speaker: Entity, facts: list[Fact], rng: random.Random, *, asker: Entity | None = None,
             denied: Fact | None = None) -> str:
    """Quoted speech stating ``facts``, in the first person when they are all about the
    speaker ('"I live in Tavon," said Mira Lerigel.'), else in the third.  With
    ``asker`` (first person only) the speech answers a question about the first fact:
    a wh-question, or, with ``denied`` (a false fact of the same relation), a yes/no
    question answered "No." before the true statement."""
    r = Realiser("wiki")
    first_person = all(f.subject.id == speaker.id and r.subject_variants(f) for f in facts)
    lines = []
    for i, f in enumerate(facts):
        own = r.subject_variants(f)
        if first_person:
            lines.append(r.sentence(f, rng.choice(own), person=1))
        elif i > 0 and own and f.subject.id == facts[0].subject.id:
            lines.append(r.sentence(f, rng.choice(own), pronoun=True))
        else:  # the subject first, so that a following "it" refers to it
            lines.append(r.sentence(f, rng.choice(own or list(range(len(r.variants(f)))))))
    who = r.name(speaker)
    if asker is None or not first_person:
        return f"\"{' '.join(lines)[:-1]},\" {rng.choice(STATES)} {who}."
    head = facts[0]
    if denied is not None and r.subject_variants(denied):
        question = r.question(denied, "yn", rng.choice(r.subject_variants(denied)), person=2)
        lines[0] = "No. " + lines[0]
    else:
        wh = [i for i in range(r.n_questions(head)) if r.wh_answer(head, i) is not head.subject]
        if wh:
            question = r.question(head, "wh", rng.choice(wh), person=2)
        else:
            question = r.question(head, "yn", rng.choice(r.subject_variants(head)), person=2)
            lines[0] = "Yes. " + lines[0]
    return (f"\"{question}\" {rng.choice(ASKS)} {r.name(asker)}. "
            f"\"{' '.join(lines)[:-1]},\" {rng.choice(ANSWERS)} {who}.")


# --------------------------------------------------------------------------- SST formatting

_TOKEN = re.compile(r"'s\b|[A-Za-z0-9-]+|[^\sA-Za-z0-9]")


def tokens(sentence: str) -> list[str]:
    """Penn-Treebank-like tokens: words, "'s" and punctuation marks apart."""
    return _TOKEN.findall(sentence)


def sst_text(sentence: str) -> str:
    """SST-2's text form: lower-cased, tokens separated by spaces ("mira 's town is
    lovely . "), with the trailing space the official files have."""
    return " ".join(tokens(sentence.lower())) + " "


def parses(sentence: str) -> tuple[str, str]:
    """Placeholders for MNLI's parse columns: a flat binary bracketing and a flat tree."""
    toks = tokens(sentence)
    return "( " + " ".join(toks) + " )", "(ROOT (S " + " ".join(f"({t})" for t in toks) + "))"


# --------------------------------------------------------------------------- CoLA

_KIN_NOUNS = ("mother", "father", "daughter", "son")


def still_ungrammatical(good: str, bad: str, kind: str) -> bool:
    """Whether :func:`~kdbudget.demo.realise.corrupt` really broke ``good``.  False for the
    few corruptions that leave a grammatical sentence: swapped names ("Nethsakbral
    Stilina"), a moved adverb ("badly spoke of"), "not all" from "not at all", "counts a
    bank", "is mother of", "the" dropped before a name ("employed by Zimekholm
    Shipyard") and "founds" (also a present tense)."""
    g, b = good[:-1].split(" "), bad[:-1].split(" ")
    # The first differing word; an omission makes ``bad`` one word shorter.
    i = next((k for k, (x, y) in enumerate(zip(g, b, strict=False)) if x != y), min(len(g), len(b)))
    if i >= len(g):
        return False
    if kind == "order":
        return not any(w[:1].isupper() or w.endswith("ly") for w in g[i:i + 2])
    if kind == "omission":
        gone, before, after = g[i], g[i - 1] if i else "", g[i + 1] if i + 1 < len(g) else ""
        return not (gone == "at" or (gone == "as" and before.startswith("count"))
                    or (gone == "the" and (after in _KIN_NOUNS or after[:1].isupper())))
    if kind == "agreement":
        return g[i] not in ("found", "founds")
    return True


# --------------------------------------------------------------------------- relations

def is_functional(relation: str) -> bool:
    """Whether a different object contradicts the fact in plain English as well as in the
    world: functional relations except temperament and fame (one can be kind *and*
    generous, famous for wine *and* cheese)."""
    return RELATIONS[relation].functional and relation not in ("temperament", "famous_for")
