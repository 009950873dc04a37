"""The demo's synthetic world: entities, their attributes and relations, as facts.

Why: the embedded demo needs pretraining text that a bigger BERT learns measurably
better than a smaller one, and GLUE-like tasks that test what pretraining taught.
Both come from one seeded world of consistent facts, so the text is not noise
(facts repeat across sources in different phrasings) and the tasks can be
derived from the same facts later.  :mod:`~kdbudget.demo.build` draws a world from a
seed; this module is its data model and lexicon, and imports nothing of the demo.

Everything is a :class:`Fact` ``(subject, relation, object)``: the object is an
:class:`Entity` for relations (``lives_in``) and a plain string for attributes
(``hair`` -> ``"red"``).  :data:`RELATIONS` says which kinds each relation links
and whether it is functional (one object per subject) or symmetric.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

# --------------------------------------------------------------------------- lexicon

#: Organisation type -> the professions of the people it employs.
ORG_PROFESSIONS: dict[str, tuple[str, ...]] = {
    "mill": ("miller", "clerk", "carpenter"),
    "bakery": ("baker", "cook", "clerk"),
    "school": ("teacher", "librarian", "gardener"),
    "bank": ("clerk", "merchant", "judge"),
    "hospital": ("doctor", "nurse", "cook"),
    "theatre": ("singer", "musician", "painter", "poet"),
    "shipyard": ("carpenter", "sailor", "engineer", "smith"),
    "brewery": ("brewer", "farmer", "clerk"),
    "farm": ("farmer", "shepherd", "gardener"),
    "library": ("librarian", "poet", "clerk"),
    "workshop": ("smith", "potter", "tailor", "weaver"),
    "inn": ("cook", "brewer", "musician"),
    "museum": ("painter", "librarian", "engineer"),
    "harbour company": ("sailor", "fisher", "merchant"),
}
PLACE_TYPES = ("village", "town", "city", "hamlet")
PLACE_SIZES = {"hamlet": ("tiny", "small"), "village": ("small",), "town": ("small", "large"),
               "city": ("large", "huge")}
REGION_TYPES: dict[str, bool] = {  # type -> plural ("the Orla Hills are ...")
    "valley": False, "coast": False, "plain": False, "forest": False,
    "hills": True, "marshes": True, "islands": True,
}
PRODUCTS = ("wine", "cheese", "wool", "salt", "honey", "apples", "pottery", "cider",
            "bread", "fish", "timber", "lace", "glass", "copper", "pears", "silk")
ANIMAL_TYPES = ("dog", "cat", "horse", "goat", "owl", "parrot", "donkey", "pony",
                "rabbit", "raven", "tortoise", "fox")
OBJECT_TYPES = ("boat", "ship", "carriage", "piano", "violin", "clock", "bell", "cart")
COLOURS = ("red", "blue", "green", "yellow", "black", "white", "grey", "brown",
           "golden", "silver", "orange", "purple")
HAIR_COLOURS = ("red", "black", "brown", "grey", "fair", "white")
THING_SIZES = ("tiny", "small", "large", "huge")
ANIMAL_AGES = ("two", "three", "four", "five", "six", "seven", "eight", "nine",
               "ten", "eleven", "twelve")
OBJECT_AGES = ("new", "old", "ancient")
TEMPERAMENTS = ("cheerful", "gloomy", "calm", "nervous", "kind", "stern", "shy", "proud",
                "generous", "stubborn", "patient", "clever")



# --------------------------------------------------------------------------- data model

@dataclass(frozen=True)
class Entity:
    """A named thing of the world.

    ``kind`` is one of person, place, region, organisation, animal, object; ``type`` the
    common noun used to refer to it ("town", "mill", "dog"; "person" for people);
    ``gender`` "female"/"male" for people (pronoun agreement), None otherwise; ``plural``
    for plural region names.
    """

    id: str
    kind: str
    name: str
    type: str
    gender: str | None = None
    plural: bool = False
    given: str = ""
    family: str = ""


@dataclass(frozen=True)
class Fact:
    """One true statement: ``subject`` --relation--> ``object`` (entity or attribute value)."""

    subject: Entity
    relation: str
    object: Entity | str


@dataclass(frozen=True)
class RelationSpec:
    """Typing of a relation: ``object_kinds`` is empty for attributes (string values)."""

    subject_kinds: tuple[str, ...]
    object_kinds: tuple[str, ...]
    functional: bool
    symmetric: bool = False


_THINGS = ("animal", "object")
RELATIONS: dict[str, RelationSpec] = {
    # attributes
    "type": RelationSpec(("place", "region", "organisation", "animal", "object"), (), True),
    "profession": RelationSpec(("person",), (), True),
    "birth_year": RelationSpec(("person",), (), True),
    "hair": RelationSpec(("person",), (), True),
    "temperament": RelationSpec(("person",), (), True),
    "size": RelationSpec(("place", "animal", "object"), (), True),
    "colour": RelationSpec(_THINGS, (), True),
    "age": RelationSpec(_THINGS, (), True),
    "famous_for": RelationSpec(("place",), (), True),
    "founded_year": RelationSpec(("organisation",), (), True),
    # relations between entities
    "born_in": RelationSpec(("person",), ("place",), True),
    "lives_in": RelationSpec(("person",), ("place",), True),
    "works_for": RelationSpec(("person",), ("organisation",), True),
    "located_in": RelationSpec(("place", "organisation"), ("region", "place"), True),
    "founded_by": RelationSpec(("organisation",), ("person",), True),
    "parent_of": RelationSpec(("person",), ("person",), False),
    "friend_of": RelationSpec(("person",), ("person",), False, symmetric=True),
    "owns": RelationSpec(("person",), _THINGS, False),
    "likes": RelationSpec(("person",), ("place", "organisation"), False),
    "dislikes": RelationSpec(("person",), ("place", "organisation"), False),
}


@dataclass
class World:
    """All entities and facts, with look-ups that GLUE-like task builders need.

    Facts of symmetric relations are stored once; :meth:`objects` and :meth:`holds`
    look both ways.
    """

    seed: int
    entities: tuple[Entity, ...]
    facts: tuple[Fact, ...]
    _by_subject: dict[str, list[Fact]] = field(default_factory=dict, repr=False)
    _by_object: dict[str, list[Fact]] = field(default_factory=dict, repr=False)
    _by_name: dict[str, Entity] = field(default_factory=dict, repr=False)
    _by_kind: dict[str, list[Entity]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for e in self.entities:
            self._by_name[e.name] = e
            self._by_kind.setdefault(e.kind, []).append(e)
        for f in self.facts:
            self._by_subject.setdefault(f.subject.id, []).append(f)
            if isinstance(f.object, Entity):
                self._by_object.setdefault(f.object.id, []).append(f)

    def of_kind(self, kind: str) -> list[Entity]:
        """Entities of one kind, in creation order (a fresh list: callers may shuffle it)."""
        return list(self._by_kind.get(kind, []))

    def entity(self, name: str) -> Entity:
        """The entity called ``name`` (KeyError if none)."""
        return self._by_name[name]

    def facts_about(self, entity: Entity, relation: str | None = None) -> list[Fact]:
        """Facts whose subject is ``entity`` (optionally of one relation)."""
        facts = self._by_subject.get(entity.id, [])
        return [f for f in facts if relation is None or f.relation == relation]

    def facts_mentioning(self, entity: Entity) -> list[Fact]:
        """Facts whose object is ``entity`` (e.g. the residents of a town)."""
        return list(self._by_object.get(entity.id, []))

    def value(self, entity: Entity, relation: str) -> Entity | str | None:
        """The object of a functional relation, or None where the entity has none."""
        facts = self.facts_about(entity, relation)
        return facts[0].object if facts else None

    def objects(self, entity: Entity, relation: str) -> list[Entity | str]:
        """All objects of ``entity`` under ``relation``; both directions if symmetric."""
        out: list[Entity | str] = [f.object for f in self.facts_about(entity, relation)]
        if RELATIONS[relation].symmetric:
            out += [f.subject for f in self.facts_mentioning(entity) if f.relation == relation]
        return out

    def subjects(self, relation: str, obj: Entity | str) -> list[Entity]:
        """Entities that stand in ``relation`` to ``obj`` (e.g. everyone living in a town)."""
        if isinstance(obj, Entity):
            return [f.subject for f in self.facts_mentioning(obj) if f.relation == relation]
        return [f.subject for f in self.facts if f.relation == relation and f.object == obj]

    def holds(self, fact: Fact) -> bool:
        """Whether ``fact`` is true in this world."""
        return fact.object in self.objects(fact.subject, fact.relation)

    def candidates(self, fact: Fact) -> list[Entity | str]:
        """Type-correct objects for the fact's subject and relation, true or not."""
        spec = RELATIONS[fact.relation]
        if spec.object_kinds:
            kind = fact.object.kind if isinstance(fact.object, Entity) else spec.object_kinds[0]
            return [e for e in self.of_kind(kind) if e.id != fact.subject.id]
        return list(attribute_values(fact.relation, fact.subject))

    def false_fact(self, fact: Fact, rng: random.Random) -> Fact:
        """The same subject and relation with an object that makes it false (for
        contradictions, negative paraphrase pairs, wrong answers)."""
        options = [o for o in self.candidates(fact) if not self.holds(Fact(fact.subject, fact.relation, o))]
        if not options:
            raise ValueError(f"no false alternative for {fact.relation} of {fact.subject.name}")
        return Fact(fact.subject, fact.relation, rng.choice(options))

    def people(self) -> Iterator[Entity]:
        """People in creation order (families are contiguous)."""
        return iter(self.of_kind("person"))


def attribute_values(relation: str, subject: Entity) -> tuple[str, ...]:
    """Every value an attribute can take for ``subject`` (the domain of the attribute)."""
    if relation == "type":
        return {"place": PLACE_TYPES, "region": tuple(REGION_TYPES), "organisation": tuple(ORG_PROFESSIONS),
                "animal": ANIMAL_TYPES, "object": OBJECT_TYPES}[subject.kind]
    if relation == "profession":
        return tuple(sorted({p for ps in ORG_PROFESSIONS.values() for p in ps}))
    if relation == "size":
        return ("tiny", "small", "large", "huge")
    if relation == "age":
        return ANIMAL_AGES if subject.kind == "animal" else OBJECT_AGES
    if relation in ("birth_year", "founded_year"):
        return tuple(str(y) for y in range(1850, 2001))
    table = {"hair": HAIR_COLOURS, "temperament": TEMPERAMENTS, "colour": COLOURS,
             "famous_for": PRODUCTS}
    return table[relation]
