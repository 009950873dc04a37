"""The inference demo tasks: MNLI (three genres), RTE (two-way) and QNLI (question and sentence)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from kdbudget.demo.glue.context import (
    Context,
    Example,
    Retry,
    disjoint_fact,
    need,
    other_relation,
    pick_style,
    say,
    say_described,
)
from kdbudget.demo.glue.language import Role, combine, dialogue, is_functional, passage, works_in
from kdbudget.demo.realise import Realiser, Style
from kdbudget.demo.world import RELATIONS, Entity, Fact
from kdbudget.glue.tasks import TASKS

#: MNLI genres: train and dev_matched draw from the first two, dev_mismatched from the third.
MATCHED_GENRES = ("wiki", "story")
MISMATCHED_GENRE = "dialogue"
#: Relations with one subject per object (a child's mother, a thing's owner): another
#: subject contradicts the fact rather than being neutral to it.
_ONE_SUBJECT = ("parent_of", "owns")


# --------------------------------------------------------------------------- NLI (MNLI, RTE)

@dataclass
class _Premise:
    """A premise text, its focal entity, the facts it states and the hypothesis style."""

    text: str
    focal: Entity
    facts: list[Fact]
    style: Style
    genre: str


def _premise(ctx: Context, genre: str, rng: random.Random, n_facts: int) -> _Premise:
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


def _dialogue_premise(ctx: Context, e: Entity, facts: list[Fact], rng: random.Random) -> str:
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


def _hypothesis(ctx: Context, p: _Premise, label: str, rng: random.Random) -> tuple[str, str]:
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
    raise Retry


def _hypothesis_by(ctx: Context, p: _Premise, method: str, rng: random.Random) -> str | None:
    style, w = p.style, ctx.world
    own = [f for f in p.facts if f.subject.id == p.focal.id]
    f = rng.choice(own)
    if method == "para":
        return say(style, f, rng)
    if method == "neg":
        return Realiser(style).negation(f, rng.randrange(len(Realiser(style).variants(f))))
    if method in ("false", "negfalse"):
        if not is_functional(f.relation):
            return None
        g = ctx.false_object(f, rng)
        return say(style, g, rng, negated=method == "negfalse") if g else None
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
        return say_described(style, pair, role, rng, negated=method == "negdesc") if pair else None
    if method in ("descfalse", "negdescfalse"):
        if not isinstance(f.object, Entity) or not is_functional(f.relation):
            return None
        pair = ctx.described(f, "o", style, rng, truthful=False)
        return say_described(style, pair, "o", rng, negated=method == "negdescfalse") if pair else None
    if method == "unstated":
        options = ctx.facts_about(p.focal, exclude=tuple(g.relation for g in own) + ("type",))
        if not options:
            return None
        g = rng.choice(options)
        u = rng.random()
        if u < 0.3:
            g = ctx.false_object(g, rng) or g
        return say(style, g, rng, negated=u > 0.75)
    if method == "otherobj":
        if RELATIONS[f.relation].functional:
            return None
        g = ctx.false_object(f, rng)
        return say(style, g, rng, negated=rng.random() < 0.3) if g else None
    # otherentity: an unstated fact about another entity the premise mentions
    mentioned = [x for g in p.facts for x in (g.subject, g.object)
                 if isinstance(x, Entity) and x.id != p.focal.id and x.id in ctx.focal]
    if not mentioned:
        return None
    other = rng.choice(mentioned)
    options = [g for g in w.facts_about(other) if g.relation != "type" and g not in p.facts]
    return say(style, rng.choice(options), rng) if options else None


def mnli_group(ctx: Context, genre: str, rng: random.Random) -> list[Example]:
    p = _premise(ctx, genre, rng, rng.choice((1, 2, 2, 3)))
    out = []
    for label in TASKS["mnli"].labels:  # type: ignore[union-attr]
        text, method = _hypothesis(ctx, p, label, rng)
        out.append(Example((p.text, text), label, {"genre": genre, "method": method}))
    return out


def rte(ctx: Context, label: str, rng: random.Random) -> Example:
    p = _premise(ctx, pick_style(rng), rng, rng.choice((2, 3)))
    three = "entailment" if label == "entailment" else rng.choice(("contradiction", "neutral"))
    text, method = _hypothesis(ctx, p, three, rng)
    return Example((p.text, text), label, {"method": method, "nli": three})


# --------------------------------------------------------------------------- QNLI

def qnli(ctx: Context, label: str, rng: random.Random) -> Example:
    style, u = pick_style(rng), rng.random()
    r = Realiser(style)
    f = ctx.pick(rng)
    v = rng.randrange(r.n_questions(f))
    question = r.question(f, "wh", v)
    asks: Role = "s" if r.wh_answer(f, v) is f.subject else "o"
    keep: Role = "o" if asks == "s" else "s"
    sentence: str | None
    if label == "entailment":
        if u < 0.45:
            sentence, method = say(style, f, rng), "state"
        elif u < 0.7:
            g = other_relation(ctx, f, rng)
            sentence, method = (combine(r, f, g, rng) if rng.random() < 0.5 else combine(r, g, f, rng)), "compound"
        else:
            pair = need(ctx.described(f, keep, style, rng, truthful=True))
            sentence, method = say_described(style, pair, keep, rng), "desc"
    elif u < 0.35:
        sentence, method = say(style, other_relation(ctx, f, rng), rng), "other-relation"
    elif u < 0.55:
        sentence, method = say(style, disjoint_fact(ctx, f, rng, True), rng), "other-subject"
    elif u < 0.85:
        sentence, method = _qnli_desc_false(ctx, f, keep, style, rng), "desc-false"
    else:
        g = need(ctx.false_object(f, rng) if asks == "o" else ctx.false_subject(f, rng))
        sentence, method = say(style, g, rng), "false"
    sentence = need(sentence)
    return Example((question, sentence), label, {"method": method})


def _qnli_desc_false(ctx: Context, f: Fact, keep: Role, style: Style, rng: random.Random) -> str | None:
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
            return say_described(style, (g, {e.id: desc.text}), keep, rng)
    return None
