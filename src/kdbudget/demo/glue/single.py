"""The single-sentence demo tasks: CoLA (acceptability) and SST-2 (sentiment)."""

from __future__ import annotations

import random

from kdbudget.demo.glue.context import Context, Example, Retry, need, other_relation, pick_style, say
from kdbudget.demo.glue.language import combine, opinion_sentence, sst_text, still_ungrammatical
from kdbudget.demo.realise import Realiser, corrupt, sentiment_sentence

# --------------------------------------------------------------------------- CoLA

_COLA_SOURCES = ("wk01", "st01", "qs01", "rl01", "dl01", "se01")


def cola(ctx: Context, label: str, rng: random.Random) -> Example:
    source = rng.choice(_COLA_SOURCES)
    good = _cola_sentence(ctx, source, rng)
    if label == "1":
        return Example((good,), "1", {"source": source})
    try:
        bad, kind = corrupt(good, rng)
    except ValueError:
        raise Retry from None
    if not still_ungrammatical(good, bad, kind):
        raise Retry
    return Example((bad,), "0", {"source": source, "good": good})


def _cola_sentence(ctx: Context, source: str, rng: random.Random) -> str:
    f = ctx.pick(rng)
    negated = rng.random() < 0.25
    tense = rng.choice(("present", "present", "past", "future"))
    if source == "wk01":
        return say("wiki", f, rng, tense=tense, negated=negated)
    if source == "st01":
        own = Realiser("story").subject_variants(f)
        if own and rng.random() < 0.4:
            return say("story", f, rng, own, pronoun=True, negated=negated)
        return say("story", f, rng, negated=negated)
    if source == "qs01":
        r = Realiser(pick_style(rng))
        if rng.random() < 0.5:
            return r.question(f, "yn", rng.randrange(len(r.variants(f))), tense=tense)
        return r.question(f, "wh", rng.randrange(r.n_questions(f)))
    if source == "rl01":
        return need(combine(Realiser(pick_style(rng)), f, other_relation(ctx, f, rng), rng))
    if source == "dl01":
        own = Realiser("wiki").subject_variants(f)
        if not own or f.subject.kind != "person":
            raise Retry
        return say("wiki", f, rng, own, person=rng.choice((1, 2)), tense=tense, negated=negated)
    e = rng.choice(ctx.entities)
    return sentiment_sentence(e, rng.choice(("positive", "negative")), rng, style=pick_style(rng),
                              negated=rng.random() < 0.3)


# --------------------------------------------------------------------------- SST-2

def sst2(ctx: Context, label: str, rng: random.Random) -> Example:
    polarity = "positive" if label == "1" else "negative"
    relation = "likes" if polarity == "positive" else "dislikes"
    style, u = pick_style(rng), rng.random()
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
            text = say(style, ctx.pick(rng, [relation]), rng)
        method = "opinion"
    else:  # neutral words; the polarity is the speaker's opinion in the world
        text, method = opinion_sentence(ctx.pick(rng, [relation]), style, rng), "knowledge"
    return Example((sst_text(text),), label, {"method": method})
