"""Draws the demo world from a seed: unique pronounceable names, then families, places and ties.

Why a module of its own: generated names must avoid every word the grammar
(:mod:`~kdbudget.demo.realise`) and the books (:mod:`~kdbudget.demo.books`) can emit, so
drawing a world depends on both, while both depend only on the world's data model
(:mod:`~kdbudget.demo.world`). Kept apart, the imports run one way: world <- realise
<- books <- build.

The world is built family by family so that facts agree with each other: children
share their parents' surname, are born 20-40 years later and in their parents'
home town; a profession fits the employer (teachers work for schools); an
organisation is founded by a person aged 20-55 at the time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from kdbudget.demo.books import story_words
from kdbudget.demo.realise import lexicon_words
from kdbudget.demo.world import (
    ANIMAL_AGES,
    ANIMAL_TYPES,
    COLOURS,
    HAIR_COLOURS,
    OBJECT_AGES,
    OBJECT_TYPES,
    ORG_PROFESSIONS,
    PLACE_SIZES,
    PLACE_TYPES,
    PRODUCTS,
    REGION_TYPES,
    TEMPERAMENTS,
    THING_SIZES,
    Entity,
    Fact,
    World,
)

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
           "br", "dr", "gr", "kl", "st", "tr", "sh", "th", "h", "j")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ou")
_CODAS = ("", "", "", "n", "r", "l", "s", "m", "k", "th")
_FEMALE_ENDS = ("a", "ina", "ela", "ie", "ya")
_MALE_ENDS = ("o", "an", "ek", "or", "us")
_PLACE_ENDS = ("ford", "holm", "by", "wick", "dale", "ton", "mouth", "stead", "bury", "mere")

# --------------------------------------------------------------------------- names

class _Namer:
    """Pronounceable unique names from syllables; never an English word of the lexicon."""

    def __init__(self, rng: random.Random, reserved: set[str]) -> None:
        self.rng = rng
        self.used = set(reserved)  # membership only: never iterated (hash order)

    def _syllable(self) -> str:
        r = self.rng
        return r.choice(_ONSETS) + r.choice(_VOWELS) + r.choice(_CODAS)

    def fresh(self, n_syllables: int, end: str = "") -> str:
        for _ in range(1000):
            stem = "".join(self._syllable() for _ in range(n_syllables))
            word = (stem + end).capitalize()
            if word.lower() not in self.used and 3 <= len(word) <= 11:
                self.used.add(word.lower())
                return word
        raise RuntimeError("name space exhausted")  # pragma: no cover

    def pool(self, size: int, n_syllables: tuple[int, int], ends: tuple[str, ...] = ("",)) -> list[str]:
        return [self.fresh(self.rng.randint(*n_syllables), self.rng.choice(ends)) for _ in range(size)]


# --------------------------------------------------------------------------- building

@dataclass
class _Builder:
    """Mutable state while a world is drawn; :func:`build_world` is the public entry."""

    rng: random.Random
    entities: list[Entity] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)
    births: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, name: str, type_: str, *, gender: str | None = None, plural: bool = False,
            given: str = "", family: str = "") -> Entity:
        e = Entity(f"{kind}:{len(self.entities):05d}", kind, name, type_, gender, plural, given, family)
        self.entities.append(e)
        if kind != "person":
            self.fact(e, "type", type_)
        return e

    def fact(self, s: Entity, rel: str, o: Entity | str) -> None:
        self.facts.append(Fact(s, rel, o))


def _reserved_words() -> set[str]:
    """Words of the grammar and the world's lexicon, which generated names must avoid."""
    words = lexicon_words() + story_words()
    for group in (PLACE_TYPES, tuple(REGION_TYPES), PRODUCTS, ANIMAL_TYPES, OBJECT_TYPES, COLOURS,
                  HAIR_COLOURS, THING_SIZES, ANIMAL_AGES, OBJECT_AGES, TEMPERAMENTS, tuple(ORG_PROFESSIONS),
                  *ORG_PROFESSIONS.values()):
        words += list(group)
    return {w.lower() for w in words}


def _counts(n: int) -> dict[str, int]:
    """How many entities of each kind a world of about ``n`` entities has."""
    return {"region": max(2, n // 50), "place": max(4, n // 10), "organisation": max(3, n // 8),
            "person": max(8, n * 11 // 20), "animal": max(2, n // 8), "object": max(2, n // 12)}


def build_world(seed: int, n_entities: int | None = None) -> World:
    """Draws a consistent world of about ``n_entities`` entities (default 400) from ``seed``.

    Same seed and size give the same world in every process (one ``random.Random``).
    """
    if n_entities is None:
        n_entities = 400
    if not isinstance(n_entities, int) or n_entities < 10:
        raise ValueError(f"n_entities must be an integer >= 10, got {n_entities!r}")
    rng = random.Random(f"kdbudget-demo-world:{seed}")
    namer = _Namer(rng, _reserved_words())
    counts = _counts(n_entities)
    b = _Builder(rng)

    regions = []
    for _ in range(counts["region"]):
        rtype = rng.choice(tuple(REGION_TYPES))
        stem = namer.fresh(rng.randint(1, 2))
        regions.append(b.add("region", f"{stem} {rtype.capitalize()}", rtype, plural=REGION_TYPES[rtype]))

    places = []
    for _ in range(counts["place"]):
        ptype = rng.choice(PLACE_TYPES)
        p = b.add("place", namer.fresh(rng.randint(1, 2), rng.choice(_PLACE_ENDS)), ptype)
        b.fact(p, "size", rng.choice(PLACE_SIZES[ptype]))
        b.fact(p, "located_in", rng.choice(regions))
        b.fact(p, "famous_for", rng.choice(PRODUCTS))
        places.append(p)

    orgs = []
    org_types = tuple(ORG_PROFESSIONS)
    for _ in range(counts["organisation"]):
        otype = rng.choice(org_types)
        home = rng.choice(places)
        stem = home.name if rng.random() < 0.5 else namer.fresh(2)
        name = f"{stem} {otype.title()}"
        if any(e.name == name for e in orgs):
            name = f"{namer.fresh(2)} {otype.title()}"
        o = b.add("organisation", name, otype)
        b.fact(o, "located_in", home)
        orgs.append(o)

    people = _add_people(b, namer, counts["person"], places, orgs)
    _add_social(b, people, places, orgs)

    for o in orgs:  # founders: a person aged 20-55 at the founding
        founder = rng.choice(people)
        born = b.births[founder.id]
        year = rng.randint(born + 20, min(born + 55, 2020))
        b.fact(o, "founded_by", founder)
        b.fact(o, "founded_year", str(year))

    pet_names = namer.pool(max(20, counts["animal"] // 3), (1, 2))
    ship_names = namer.pool(max(20, counts["object"] // 3), (2, 3))
    for kind, n, types, names in (("animal", counts["animal"], ANIMAL_TYPES, pet_names),
                                  ("object", counts["object"], OBJECT_TYPES, ship_names)):
        taken: set[str] = set()
        for _ in range(n):
            name = rng.choice(names)
            if name in taken:  # unique entity names keep look-ups and wiki titles simple
                name = namer.fresh(2)
            taken.add(name)
            thing = b.add(kind, name, rng.choice(types))
            b.fact(thing, "colour", rng.choice(COLOURS))
            b.fact(thing, "size", rng.choice(THING_SIZES))
            b.fact(thing, "age", rng.choice(ANIMAL_AGES if kind == "animal" else OBJECT_AGES))
            b.fact(rng.choice(people), "owns", thing)
    return World(seed=seed, entities=tuple(b.entities), facts=tuple(b.facts))


def _add_people(b: _Builder, namer: _Namer, n: int, places: list[Entity], orgs: list[Entity]) -> list[Entity]:
    """People in families: parents share a surname and home, children are born there."""
    rng = b.rng
    female = namer.pool(max(30, n // 6), (1, 2), _FEMALE_ENDS)
    male = namer.pool(max(30, n // 6), (1, 2), _MALE_ENDS)
    people: list[Entity] = []
    taken: set[str] = set()

    def person(family: str, gender: str, born: int, birthplace: Entity, home: Entity) -> Entity:
        for _ in range(50):
            given = rng.choice(female if gender == "female" else male)
            if f"{given} {family}" not in taken:
                break
        else:
            given = namer.fresh(2, rng.choice(_FEMALE_ENDS if gender == "female" else _MALE_ENDS))
        taken.add(f"{given} {family}")
        p = b.add("person", f"{given} {family}", "person", gender=gender, given=given, family=family)
        org = rng.choice(orgs)
        b.births[p.id] = born
        b.fact(p, "birth_year", str(born))
        b.fact(p, "born_in", birthplace)
        b.fact(p, "lives_in", home)
        b.fact(p, "works_for", org)
        b.fact(p, "profession", rng.choice(ORG_PROFESSIONS[org.type]))
        b.fact(p, "hair", rng.choice(HAIR_COLOURS))
        b.fact(p, "temperament", rng.choice(TEMPERAMENTS))
        people.append(p)
        return p

    while len(people) < n:
        family = namer.fresh(rng.randint(2, 3))
        home = rng.choice(places)
        born = rng.randint(1880, 1950)
        parents = [person(family, "female", born + rng.randint(-5, 5), rng.choice(places), home)]
        if rng.random() < 0.6 and len(people) < n:
            parents.append(person(family, "male", born + rng.randint(-5, 5), rng.choice(places), home))
        for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
            if len(people) >= n:
                break
            child_home = home if rng.random() < 0.5 else rng.choice(places)
            child = person(family, rng.choice(("female", "male")), born + rng.randint(22, 40), home, child_home)
            for parent in parents:
                b.fact(parent, "parent_of", child)
    return people


def _add_social(b: _Builder, people: list[Entity], places: list[Entity], orgs: list[Entity]) -> None:
    """Friendships (stored once per pair) and likes/dislikes that never overlap."""
    rng = b.rng
    pairs: set[tuple[str, str]] = set()
    for p in people:
        for _ in range(rng.choice((1, 1, 2, 2, 3))):
            q = rng.choice(people)
            key = (min(p.id, q.id), max(p.id, q.id))
            if q is p or key in pairs or q.family == p.family:
                continue
            pairs.add(key)
            b.fact(p, "friend_of", q)
        targets = rng.sample(places + orgs, 3)
        for t in targets[: rng.choice((1, 2))]:
            b.fact(p, "likes", t)
        if rng.random() < 0.6:
            b.fact(p, "dislikes", targets[2])
