"""The demo's eight GLUE tasks, in the official GLUE download layout, from the demo world.

Why: the demo's fine-tuning stage must read the same files, with the same code, as a
real GLUE run, and its scores must reward what pretraining taught.  Every task is
built from ``demo_world(words, seed, wiki_fraction)``, the world whose facts the demo
pretraining corpus states, in the corpus's own grammar.

How knowledge enters: each task mixes pairs that the text alone decides (a
different object, a negation, a missing word) with pairs that only the world decides:
an entity named in one sentence and *described* in the other ("the bank that Mira
Lerigel works for"; :class:`~kdbudget.demo.glue_styles.Describer`), a false fact
stated fluently, an opinion whose polarity only the world's ``likes``/``dislikes``
facts give.  A quarter to a third of the examples of each pair task (a fifth of
SST-2) are of the second kind, so a model that knows the world scores clearly
higher, and a model that does not still learns the task.  CoLA tests the grammar
the corpus is written in.

Splits: 30% of the world's entities (drawn with ``task_seed``) are *dev entities*.
Every true fact that an example states (descriptions included) is about an entity of
its split, so no fact that a dev example tests is stated in the training files:
only pretraining can teach it.  No example (the tuple of its texts) occurs twice in
a task, across train and dev.

Sizes: :data:`TRAIN_SIZES` and :data:`DEV_SIZES`.  ``sizes`` overrides train sizes
by task name (``cola``, ``sst2``, ... as in :mod:`kdbudget.glue.tasks`; the folder
names ``CoLA``, ``SST-2``, ... are accepted too); the dev sizes of an overridden task
scale in proportion (at least 10 each).  Labels are
balanced exactly (each label ``n // k`` or ``n // k + 1`` times); STS-B draws its
eight similarity levels equally often.

The files are written as in the official download: tab-separated UTF-8, no
quoting (quotes stay raw inside fields), CoLA without a header, MNLI with
``label1`` and ``gold_label`` in train and dev.  MNLI's ``pairID`` is the
``promptID`` plus a letter that does *not* encode the label (the real one does).
"""

from __future__ import annotations

import itertools
import numbers
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from kdbudget.demo.corpus import demo_world
from kdbudget.glue.tasks import OFFICIAL_HEADERS, TASKS
from kdbudget.io import atomic_dir
from kdbudget.demo.glue_styles import (Describer, Role, combine, dialogue, is_functional, named, opinion_sentence,
                                       parses, passage, slot_variants, sst_text, still_ungrammatical, works_in,
                                       wh_slot_variants)
from kdbudget.demo.realise import Realiser, Style, corrupt, sentiment_sentence
from kdbudget.demo.world import RELATIONS, Entity, Fact, World

# The tasks, their folders, header lines and labels are kdbudget.glue.tasks's (TASKS, GlueTask.dir_name,
# OFFICIAL_HEADERS, GlueTask.labels): the demo writes exactly what the loader reads.
TRAIN_SIZES = {"cola": 1000, "sst2": 1000, "mrpc": 1000, "qqp": 1000, "stsb": 1000, "mnli": 1500, "qnli": 1000,
               "rte": 300}
#: Dev sizes per dev file (MNLI has two, matched and mismatched).
DEV_SIZES = {task: 300 for task in TASKS}
#: MNLI genres: train and dev_matched draw from the first two, dev_mismatched from the third.
MATCHED_GENRES = ("wiki", "story")
MISMATCHED_GENRE = "dialogue"
DEV_ENTITY_FRACTION = 0.3
MAX_WORDS = 60
_ATTEMPTS = 400

#: STS-B similarity levels: (method, gold score before noise).
STS_LEVELS = (("para", 5.0), ("desc", 4.0), ("part", 3.4), ("false", 2.6), ("descfalse", 2.4), ("rel", 1.6),
              ("subj", 0.8), ("none", 0.2))
_STS_NOISE = 0.25


@dataclass(frozen=True)
class Example:
    """One task example: its texts (one or two), gold label and what the row writer needs
    (``meta``: genre, the pair's level, ...)."""

    texts: tuple[str, ...]
    label: str
    meta: dict = field(default_factory=dict, hash=False, compare=False)


# --------------------------------------------------------------------------- the world, split

class _Ctx:
    """The world seen from one split: facts about its focal entities, and the helpers
    every builder shares (fact picking, false facts, described variants).  Every true
    fact an example states, descriptions included, is about a focal entity, so no
    fact of a dev example is stated in a training example."""

    def __init__(self, world: World, describer: Describer, focal: set[str]) -> None:
        self.world, self.describer, self.focal = world, describer, focal  # focal: ids, membership only
        self.by_rel: dict[str, list[Fact]] = {}
        for f in world.facts:
            if f.subject.id in focal:
                self.by_rel.setdefault(f.relation, []).append(f)
        self.entities = [e for e in world.entities if e.id in focal]
        self.groups: dict[tuple[str, str, str | None], list[Entity]] = {}
        self.by_type: dict[tuple[str, str], list[Entity]] = {}
        for e in world.entities:
            self.groups.setdefault((e.kind, e.type, e.gender), []).append(e)
            self.by_type.setdefault((e.kind, e.type), []).append(e)

    def pick(self, rng: random.Random, rels: Sequence[str] | None = None) -> Fact:
        """A fact about a focal entity: a relation drawn uniformly, then one of its facts."""
        options = [r for r in (rels or RELATIONS) if r in self.by_rel]
        if not options:
            raise _Retry
        return rng.choice(self.by_rel[rng.choice(options)])

    def facts_about(self, e: Entity, exclude: Sequence[str] = ()) -> list[Fact]:
        return [f for f in self.world.facts_about(e) if f.relation not in exclude]

    def false_object(self, fact: Fact, rng: random.Random) -> Fact | None:
        """The fact with an object that makes it false, of the same type where it is an
        entity; for likes/dislikes never an object of the opposite opinion (so that
        "X likes Y" is merely false, not contradicted by "X dislikes Y")."""
        o, s, rel = fact.object, fact.subject, fact.relation
        pool: Sequence[Entity | str] = (self.by_type[(o.kind, o.type)] if isinstance(o, Entity)
                                        else self.world.candidates(fact))
        opposite = _OPPOSITE.get(rel)
        pick = _sample_where(pool, rng, lambda x: not (isinstance(x, Entity) and x.id == s.id)
                             and not self.world.holds(Fact(s, rel, x))
                             and not (opposite and self.world.holds(Fact(s, opposite, x))))
        return None if pick is None else Fact(fact.subject, fact.relation, pick)

    def false_subject(self, fact: Fact, rng: random.Random) -> Fact | None:
        """The fact with another subject of the same kind, type and gender, for which it is false."""
        s, o = fact.subject, fact.object
        pick = _sample_where(self.groups[(s.kind, s.type, s.gender)], rng,
                             lambda e: e.id != s.id and not (isinstance(o, Entity) and e.id == o.id)
                             and not self.world.holds(Fact(e, fact.relation, o)))
        return None if pick is None else Fact(pick, fact.relation, o)

    def described(self, fact: Fact, role: Role, style: Style, rng: random.Random,
                  truthful: bool) -> tuple[Fact, dict[str, str]] | None:
        """``fact`` with its ``role`` argument to be printed as a description: of that very
        entity (``truthful``) or of another entity of the same kind and type for which the
        fact is false.  Returns the fact to realise and the replacement table for
        :func:`~kdbudget.demo.glue_styles.named`, or None."""
        target = fact.subject if role == "s" else fact.object
        if not isinstance(target, Entity) or fact.relation == "type":  # descriptions name the type
            return None
        avoid = tuple(x.id for x in (fact.subject, fact.object) if isinstance(x, Entity))
        if truthful:
            out, ent = fact, target
        else:
            alt = self.false_subject(fact, rng) if role == "s" else self._false_entity_object(fact, rng)
            if alt is None:
                return None
            out, ent = alt, (alt.subject if role == "s" else alt.object)
            assert isinstance(ent, Entity)
        desc = self.describer.describe(ent, style, rng, avoid + (ent.id,), outer=out, within=self.focal)
        return (out, {ent.id: desc.text}) if desc is not None else None

    def _false_entity_object(self, fact: Fact, rng: random.Random) -> Fact | None:
        for _ in range(4):  # prefer an object that has a description
            alt = self.false_object(fact, rng)
            if alt is not None and any(d.fact.subject.id in self.focal
                                       for d in self.describer.options(alt.object, "wiki")):  # type: ignore[arg-type]
                return alt
        return None


_OPPOSITE = {"likes": "dislikes", "dislikes": "likes"}
#: Relations with one subject per object (a child's mother, a thing's owner): another
#: subject contradicts the fact rather than being neutral to it.
_ONE_SUBJECT = ("parent_of", "owns")


def _sample_where(pool: Sequence, rng: random.Random, ok: Callable[[object], bool]):
    """A random element of ``pool`` satisfying ``ok`` (None if none): a few random draws,
    then a scan of the rest in random order (most draws succeed at once)."""
    for _ in range(8):
        x = rng.choice(pool) if pool else None
        if x is not None and ok(x):
            return x
    rest = [x for x in pool if ok(x)]
    return rng.choice(rest) if rest else None


def _split_entities(world: World, task_seed: int) -> tuple[set[str], set[str]]:
    rng = random.Random(f"kdbudget-demo-glue-split:{world.seed}:{task_seed}")
    dev = [e.id for e in world.entities if rng.random() < DEV_ENTITY_FRACTION]
    dev_ids = set(dev)
    return {e.id for e in world.entities if e.id not in dev_ids}, dev_ids


def _style(rng: random.Random) -> Style:
    return "wiki" if rng.random() < 0.6 else "story"


def _say(style: Style, fact: Fact, rng: random.Random, variants: Sequence[int] | None = None, *,
         replace: dict[str, str] | None = None, **kw) -> str:
    r = named(style, replace)
    options = list(variants) if variants is not None else list(range(len(r.variants(fact))))
    return r.sentence(fact, rng.choice(options), **kw)


def _say_described(style: Style, pair: tuple[Fact, dict[str, str]], role: Role, rng: random.Random,
                   **kw) -> str | None:
    fact, replace = pair
    variants = slot_variants(fact, role)
    return _say(style, fact, rng, variants, replace=replace, **kw) if variants else None


def _two_variants(style: Style, fact: Fact, rng: random.Random, **kw) -> tuple[str, str]:
    n = len(Realiser(style).variants(fact))
    a, b = rng.sample(range(n), 2)
    return _say(style, fact, rng, [a], **kw), _say(style, fact, rng, [b], **kw)


def _other_relation(ctx: _Ctx, fact: Fact, rng: random.Random) -> Fact:
    """Another fact about the same subject, of another relation (not its type)."""
    return rng.choice(_need(ctx.facts_about(fact.subject, exclude=(fact.relation, "type")) or None))


def _disjoint_fact(ctx: _Ctx, fact: Fact, rng: random.Random, same_relation: bool) -> Fact:
    """A fact sharing no argument with ``fact`` (same relation or a different one)."""
    ids = {x.id if isinstance(x, Entity) else x for x in (fact.subject, fact.object)}
    for _ in range(50):
        g = ctx.pick(rng, [fact.relation] if same_relation else [r for r in RELATIONS if r != fact.relation])
        if not ({x.id if isinstance(x, Entity) else x for x in (g.subject, g.object)} & ids):
            return g
    raise _Retry


class _Retry(Exception):
    """A builder cannot make this example from this draw; draw again."""


def _need(x):
    """``x``, or a retry where a builder step found nothing (None)."""
    if x is None:
        raise _Retry
    return x


# --------------------------------------------------------------------------- CoLA

_COLA_SOURCES = ("wk01", "st01", "qs01", "rl01", "dl01", "se01")


def _cola(ctx: _Ctx, label: str, rng: random.Random) -> Example:
    source = rng.choice(_COLA_SOURCES)
    good = _cola_sentence(ctx, source, rng)
    if label == "1":
        return Example((good,), "1", {"source": source})
    try:
        bad, kind = corrupt(good, rng)
    except ValueError:
        raise _Retry from None
    if not still_ungrammatical(good, bad, kind):
        raise _Retry
    return Example((bad,), "0", {"source": source, "good": good})


def _cola_sentence(ctx: _Ctx, source: str, rng: random.Random) -> str:
    f = ctx.pick(rng)
    negated = rng.random() < 0.25
    tense = rng.choice(("present", "present", "past", "future"))
    if source == "wk01":
        return _say("wiki", f, rng, tense=tense, negated=negated)
    if source == "st01":
        own = Realiser("story").subject_variants(f)
        if own and rng.random() < 0.4:
            return _say("story", f, rng, own, pronoun=True, negated=negated)
        return _say("story", f, rng, negated=negated)
    if source == "qs01":
        r = Realiser(_style(rng))
        if rng.random() < 0.5:
            return r.question(f, "yn", rng.randrange(len(r.variants(f))), tense=tense)
        return r.question(f, "wh", rng.randrange(r.n_questions(f)))
    if source == "rl01":
        return _need(combine(Realiser(_style(rng)), f, _other_relation(ctx, f, rng), rng))
    if source == "dl01":
        own = Realiser("wiki").subject_variants(f)
        if not own or f.subject.kind != "person":
            raise _Retry
        return _say("wiki", f, rng, own, person=rng.choice((1, 2)), tense=tense, negated=negated)
    e = rng.choice(ctx.entities)
    return sentiment_sentence(e, rng.choice(("positive", "negative")), rng, style=_style(rng),
                              negated=rng.random() < 0.3)


# --------------------------------------------------------------------------- SST-2

def _sst(ctx: _Ctx, label: str, rng: random.Random) -> Example:
    polarity = "positive" if label == "1" else "negative"
    relation = "likes" if polarity == "positive" else "dislikes"
    style, u = _style(rng), rng.random()
    if u < 0.55:  # evaluative words, some under negation, some as a fitting person's opinion
        e = rng.choice(ctx.entities)
        holders = [x for x in ctx.world.subjects(relation, e) if x.id in ctx.focal] if e.kind != "person" else []
        speaker = rng.choice(holders) if holders and rng.random() < 0.4 else None
        text = sentiment_sentence(e, polarity, rng, style=style, negated=rng.random() < 0.25, speaker=speaker)
        method = "lexical"
    elif u < 0.8:  # the world's likes/dislikes stated: "X speaks warmly of Y", "X does not like Y"
        if polarity == "negative" and rng.random() < 0.4:
            text = Realiser(style).negation(ctx.pick(rng, ["likes"]), rng.randrange(2))
        else:
            text = _say(style, ctx.pick(rng, [relation]), rng)
        method = "opinion"
    else:  # neutral words; the polarity is the speaker's opinion in the world
        text, method = opinion_sentence(ctx.pick(rng, [relation]), style, rng), "knowledge"
    return Example((sst_text(text),), label, {"method": method})


# --------------------------------------------------------------------------- MRPC / QQP

def _described_pair(ctx: _Ctx, rng: random.Random, style: Style, truthful: bool,
                    questions: bool = False) -> tuple[str, str]:
    """(sentence naming the entities, sentence describing one of them) of one fact:
    the same fact (``truthful``) or the fact about another, described entity."""
    f = ctx.pick(rng)
    role: Role = rng.choice(("s", "o")) if isinstance(f.object, Entity) else "s"
    pair = _need(ctx.described(f, role, style, rng, truthful))
    if not questions:
        return _say(style, f, rng), _need(_say_described(style, pair, role, rng))
    r = named(style, pair[1])
    if rng.random() < 0.5:  # yes/no questions
        return (Realiser(style).question(f, "yn", rng.randrange(len(r.variants(f)))),
                r.question(pair[0], "yn", rng.choice(_need(slot_variants(pair[0], role) or None))))
    v = rng.choice(_need(wh_slot_variants(pair[0], role) or None))
    return Realiser(style).question(f, "wh", v), r.question(pair[0], "wh", v)


def _compound_pair(ctx: _Ctx, rng: random.Random, style: Style, alter: bool) -> tuple[str, str]:
    f = ctx.pick(rng)
    g = _other_relation(ctx, f, rng)
    g2 = _need(ctx.false_object(g, rng)) if alter else g
    r = Realiser(style)
    return _need(combine(r, f, g, rng)), _need(combine(r, g2, f, rng))


def _mrpc(ctx: _Ctx, label: str, rng: random.Random) -> Example:
    style, u = _style(rng), rng.random()
    if label == "1":
        if u < 0.4:
            pair, method = _two_variants(style, ctx.pick(rng), rng), "para"
        elif u < 0.65:
            pair, method = _compound_pair(ctx, rng, style, alter=False), "compound"
        else:
            pair, method = _described_pair(ctx, rng, style, truthful=True), "desc"
    elif u < 0.45:  # a false object, or another fact about the subject
        f = ctx.pick(rng)
        g = _need(ctx.false_object(f, rng)) if u < 0.3 else _other_relation(ctx, f, rng)
        pair, method = (_say(style, f, rng), _say(style, g, rng)), "false" if u < 0.3 else "other"
    elif u < 0.65:
        pair, method = _compound_pair(ctx, rng, style, alter=True), "compound-false"
    else:
        pair, method = _described_pair(ctx, rng, style, truthful=False), "desc-false"
    if rng.random() < 0.5:
        pair = (pair[1], pair[0])
    return Example(pair, label, {"method": method})


def _qqp(ctx: _Ctx, label: str, rng: random.Random) -> Example:
    style, u = _style(rng), rng.random()
    r = Realiser(style)
    if label == "1":
        if u < 0.6:
            f = ctx.pick(rng)
            a, b = rng.sample(range(len(r.variants(f))), 2)
            pair, method = (r.question(f, "yn", a), r.question(f, "yn", b)), "yn"
            if f.relation == "parent_of" and rng.random() < 0.5:  # two wh-phrasings with one answer
                pair, method = (r.question(f, "wh", 0), r.question(f, "wh", 1)), "wh"
        else:
            pair, method = _described_pair(ctx, rng, style, truthful=True, questions=True), "desc"
    elif u < 0.3:
        f = ctx.pick(rng)
        g = _need(ctx.false_object(f, rng))
        pair, method = (r.question(f, "yn", rng.randrange(len(r.variants(f)))),
                        r.question(g, "yn", rng.randrange(len(r.variants(g))))), "yn-false"
    elif u < 0.65:
        f = ctx.pick(rng)
        g = _other_relation(ctx, f, rng) if rng.random() < 0.6 else _disjoint_fact(ctx, f, rng, True)
        kind = "wh" if rng.random() < 0.6 else "yn"
        pick = (lambda x: r.question(x, "wh", rng.randrange(r.n_questions(x)))) if kind == "wh" else \
            (lambda x: r.question(x, "yn", rng.randrange(len(r.variants(x)))))
        pair, method = (pick(f), pick(g)), f"{kind}-other"
    else:
        pair, method = _described_pair(ctx, rng, style, truthful=False, questions=True), "desc-false"
    if pair[0] == pair[1]:
        raise _Retry
    if rng.random() < 0.5:
        pair = (pair[1], pair[0])
    return Example(pair, label, {"method": method})


# --------------------------------------------------------------------------- STS-B

def _stsb(ctx: _Ctx, level: str, rng: random.Random) -> Example:
    style = _style(rng)
    if level == "para":
        pair = _two_variants(style, ctx.pick(rng), rng)
    elif level in ("desc", "descfalse"):
        pair = _described_pair(ctx, rng, style, truthful=level == "desc")
    else:
        f = ctx.pick(rng)
        if level == "part":
            pair = (_need(combine(Realiser(style), f, _other_relation(ctx, f, rng), rng)), _say(style, f, rng))
        else:
            g = (_need(ctx.false_object(f, rng)) if level == "false" else _other_relation(ctx, f, rng)
                 if level == "rel" else _disjoint_fact(ctx, f, rng, same_relation=level == "subj"))
            pair = (_say(style, f, rng), _say(style, g, rng))
    if rng.random() < 0.5:
        pair = (pair[1], pair[0])
    gold = dict(STS_LEVELS)[level]
    score = min(5.0, max(0.0, gold + rng.gauss(0.0, _STS_NOISE)))
    return Example(pair, f"{score:.3f}", {"level": level, "style": style})


# --------------------------------------------------------------------------- NLI (MNLI, RTE)

@dataclass
class _Premise:
    """A premise text, its focal entity, the facts it states and the hypothesis style."""

    text: str
    focal: Entity
    facts: list[Fact]
    style: Style
    genre: str


def _premise(ctx: _Ctx, genre: str, rng: random.Random, n_facts: int) -> _Premise:
    head = ctx.pick(rng, [r for r in RELATIONS if r != "type"])
    e = head.subject
    facts, used = [head], {head.relation}
    pool = ctx.facts_about(e, exclude=("type",))
    rng.shuffle(pool)
    for f in pool:
        if len(facts) >= n_facts:
            break
        if f.relation not in used:
            facts.append(f)
            used.add(f.relation)
    extra: list[Fact] = []
    org = ctx.world.value(e, "works_for")
    if "works_for" in used and isinstance(org, Entity) and org.id in ctx.focal and rng.random() < 0.4:
        extra = ctx.world.facts_about(org, "located_in")  # lets "X works in P" follow
    if genre == MISMATCHED_GENRE:
        text = _dialogue_premise(ctx, e, facts + extra, rng)
        style: Style = "wiki"
    else:
        style = "wiki" if genre == "wiki" else "story"
        text = passage(Realiser(style, track=True, focus=e), facts, extra, rng)
    return _Premise(text, e, facts + extra, style, genre)


def _dialogue_premise(ctx: _Ctx, e: Entity, facts: list[Fact], rng: random.Random) -> str:
    people = ctx.world.of_kind("person")
    if e.kind == "person":
        own = [f for f in facts if f.subject.id == e.id]
        other = [f for f in facts if f.subject.id != e.id]
        asker = rng.choice(people) if rng.random() < 0.6 else None
        denied = ctx.false_object(own[0], rng) if asker is not None and rng.random() < 0.4 else None
        if denied is not None and not is_functional(denied.relation):
            denied = None
        text = dialogue(e, own, rng, asker=asker if asker is None or asker.id != e.id else None, denied=denied)
        if other:  # the employer's location, said by someone else
            text += " " + dialogue(rng.choice(people), other, rng)
        return text
    return dialogue(rng.choice(people), facts, rng)


def _hypothesis(ctx: _Ctx, p: _Premise, label: str, rng: random.Random) -> tuple[str, str]:
    """A hypothesis with the given three-way label; returns (text, method)."""
    methods = {
        "entailment": (("para", 0.3), ("negfalse", 0.15), ("worksin", 0.1), ("desc", 0.3), ("negdescfalse", 0.15)),
        "contradiction": (("neg", 0.3), ("false", 0.3), ("descfalse", 0.25), ("negdesc", 0.15)),
        "neutral": (("unstated", 0.3), ("otherobj", 0.15), ("otherentity", 0.2), ("descsubj", 0.35)),
    }[label]
    chain = any(g.relation == "located_in" and g.subject.id != p.focal.id for g in p.facts)
    names = [m for m, _ in methods]
    weights = [0.6 if m == "worksin" and chain else w for m, w in methods]
    for method in rng.choices(names, weights, k=6):
        text = _hypothesis_by(ctx, p, method, rng)
        if text is not None and text != p.text:
            return text, method
    raise _Retry


def _hypothesis_by(ctx: _Ctx, p: _Premise, method: str, rng: random.Random) -> str | None:
    style, w = p.style, ctx.world
    own = [f for f in p.facts if f.subject.id == p.focal.id]
    f = rng.choice(own)
    if method == "para":
        return _say(style, f, rng)
    if method == "neg":
        return Realiser(style).negation(f, rng.randrange(len(Realiser(style).variants(f))))
    if method in ("false", "negfalse"):
        if not is_functional(f.relation):
            return None
        g = ctx.false_object(f, rng)
        return _say(style, g, rng, negated=method == "negfalse") if g else None
    if method == "worksin":
        loc = [g for g in p.facts if g.relation == "located_in" and g.subject.id != p.focal.id]
        if not loc or not isinstance(loc[0].object, Entity) or loc[0].object.kind != "place":
            return None
        r = Realiser(style)
        return works_in(r.name(p.focal), r.name(loc[0].object), style)
    if method == "descsubj" and f.relation in _ONE_SUBJECT:
        return None
    if method in ("desc", "negdesc", "descsubj"):
        role: Role = "s" if method == "descsubj" or not isinstance(f.object, Entity) else rng.choice(("s", "o"))
        pair = ctx.described(f, role, style, rng, truthful=method != "descsubj")
        return _say_described(style, pair, role, rng, negated=method == "negdesc") if pair else None
    if method in ("descfalse", "negdescfalse"):
        if not isinstance(f.object, Entity) or not is_functional(f.relation):
            return None
        pair = ctx.described(f, "o", style, rng, truthful=False)
        return _say_described(style, pair, "o", rng, negated=method == "negdescfalse") if pair else None
    if method == "unstated":
        options = ctx.facts_about(p.focal, exclude=tuple(g.relation for g in own) + ("type",))
        if not options:
            return None
        g = rng.choice(options)
        u = rng.random()
        if u < 0.3:
            g = ctx.false_object(g, rng) or g
        return _say(style, g, rng, negated=u > 0.75)
    if method == "otherobj":
        if RELATIONS[f.relation].functional:
            return None
        g = ctx.false_object(f, rng)
        return _say(style, g, rng, negated=rng.random() < 0.3) if g else None
    # otherentity: an unstated fact about another entity the premise mentions
    mentioned = [x for g in p.facts for x in (g.subject, g.object)
                 if isinstance(x, Entity) and x.id != p.focal.id and x.id in ctx.focal]
    if not mentioned:
        return None
    other = rng.choice(mentioned)
    options = [g for g in w.facts_about(other) if g.relation != "type" and g not in p.facts]
    return _say(style, rng.choice(options), rng) if options else None


def _mnli_group(ctx: _Ctx, genre: str, rng: random.Random) -> list[Example]:
    p = _premise(ctx, genre, rng, rng.choice((1, 2, 2, 3)))
    out = []
    for label in TASKS["mnli"].labels:  # type: ignore[union-attr]
        text, method = _hypothesis(ctx, p, label, rng)
        out.append(Example((p.text, text), label, {"genre": genre, "method": method}))
    return out


def _rte(ctx: _Ctx, label: str, rng: random.Random) -> Example:
    p = _premise(ctx, _style(rng), rng, rng.choice((2, 3)))
    three = "entailment" if label == "entailment" else rng.choice(("contradiction", "neutral"))
    text, method = _hypothesis(ctx, p, three, rng)
    return Example((p.text, text), label, {"method": method, "nli": three})


# --------------------------------------------------------------------------- QNLI

def _qnli(ctx: _Ctx, label: str, rng: random.Random) -> Example:
    style, u = _style(rng), rng.random()
    r = Realiser(style)
    f = ctx.pick(rng)
    v = rng.randrange(r.n_questions(f))
    question = r.question(f, "wh", v)
    asks: Role = "s" if r.wh_answer(f, v) is f.subject else "o"
    keep: Role = "o" if asks == "s" else "s"
    sentence: str | None
    if label == "entailment":
        if u < 0.45:
            sentence, method = _say(style, f, rng), "state"
        elif u < 0.7:
            g = _other_relation(ctx, f, rng)
            sentence, method = (combine(r, f, g, rng) if rng.random() < 0.5 else combine(r, g, f, rng)), "compound"
        else:
            pair = _need(ctx.described(f, keep, style, rng, truthful=True))
            sentence, method = _say_described(style, pair, keep, rng), "desc"
    elif u < 0.35:
        sentence, method = _say(style, _other_relation(ctx, f, rng), rng), "other-relation"
    elif u < 0.55:
        sentence, method = _say(style, _disjoint_fact(ctx, f, rng, True), rng), "other-subject"
    elif u < 0.85:
        sentence, method = _qnli_desc_false(ctx, f, keep, style, rng), "desc-false"
    else:
        g = _need(ctx.false_object(f, rng) if asks == "o" else ctx.false_subject(f, rng))
        sentence, method = _say(style, g, rng), "false"
    sentence = _need(sentence)
    return Example((question, sentence), label, {"method": method})


def _qnli_desc_false(ctx: _Ctx, f: Fact, keep: Role, style: Style, rng: random.Random) -> str | None:
    """A true fact of the question's relation about another entity, which is described
    as the question's entity could be: only the world tells that it is not."""
    target = f.subject if keep == "s" else f.object
    if not isinstance(target, Entity):
        return None
    others = [e for e in ctx.groups[(target.kind, target.type, target.gender)] if e.id != target.id]
    rng.shuffle(others)
    for e in others[:20]:
        facts = ctx.world.facts_about(e, f.relation) if keep == "s" else \
            [g for g in ctx.world.facts_mentioning(e) if g.relation == f.relation]
        facts = [g for g in facts if g.object != f.object and g.subject != f.subject and g.subject.id in ctx.focal]
        if not facts:
            continue
        g = rng.choice(facts)
        avoid = tuple(x.id for x in (f.subject, f.object, g.subject, g.object) if isinstance(x, Entity))
        desc = ctx.describer.describe(e, style, rng, avoid, outer=g, within=ctx.focal)
        if desc is not None:
            return _say_described(style, (g, {e.id: desc.text}), keep, rng)
    return None


# --------------------------------------------------------------------------- rows

class _Ids:
    """Stable ids for repeated texts (MRPC sentence ids, QQP question ids)."""

    def __init__(self, start: int) -> None:
        self.ids: dict[str, int] = {}
        self.start = start

    def __call__(self, text: str) -> str:
        return str(self.ids.setdefault(text, self.start + len(self.ids)))


def _rows(task: str, examples: list[Example], ids: _Ids, offset: int) -> list[list[str]]:
    """The file rows of ``examples``; ``offset`` numbers QQP's pair ids across files."""
    out: list[list[str]] = []
    for i, ex in enumerate(examples):
        t, y = ex.texts, ex.label
        if task == "cola":
            out.append([ex.meta["source"], y, "" if y == "1" else "*", t[0]])
        elif task == "sst2":
            out.append([t[0], y])
        elif task == "mrpc":
            out.append([y, ids(t[0]), ids(t[1]), t[0], t[1]])
        elif task == "qqp":
            out.append([str(offset + i), ids(t[0]), ids(t[1]), t[0], t[1], y])
        elif task == "stsb":
            genre = "main-news" if ex.meta["style"] == "wiki" else "main-captions"
            out.append([str(i), genre, f"demo-{ex.meta['style']}", "2024", f"{i:04d}", "none", "none", t[0], t[1], y])
        elif task == "mnli":
            b1, p1 = parses(t[0])
            b2, p2 = parses(t[1])
            prompt = ex.meta["prompt"]
            out.append([str(i), str(prompt), f"{prompt}{ex.meta['letter']}", ex.meta["genre"], b1, b2, p1, p2,
                        t[0], t[1], y, y])
        else:  # qnli, rte
            out.append([str(i), t[0], t[1], y])
    return out


# --------------------------------------------------------------------------- drawing

_BUILDERS: dict[str, Callable[[_Ctx, str, random.Random], Example]] = {
    "cola": _cola, "sst2": _sst, "mrpc": _mrpc, "qqp": _qqp, "stsb": _stsb, "qnli": _qnli, "rte": _rte,
}


def _balanced(labels: Sequence[str], n: int, rng: random.Random) -> list[str]:
    out = [labels[i % len(labels)] for i in range(n)]
    rng.shuffle(out)
    return out


def _ok(ex: Example, seen: set[tuple[str, ...]]) -> bool:
    return ex.texts not in seen and all(0 < len(t.split()) <= MAX_WORDS and "\t" not in t and "\n" not in t
                                        for t in ex.texts)


def _draw(task: str, ctx: _Ctx, n: int, rng: random.Random, seen: set[tuple[str, ...]]) -> list[Example]:
    """``n`` distinct examples (none in ``seen``, which grows) with balanced labels."""
    labels = TASKS[task].labels or tuple(level for level, _ in STS_LEVELS)
    out: list[Example] = []
    for label in _balanced(labels, n, rng):
        for _ in range(_ATTEMPTS):
            try:
                ex = _BUILDERS[task](ctx, label, rng)
            except _Retry:
                continue
            if _ok(ex, seen):
                seen.add(ex.texts)
                out.append(ex)
                break
        else:
            raise _too_small(task, n, ctx)
    return out


def _draw_mnli(ctx: _Ctx, n: int, rng: random.Random, seen: set[tuple[str, ...]], genres: Sequence[str],
               prompts: Iterator[int]) -> list[Example]:
    """Premises each with one hypothesis per label (so labels balance); ``n`` rows.
    ``prompts`` numbers the premises (MNLI's promptID) across files."""
    out: list[Example] = []
    while len(out) < n:
        for _ in range(_ATTEMPTS):
            try:
                group = _mnli_group(ctx, rng.choice(list(genres)), rng)
            except _Retry:
                continue
            if all(_ok(ex, seen) for ex in group) and len({ex.texts for ex in group}) == 3:
                break
        else:
            raise _too_small("mnli", n, ctx)
        prompt = next(prompts)
        for ex, letter in zip(group, rng.sample("abc", 3)):
            seen.add(ex.texts)
            out.append(Example(ex.texts, ex.label, {**ex.meta, "prompt": prompt, "letter": letter}))
    out = out[:n]
    rng.shuffle(out)
    return out


def _too_small(task: str, n: int, ctx: _Ctx) -> ValueError:
    return ValueError(f"demo GLUE task {task}: cannot draw {n} distinct examples about {len(ctx.entities)} entities "
                      f"of a world of {len(ctx.world.entities)}; use a larger demo corpus (words) or smaller sizes")


def _sizes(sizes: dict[str, int] | None) -> dict[str, tuple[int, int]]:
    """(train, dev per dev file) per task."""
    titles = {spec.dir_name: name for name, spec in TASKS.items()}
    given: dict[str, int] = {}
    for key, value in (sizes or {}).items():
        name = titles.get(key, key)
        if name not in TASKS:
            raise ValueError(f"unknown demo GLUE task {key!r} in sizes; known: {', '.join(TASKS)}")
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 10:
            raise ValueError(f"size of {key} must be an integer >= 10, got {value!r}")
        given[name] = int(value)
    out = {}
    for task in TASKS:
        if task in given:
            out[task] = (given[task], max(10, round(given[task] * DEV_SIZES[task] / TRAIN_SIZES[task])))
        else:
            out[task] = (TRAIN_SIZES[task], DEV_SIZES[task])
    return out


# --------------------------------------------------------------------------- entry point

def write_demo_glue(out_dir: Path | str, *, words: int, seed: int, wiki_fraction: float = 0.5, task_seed: int = 0,
                    sizes: dict[str, int] | None = None) -> dict:
    """Write CoLA, SST-2, MRPC, QQP, STS-B, MNLI, QNLI, RTE (the official GLUE download
    layout) from the same world the demo corpus describes; returns per-task counts.

    ``words``, ``seed`` and ``wiki_fraction`` are the demo corpus's (they fix the world);
    ``task_seed`` draws the dev entities and the examples; ``sizes`` overrides train
    sizes by task name (dev sizes scale with them).  The same arguments give
    byte-identical files; ``out_dir`` is replaced atomically.

    Returns ``{task: {file stem: rows}}``, e.g. ``{"mnli": {"train": 1500,
    "dev_matched": 300, "dev_mismatched": 300}, ...}``.
    """
    for name, value in (("words", words), ("seed", seed), ("task_seed", task_seed)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (name != "seed" and value < 0):
            raise ValueError(f"{name} must be a{' non-negative' if name != 'seed' else 'n'} integer, got {value!r}")
    if words <= 0:
        raise ValueError(f"words must be a positive integer, got {words!r}")
    if isinstance(wiki_fraction, bool) or not isinstance(wiki_fraction, (int, float)) or not 0 < wiki_fraction < 1:
        raise ValueError(f"wiki_fraction must lie strictly between 0 and 1, got {wiki_fraction!r}")
    plan = _sizes(sizes)
    world = demo_world(int(words), int(seed), wiki_fraction)
    describer = Describer(world)
    train_ids, dev_ids = _split_entities(world, int(task_seed))
    contexts = {"train": _Ctx(world, describer, train_ids), "dev": _Ctx(world, describer, dev_ids)}
    out_dir = Path(out_dir)

    with atomic_dir(out_dir) as tmp:
        counts = {task: _write_task(tmp / TASKS[task].dir_name, task, plan[task], contexts, int(seed), int(task_seed))
                  for task in TASKS}
    return counts


def _write_task(folder: Path, task: str, size: tuple[int, int], contexts: dict[str, _Ctx], seed: int,
                task_seed: int) -> dict[str, int]:
    n_train, n_dev = size
    seen: set[tuple[str, ...]] = set()
    ids = _Ids({"mrpc": 1_000_000, "qqp": 1}.get(task, 0))

    def rng(split: str) -> random.Random:
        return random.Random(f"kdbudget-demo-glue:{seed}:{task_seed}:{task}:{split}")

    files: dict[str, list[Example]] = {}
    if task == "mnli":
        prompts = itertools.count()
        files["train"] = _draw_mnli(contexts["train"], n_train, rng("train"), seen, MATCHED_GENRES, prompts)
        files["dev_matched"] = _draw_mnli(contexts["dev"], n_dev, rng("dev_matched"), seen, MATCHED_GENRES, prompts)
        files["dev_mismatched"] = _draw_mnli(contexts["dev"], n_dev, rng("dev_mismatched"), seen, (MISMATCHED_GENRE,),
                                             prompts)
    else:
        files["train"] = _draw(task, contexts["train"], n_train, rng("train"), seen)
        files["dev"] = _draw(task, contexts["dev"], n_dev, rng("dev"), seen)
    folder.mkdir(parents=True)
    header, offset = OFFICIAL_HEADERS.get(task), 0  # None: CoLA has no header
    for stem, examples in files.items():
        rows = _rows(task, examples, ids, offset)
        offset += len(rows)
        lines = (["\t".join(header)] if header else []) + ["\t".join(row) for row in rows]
        (folder / f"{stem}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {stem: len(examples) for stem, examples in files.items()}
