"""The world seen from one split of the demo GLUE tasks, and the helpers every task builder shares.

Why: every true fact that an example states, descriptions included, must be about an
entity of its split (train or dev), so that no fact a dev example tests is stated in a
training file. :class:`Context` holds one split's facts and draws only from them;
the builders of every task family (:mod:`.single`, :mod:`.pairs`, :mod:`.nli`) go
through it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kdbudget.demo.glue.language import Describer, Role, named, slot_variants
from kdbudget.demo.realise import Realiser, Style
from kdbudget.demo.world import RELATIONS, Entity, Fact, World

#: The share of the world's entities whose facts only the dev files state.
DEV_ENTITY_FRACTION = 0.3


@dataclass(frozen=True)
class Example:
    """One task example: its texts (one or two), gold label and what the row writer needs
    (``meta``: genre, the pair's level, ...)."""

    texts: tuple[str, ...]
    label: str
    meta: dict = field(default_factory=dict, hash=False, compare=False)


# --------------------------------------------------------------------------- the world, split

class Context:
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
            raise Retry
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
        :func:`~kdbudget.demo.glue.language.named`, or None."""
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


def _sample_where(pool: Sequence, rng: random.Random, ok: Callable[[object], bool]):
    """A random element of ``pool`` satisfying ``ok`` (None if none): a few random draws,
    then a scan of the rest in random order (most draws succeed at once)."""
    for _ in range(8):
        x = rng.choice(pool) if pool else None
        if x is not None and ok(x):
            return x
    rest = [x for x in pool if ok(x)]
    return rng.choice(rest) if rest else None


def split_entities(world: World, task_seed: int) -> tuple[set[str], set[str]]:
    rng = random.Random(f"kdbudget-demo-glue-split:{world.seed}:{task_seed}")
    dev = [e.id for e in world.entities if rng.random() < DEV_ENTITY_FRACTION]
    dev_ids = set(dev)
    return {e.id for e in world.entities if e.id not in dev_ids}, dev_ids


def pick_style(rng: random.Random) -> Style:
    return "wiki" if rng.random() < 0.6 else "story"


def say(style: Style, fact: Fact, rng: random.Random, variants: Sequence[int] | None = None, *,
         replace: dict[str, str] | None = None, **kw) -> str:
    r = named(style, replace)
    options = list(variants) if variants is not None else list(range(len(r.variants(fact))))
    return r.sentence(fact, rng.choice(options), **kw)


def say_described(style: Style, pair: tuple[Fact, dict[str, str]], role: Role, rng: random.Random,
                   **kw) -> str | None:
    fact, replace = pair
    variants = slot_variants(fact, role)
    return say(style, fact, rng, variants, replace=replace, **kw) if variants else None


def two_variants(style: Style, fact: Fact, rng: random.Random, **kw) -> tuple[str, str]:
    n = len(Realiser(style).variants(fact))
    a, b = rng.sample(range(n), 2)
    return say(style, fact, rng, [a], **kw), say(style, fact, rng, [b], **kw)


def other_relation(ctx: Context, fact: Fact, rng: random.Random) -> Fact:
    """Another fact about the same subject, of another relation (not its type)."""
    return rng.choice(need(ctx.facts_about(fact.subject, exclude=(fact.relation, "type")) or None))


def disjoint_fact(ctx: Context, fact: Fact, rng: random.Random, same_relation: bool) -> Fact:
    """A fact sharing no argument with ``fact`` (same relation or a different one)."""
    ids = {x.id if isinstance(x, Entity) else x for x in (fact.subject, fact.object)}
    for _ in range(50):
        g = ctx.pick(rng, [fact.relation] if same_relation else [r for r in RELATIONS if r != fact.relation])
        if not ({x.id if isinstance(x, Entity) else x for x in (g.subject, g.object)} & ids):
            return g
    raise Retry


class Retry(Exception):
    """A builder cannot make this example from this draw; draw again."""


def need(x):
    """``x``, or a retry where a builder step found nothing (None)."""
    if x is None:
        raise Retry
    return x
