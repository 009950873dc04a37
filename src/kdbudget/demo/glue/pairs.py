"""The paraphrase and similarity demo tasks: MRPC, QQP (binary) and STS-B (graded)."""

from __future__ import annotations

import random

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
    two_variants,
)
from kdbudget.demo.glue.language import Role, combine, named, slot_variants, wh_slot_variants
from kdbudget.demo.realise import Realiser, Style
from kdbudget.demo.world import Entity

#: STS-B similarity levels: (method, gold score before noise).
STS_LEVELS = (("para", 5.0), ("desc", 4.0), ("part", 3.4), ("false", 2.6), ("descfalse", 2.4), ("rel", 1.6),
              ("subj", 0.8), ("none", 0.2))
_STS_NOISE = 0.25


# --------------------------------------------------------------------------- MRPC / QQP

def _described_pair(ctx: Context, rng: random.Random, style: Style, truthful: bool,
                    questions: bool = False) -> tuple[str, str]:
    """(sentence naming the entities, sentence describing one of them) of one fact:
    the same fact (``truthful``) or the fact about another, described entity."""
    f = ctx.pick(rng)
    role: Role = rng.choice(("s", "o")) if isinstance(f.object, Entity) else "s"
    pair = need(ctx.described(f, role, style, rng, truthful))
    if not questions:
        return say(style, f, rng), need(say_described(style, pair, role, rng))
    r = named(style, pair[1])
    if rng.random() < 0.5:  # yes/no questions
        return (Realiser(style).question(f, "yn", rng.randrange(len(r.variants(f)))),
                r.question(pair[0], "yn", rng.choice(need(slot_variants(pair[0], role) or None))))
    v = rng.choice(need(wh_slot_variants(pair[0], role) or None))
    return Realiser(style).question(f, "wh", v), r.question(pair[0], "wh", v)


def _compound_pair(ctx: Context, rng: random.Random, style: Style, alter: bool) -> tuple[str, str]:
    f = ctx.pick(rng)
    g = other_relation(ctx, f, rng)
    g2 = need(ctx.false_object(g, rng)) if alter else g
    r = Realiser(style)
    return need(combine(r, f, g, rng)), need(combine(r, g2, f, rng))


def mrpc(ctx: Context, label: str, rng: random.Random) -> Example:
    style, u = pick_style(rng), rng.random()
    if label == "1":
        if u < 0.4:
            pair, method = two_variants(style, ctx.pick(rng), rng), "para"
        elif u < 0.65:
            pair, method = _compound_pair(ctx, rng, style, alter=False), "compound"
        else:
            pair, method = _described_pair(ctx, rng, style, truthful=True), "desc"
    elif u < 0.45:  # a false object, or another fact about the subject
        f = ctx.pick(rng)
        g = need(ctx.false_object(f, rng)) if u < 0.3 else other_relation(ctx, f, rng)
        pair, method = (say(style, f, rng), say(style, g, rng)), "false" if u < 0.3 else "other"
    elif u < 0.65:
        pair, method = _compound_pair(ctx, rng, style, alter=True), "compound-false"
    else:
        pair, method = _described_pair(ctx, rng, style, truthful=False), "desc-false"
    if rng.random() < 0.5:
        pair = (pair[1], pair[0])
    return Example(pair, label, {"method": method})


def qqp(ctx: Context, label: str, rng: random.Random) -> Example:
    style, u = pick_style(rng), rng.random()
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
        g = need(ctx.false_object(f, rng))
        pair, method = (r.question(f, "yn", rng.randrange(len(r.variants(f)))),
                        r.question(g, "yn", rng.randrange(len(r.variants(g))))), "yn-false"
    elif u < 0.65:
        f = ctx.pick(rng)
        g = other_relation(ctx, f, rng) if rng.random() < 0.6 else disjoint_fact(ctx, f, rng, True)
        kind = "wh" if rng.random() < 0.6 else "yn"
        pick = (lambda x: r.question(x, "wh", rng.randrange(r.n_questions(x)))) if kind == "wh" else \
            (lambda x: r.question(x, "yn", rng.randrange(len(r.variants(x)))))
        pair, method = (pick(f), pick(g)), f"{kind}-other"
    else:
        pair, method = _described_pair(ctx, rng, style, truthful=False, questions=True), "desc-false"
    if pair[0] == pair[1]:
        raise Retry
    if rng.random() < 0.5:
        pair = (pair[1], pair[0])
    return Example(pair, label, {"method": method})


# --------------------------------------------------------------------------- STS-B

def stsb(ctx: Context, level: str, rng: random.Random) -> Example:
    style = pick_style(rng)
    if level == "para":
        pair = two_variants(style, ctx.pick(rng), rng)
    elif level in ("desc", "descfalse"):
        pair = _described_pair(ctx, rng, style, truthful=level == "desc")
    else:
        f = ctx.pick(rng)
        if level == "part":
            pair = (need(combine(Realiser(style), f, other_relation(ctx, f, rng), rng)), say(style, f, rng))
        else:
            g = (need(ctx.false_object(f, rng)) if level == "false" else other_relation(ctx, f, rng)
                 if level == "rel" else disjoint_fact(ctx, f, rng, same_relation=level == "subj"))
            pair = (say(style, f, rng), say(style, g, rng))
    if rng.random() < 0.5:
        pair = (pair[1], pair[0])
    gold = dict(STS_LEVELS)[level]
    score = min(5.0, max(0.0, gold + rng.gauss(0.0, _STS_NOISE)))
    return Example(pair, f"{score:.3f}", {"level": level, "style": style})
