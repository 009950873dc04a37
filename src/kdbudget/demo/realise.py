"""A small English grammar that turns world facts into sentences.

Why: pretraining text and the GLUE-like demo tasks must share one language.  Each
relation has several *variants* (phrasings with the same meaning, some with the
arguments swapped or in the passive), and every variant can be put in the present,
past or future, negated, asked as a yes/no question, or turned into a relative
clause.  Questions and negation use do-support; verbs agree with their subject in
person and number ("I live", "she lives", "the Orla Hills are").

Two styles: ``"wiki"`` (present tense, full names then surnames, encyclopaedic) and
``"story"`` (past tense, given names, narrative).  They are the two "genres" of the
MNLI-like task.  :data:`SENTIMENT` and :func:`sentiment_sentence` give evaluative
sentences for the SST-like task; :func:`corrupt` makes minimally ungrammatical
variants for the CoLA-like task.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from kdbudget.demo.world import Entity, Fact

Style = Literal["wiki", "story"]
Tense = Literal["present", "past", "future"]
Linker = Callable[[Entity, str], str]


# --------------------------------------------------------------------------- morphology

@dataclass(frozen=True)
class Verb:
    """The forms of one verb; ``be`` is special-cased where it differs."""

    base: str
    third: str
    past: str

    @staticmethod
    def regular(base: str, past: str | None = None) -> Verb:
        if base.endswith(("s", "sh", "ch", "o")):
            third = base + "es"
        elif base.endswith("y") and base[-2] not in "aeiou":
            third = base[:-1] + "ies"
        else:
            third = base + "s"
        return Verb(base, third, past or (base + "d" if base.endswith("e") else base + "ed"))


BE = Verb("be", "is", "was")
HAVE = Verb("have", "has", "had")
DO = Verb("do", "does", "did")
_r = Verb.regular
LIVE, WORK, MAKE, EARN, COUNT = _r("live"), _r("work"), Verb("make", "makes", "made"), _r("earn"), _r("count")
EMPLOY, HOLD, LIE, CONTAIN = _r("employ"), Verb("hold", "holds", "held"), Verb("lie", "lies", "lay"), _r("contain")
FOUND, OPEN, DATE, OWN, BELONG = _r("found"), _r("open"), _r("date"), _r("own"), _r("belong")
LIKE, ENJOY, SPEAK, DISLIKE = _r("like"), _r("enjoy"), Verb("speak", "speaks", "spoke"), _r("dislike")
FIND, HATE, LOVE, ADMIRE = Verb("find", "finds", "found"), _r("hate"), _r("love"), _r("admire")
DESPISE, ADORE, LOATHE = _r("despise"), _r("adore"), _r("loathe")
VERBS: tuple[Verb, ...] = (BE, HAVE, DO, LIVE, WORK, MAKE, EARN, COUNT, EMPLOY, HOLD, LIE, CONTAIN,
                           FOUND, OPEN, DATE, OWN, BELONG, LIKE, ENJOY, SPEAK, DISLIKE, FIND,
                           HATE, LOVE, ADMIRE, DESPISE, ADORE, LOATHE)


@dataclass(frozen=True)
class Agr:
    """Subject agreement features: grammatical person (1-3) and number."""

    person: int = 3
    plural: bool = False


def verb_group(verb: Verb, agr: Agr, tense: Tense, negated: bool = False) -> str:
    """The finite verb group of a declarative clause ("lives", "does not live", "were")."""
    if tense == "future":
        return f"will not {verb.base}" if negated else f"will {verb.base}"
    if verb is BE:
        form = _be(agr, tense)
        return f"{form} not" if negated else form
    if negated:
        aux = "did" if tense == "past" else ("does" if agr == Agr() else "do")
        return f"{aux} not {verb.base}"
    if tense == "past":
        return verb.past
    return verb.third if agr == Agr() else verb.base


def _be(agr: Agr, tense: Tense) -> str:
    if tense == "past":
        return "were" if agr.plural or agr.person == 2 else "was"
    if agr.person == 1 and not agr.plural:
        return "am"
    return "is" if agr == Agr() else "are"


def article(word: str) -> str:
    """"a" or "an" by the first letter (the lexicon has no silent h or "uni-")."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def capitalise(text: str) -> str:
    """Upper-cases the first letter, skipping markup such as ``'''`` or ``[[``."""
    for i, ch in enumerate(text):
        if ch.isalpha():
            return text[:i] + ch.upper() + text[i + 1:]
    return text


# --------------------------------------------------------------------------- templates

@dataclass(frozen=True)
class Variant:
    """One phrasing: ``subj`` VERB ``comp``; placeholders name fact arguments.

    ``{s}``/``{o}`` the subject/object, ``{s}'s`` a possessive, ``{s_poss}`` his/her/its,
    ``{o_a}`` the value with its article, ``{o_type}``/``{s_type}`` the type noun,
    ``{parent}``/``{child}`` gendered kin nouns, ``{s_noun}`` woman/man.  ``tense``
    pins the tense ("was born" is past in every style).
    """

    subj: str
    verb: Verb
    comp: str
    tense: Tense | None = None


@dataclass(frozen=True)
class WhQuestion:
    """A wh-question; ``subj=None`` puts the wh-word in subject position ("Who owns Pip?").

    ``asks`` says which fact argument ("s" or "o") answers it.
    """

    wh: str
    subj: str | None
    verb: Verb
    comp: str
    asks: Literal["s", "o"]
    tense: Tense | None = None


V, Q = Variant, WhQuestion
PAST: Tense = "past"
TEMPLATES: dict[str, tuple[Variant, ...]] = {
    "type": (V("{s}", BE, "{o_a}"), V("{s}", COUNT, "as {o_a}")),
    "profession": (V("{s}", BE, "{o_a}"), V("{s}", WORK, "as {o_a}"),
                   V("{s}", EARN, "{s_poss} living as {o_a}"), V("{s}'s trade", BE, "that of {o_a}")),
    "birth_year": (V("{s}", BE, "born in {o}", PAST), V("{s}", BE, "born in the year {o}", PAST),
                   V("{s}'s year of birth", BE, "{o}")),
    "hair": (V("{s}", HAVE, "{o} hair"), V("{s}'s hair", BE, "{o}"), V("the hair of {s}", BE, "{o}")),
    "temperament": (V("{s}", BE, "{o}"), V("{s}", BE, "{o_a} {s_noun}"), V("{s}", BE, "known for being {o}")),
    "size": (V("{s}", BE, "{o}"), V("{s}", BE, "{o_a} {s_type}")),
    "colour": (V("{s}", BE, "{o}"), V("{s}", BE, "{o} in colour"), V("{s}", BE, "{o_a} {s_type}")),
    "age:animal": (V("{s}", BE, "{o} years old"), V("{s}", BE, "{o_a}-year-old {s_type}"),
                   V("{s}'s age", BE, "{o} years")),
    "age:object": (V("{s}", BE, "{o}"), V("{s}", BE, "{o_a} {s_type}")),
    "famous_for": (V("{s}", BE, "famous for its {o}"), V("{s}", BE, "known for its {o}"),
                   V("{s}", HAVE, "a reputation for {o}")),
    "founded_year": (V("{s}", BE, "founded in {o}", PAST), V("{s}", OPEN, "in {o}", PAST),
                     V("{s}", DATE, "from {o}")),
    "born_in": (V("{s}", BE, "born in {o}", PAST), V("{o}", BE, "the birthplace of {s}"),
                V("{s}'s birthplace", BE, "{o}")),
    "lives_in": (V("{s}", LIVE, "in {o}"), V("{s}", MAKE, "{s_poss} home in {o}"),
                 V("{s}", BE, "a resident of {o}"), V("{o}", BE, "home to {s}")),
    "works_for": (V("{s}", WORK, "for {o}"), V("{s}", BE, "employed by {o}"), V("{o}", EMPLOY, "{s}"),
                  V("{s}", HOLD, "a job at {o}")),
    "located_in": (V("{s}", BE, "located in {o}"), V("{s}", BE, "situated in {o}"), V("{s}", LIE, "in {o}"),
                   V("{o}", CONTAIN, "{s}")),
    "founded_by": (V("{o}", FOUND, "{s}", PAST), V("{s}", BE, "founded by {o}", PAST),
                   V("{o}", BE, "the founder of {s}")),
    "parent_of": (V("{s}", BE, "the {parent} of {o}"), V("{o}", BE, "the {child} of {s}"),
                  V("{o}", BE, "{s}'s {child}"), V("{s}", HAVE, "a {child} called {o}")),
    "friend_of": (V("{s}", BE, "a friend of {o}"), V("{s} and {o}", BE, "friends"),
                  V("{o}", BE, "a friend of {s}"), V("{s}", COUNT, "{o} among {s_poss} friends")),
    "owns": (V("{s}", OWN, "{o}"), V("{o}", BELONG, "to {s}"), V("{o}", BE, "owned by {s}"),
             V("{s}", BE, "the owner of {o}"), V("{s}", HAVE, "{o_intro}")),
    "likes": (V("{s}", LIKE, "{o}"), V("{s}", BE, "fond of {o}"), V("{s}", SPEAK, "warmly of {o}"),
              V("{s}", ENJOY, "{s_poss} visits to {o}")),
    "dislikes": (V("{s}", DISLIKE, "{o}"), V("{s}", FIND, "{o} unpleasant"), V("{s}", SPEAK, "badly of {o}")),
}
QUESTIONS: dict[str, tuple[WhQuestion, ...]] = {
    "type": (Q("What kind of place", "{s}", BE, "", "o"),),
    "profession": (Q("What", "{s}", DO, "for a living", "o"), Q("Who", None, WORK, "as {o_a}", "s")),
    "birth_year": (Q("When", "{s}", BE, "born", "o", PAST),),
    "hair": (Q("What colour", "{s}'s hair", BE, "", "o"),),
    "temperament": (Q("What kind of person", "{s}", BE, "", "o"),),
    "size": (Q("How big", "{s}", BE, "", "o"),),
    "colour": (Q("What colour", "{s}", BE, "", "o"),),
    "age:animal": (Q("How old", "{s}", BE, "", "o"),),
    "age:object": (Q("How old", "{s}", BE, "", "o"),),
    "famous_for": (Q("What", "{s}", BE, "famous for", "o"),),
    "founded_year": (Q("When", "{s}", BE, "founded", "o", PAST),),
    "born_in": (Q("Where", "{s}", BE, "born", "o", PAST),),
    "lives_in": (Q("Where", "{s}", LIVE, "", "o"), Q("Who", None, LIVE, "in {o}", "s")),
    "works_for": (Q("Which {o_type}", "{s}", WORK, "for", "o"), Q("Who", None, WORK, "for {o}", "s")),
    "located_in": (Q("Where", "{s}", BE, "located", "o"),),
    "founded_by": (Q("Who", None, FOUND, "{s}", "o", PAST),),
    "parent_of": (Q("Who", "{o}'s {parent}", BE, "", "s"), Q("Who", None, BE, "the {parent} of {o}", "s")),
    "friend_of": (Q("Who", None, BE, "a friend of {o}", "s"),),
    "owns": (Q("Who", None, OWN, "{o}", "s"),),
    "likes": (Q("Who", None, LIKE, "{o}", "s"),),
    "dislikes": (Q("Who", None, DISLIKE, "{o}", "s"),),
}
# The type question depends on the kind of thing asked about.
_TYPE_WH = {"place": "What kind of place", "region": "What kind of region", "organisation": "What kind of organisation",
            "animal": "What kind of animal", "object": "What kind of object"}

_PRONOUNS = {  # (person, gender/plural key) -> nominative, accusative, possessive
    (1, "sg"): ("I", "me", "my"), (2, "sg"): ("you", "you", "your"),
    (3, "female"): ("she", "her", "her"), (3, "male"): ("he", "him", "his"),
    (3, "it"): ("it", "it", "its"), (3, "pl"): ("they", "them", "their"),
}


def _key(relation: str, subject: Entity) -> str:
    return f"{relation}:{subject.kind}" if relation == "age" else relation


def pronouns(entity: Entity, person: int = 3) -> tuple[str, str, str]:
    """(nominative, accusative, possessive) pronouns for ``entity`` as 1st/2nd/3rd person."""
    if person in (1, 2):
        return _PRONOUNS[(person, "sg")]
    if entity.plural:
        return _PRONOUNS[(3, "pl")]
    return _PRONOUNS[(3, entity.gender or "it")]


# --------------------------------------------------------------------------- realiser

class Realiser:
    """Turns facts into sentences in one style.

    ``link(entity, text)`` decorates each entity name as it is emitted (the wiki writer
    makes ``[[...]]`` links with it); the default leaves names as they are.  With
    ``track=True`` the realiser remembers who was mentioned and shortens later mentions
    of people: to the given name in stories, to the surname (only for ``focus``, the
    article's subject) in the wiki.  Without tracking, names are always full, which is
    what stand-alone task sentences need.
    """

    def __init__(self, style: Style = "wiki", link: Linker | None = None, *, track: bool = False,
                 focus: Entity | None = None) -> None:
        if style not in ("wiki", "story"):
            raise ValueError(f"style must be 'wiki' or 'story', got {style!r}")
        self.style: Style = style
        self.link: Linker = link or (lambda _e, text: text)
        self.track = track
        self.focus = focus
        self.seen: set[str] = set()  # entity ids; membership only

    @property
    def tense(self) -> Tense:
        """The style's default tense: encyclopaedic present, narrative past."""
        return "present" if self.style == "wiki" else "past"

    # -- names
    def name(self, e: Entity) -> str:
        """How the text refers to ``e`` now (see the class docstring); organisations,
        regions and objects take "the"."""
        if e.kind == "person":
            short = self.track and e.id in self.seen and (self.style == "story" or e is self.focus)
            if self.track:
                self.seen.add(e.id)
            text = e.name if not short else (e.given if self.style == "story" else e.family)
            return self.link(e, text)
        the = "the " if e.kind in ("organisation", "region", "object") else ""
        return the + self.link(e, e.name)

    def intro(self, e: Entity, colour: str = "") -> str:
        """An indefinite introduction of an owned thing: "a (grey) dog called Pip"."""
        noun = f"{colour} {e.type}" if colour else e.type
        return f"{article(noun)} {noun} called {self.name(e)}"

    # -- clauses
    def variants(self, fact: Fact) -> tuple[Variant, ...]:
        """All phrasings of ``fact``'s relation (index them with ``variant=``)."""
        return TEMPLATES[_key(fact.relation, fact.subject)]

    def sentence(self, fact: Fact, variant: int = 0, *, tense: Tense | None = None, negated: bool = False,
                 pronoun: bool = False, person: int = 3) -> str:
        """One declarative sentence. ``pronoun`` replaces the fact's subject by he/she/it;
        ``person`` 1 or 2 makes the subject "I"/"you" (for dialogue)."""
        v = self.variants(fact)[variant]
        subj, agr, comp = self._parts(fact, v.subj, v.comp, pronoun or person != 3, person)
        group = verb_group(v.verb, agr, v.tense or tense or self.tense, negated)
        return capitalise(" ".join(x for x in (subj, group, comp) if x)) + "."

    def paraphrases(self, fact: Fact, *, tense: Tense | None = None) -> list[str]:
        """Every phrasing of ``fact`` (same truth conditions, different surface)."""
        return [self.sentence(fact, i, tense=tense) for i in range(len(self.variants(fact)))]

    def negation(self, fact: Fact, variant: int = 0, *, tense: Tense | None = None, person: int = 3) -> str:
        """The sentence that is true exactly when ``fact`` is false."""
        return self.sentence(fact, variant, tense=tense, negated=True, person=person)

    def question(self, fact: Fact, kind: Literal["yn", "wh"] = "yn", variant: int = 0, *,
                 tense: Tense | None = None, person: int = 3) -> str:
        """A yes/no question about ``fact`` (answer: yes iff it holds) or a wh-question
        whose answer is one of its arguments (see :meth:`wh_answer`)."""
        if kind == "yn":
            v = self.variants(fact)[variant]
            subj, agr, comp = self._parts(fact, v.subj, v.comp, person != 3, person)
            return self._inverted("", v.verb, agr, v.tense or tense or self.tense, subj, comp)
        q = self._wh(fact)[variant]
        t = q.tense or tense or self.tense
        wh = q.wh.replace("{o_type}", fact.object.type if isinstance(fact.object, Entity) else "")
        if fact.relation == "type":
            wh = _TYPE_WH[fact.subject.kind]
        if q.subj is None:  # the wh-word is the subject: no inversion
            _s, _a, comp = self._parts(fact, "", q.comp, False, 3)
            return capitalise(" ".join(x for x in (wh, verb_group(q.verb, Agr(), t), comp) if x)) + "?"
        subj, agr, comp = self._parts(fact, q.subj, q.comp, person != 3, person)
        return self._inverted(wh, q.verb, agr, t, subj, comp)

    def wh_answer(self, fact: Fact, variant: int = 0) -> Entity | str:
        """The fact argument that answers ``question(fact, "wh", variant)``."""
        return fact.subject if self._wh(fact)[variant].asks == "s" else fact.object

    def n_questions(self, fact: Fact) -> int:
        """How many wh-questions :meth:`question` can ask about ``fact``."""
        return len(self._wh(fact))

    def predicate(self, fact: Fact, variant: int = 0, *, tense: Tense | None = None,
                  negated: bool = False) -> str:
        """The verb phrase alone ("lives in Tavon"), for writers that build their own
        subjects ("Mira, who ..., lives in Tavon"); only variants with subject ``{s}``."""
        v = self.variants(fact)[variant]
        if v.subj != "{s}":
            raise ValueError(f"variant {variant} of {fact.relation} has no {{s}} subject")
        _s, agr, comp = self._parts(fact, "", v.comp, False, 3, agr_of=fact.subject)
        return " ".join(x for x in (verb_group(v.verb, agr, v.tense or tense or self.tense, negated), comp) if x)

    def relative(self, fact: Fact, variant: int = 0, *, tense: Tense | None = None) -> str:
        """A relative clause about the fact's subject: "who lives in Tavon"."""
        rel = "who" if fact.subject.kind == "person" else "which"
        return f"{rel} {self.predicate(fact, variant, tense=tense)}"

    def subject_variants(self, fact: Fact) -> list[int]:
        """Indices of the variants whose grammatical subject is the fact's subject (those
        that :meth:`predicate`, :meth:`relative` and pronouns fit)."""
        return [i for i, v in enumerate(self.variants(fact)) if v.subj == "{s}"]

    # -- internals
    def _wh(self, fact: Fact) -> tuple[WhQuestion, ...]:
        return QUESTIONS[_key(fact.relation, fact.subject)]

    def _inverted(self, wh: str, verb: Verb, agr: Agr, tense: Tense, subj: str, comp: str) -> str:
        if tense == "future":
            aux, main = "will", verb.base
        elif verb is BE:
            aux, main = _be(agr, tense), ""
        else:
            aux = "did" if tense == "past" else ("does" if agr == Agr() else "do")
            main = verb.base
        words = [w for w in (wh, aux, subj, main, comp) if w]
        return capitalise(" ".join(words)) + "?"

    def _parts(self, fact: Fact, subj_t: str, comp_t: str, pronoun: bool, person: int,
               agr_of: Entity | None = None) -> tuple[str, Agr, str]:
        """Fills subject and complement templates, left to right so that names (and
        their links and first mentions) are produced in reading order; returns them
        with the subject's agreement."""
        s, o = fact.subject, fact.object
        nom, acc, poss = pronouns(s, person)
        o_word = o.type if isinstance(o, Entity) else o
        o_ent = o if isinstance(o, Entity) else None
        slots: dict[str, Callable[[], str]] = {
            "{s_poss}": lambda: poss if pronoun else pronouns(s)[2],
            "{o_a}": lambda: ("a group of " + o_word) if (fact.relation == "type" and s.plural)
            else f"{article(o_word)} {o_word}",
            "{o_type}": lambda: o_word, "{s_type}": lambda: s.type,
            "{o_intro}": lambda: self.intro(o_ent) if o_ent else o_word,
            "{parent}": lambda: "mother" if s.gender == "female" else "father",
            "{child}": lambda: "daughter" if o_ent and o_ent.gender == "female" else "son",
            "{s_noun}": lambda: {"female": "woman", "male": "man"}.get(s.gender or "", s.type),
            "{o}": lambda: self.name(o_ent) if o_ent else o_word,
        }

        def fill(t: str, subject_position: bool) -> str:
            out = []
            for piece in re.split(r"(\{[a-z_]+\}(?:'s)?)", t):
                if not piece.startswith("{"):
                    out.append(piece)
                    continue
                key, possessive = (piece[:-2], True) if piece.endswith("'s") else (piece, False)
                if key == "{s}" and possessive:
                    text = poss if pronoun else _possessive(self.name(s))
                elif key == "{s}":
                    text = (nom if subject_position else acc) if pronoun else self.name(s)
                else:
                    text = _possessive(slots[key]()) if possessive else slots[key]()
                out.append(text)
            return "".join(out)

        subj = fill(subj_t, True)
        ref = agr_of or (s if subj_t == "{s}" else o_ent if subj_t == "{o}" else None)
        if " and " in subj_t:
            agr = Agr(3, True)
        elif ref is s and pronoun:
            agr = Agr(person, s.plural)
        elif ref is not None:
            agr = Agr(3, ref.plural)
        else:
            agr = Agr()
        return subj, agr, fill(comp_t, False)


def _possessive(name: str) -> str:
    return name + "'" if name.endswith("s") else name + "'s"


# --------------------------------------------------------------------------- sentiment

#: Evaluative words for the SST-like task; positive and negative lists are disjoint.
SENTIMENT: dict[str, tuple[str, ...]] = {
    "positive": ("wonderful", "lovely", "delightful", "pleasant", "excellent", "charming", "splendid",
                 "beautiful", "friendly", "cosy", "marvellous", "superb"),
    "negative": ("terrible", "awful", "dreadful", "unpleasant", "dull", "gloomy", "miserable", "rude",
                 "ugly", "dirty", "boring", "horrible"),
}
SENTIMENT_VERBS: dict[str, tuple[Verb, ...]] = {"positive": (LOVE, ADORE, ADMIRE, ENJOY),
                                                "negative": (HATE, DESPISE, LOATHE, DISLIKE)}
INTENSIFIERS = ("very", "truly", "really", "rather", "quite", "simply")
#: What one can praise or blame about each kind of entity.
ASPECTS: dict[str, tuple[str, ...]] = {
    "place": ("streets", "houses", "market", "weather", "gardens", "people"),
    "region": ("roads", "villages", "weather", "views", "fields"),
    "organisation": ("food", "staff", "rooms", "service", "building", "work"),
    "person": ("voice", "manners", "jokes", "cooking", "letters", "songs"),
    "animal": ("coat", "temper", "voice", "habits"),
    "object": ("paint", "sound", "shape", "condition"),
}
_PLURAL_ASPECTS = ("streets", "houses", "gardens", "people", "roads", "villages", "views", "fields",
                   "staff", "rooms", "manners", "jokes", "letters", "songs", "habits")


def sentiment_sentence(entity: Entity, polarity: Literal["positive", "negative"], rng: random.Random, *,
                       style: Style = "wiki", negated: bool = False, speaker: Entity | None = None) -> str:
    """An evaluative sentence about ``entity`` whose overall polarity is ``polarity``.

    ``negated`` says the opposite word under "not" ("not at all dull" is positive), as
    SST's hard cases do.  ``speaker`` makes it someone's opinion ("Bora thought ...").
    """
    if polarity not in SENTIMENT:
        raise ValueError(f"polarity must be 'positive' or 'negative', got {polarity!r}")
    r = Realiser(style)
    tense: Tense = r.tense
    word_pol = ("negative" if polarity == "positive" else "positive") if negated else polarity
    adj = rng.choice(SENTIMENT[word_pol])
    adv = rng.choice(INTENSIFIERS)
    pred = f"not at all {adj}" if negated else f"{adv} {adj}"
    name = r.name(entity)
    agr = Agr(3, entity.plural)
    aspect = rng.choice(ASPECTS[entity.kind])
    aspect_agr = Agr(3, aspect in _PLURAL_ASPECTS)
    noun = entity.type if entity.kind != "person" else {"female": "woman", "male": "man"}[entity.gender or "female"]
    options = [
        f"{name} {verb_group(BE, agr, tense)} {pred}.",
        f"the {aspect} of {name} {verb_group(BE, aspect_agr, tense)} {pred}.",
    ]
    if not negated:
        verb = rng.choice(SENTIMENT_VERBS[polarity])
        options += [
            f"{name} {verb_group(BE, agr, tense)} {article(adv)} {adv} {adj} {noun}." if not entity.plural
            else f"{name} {verb_group(BE, agr, tense)} {adv} {adj}.",
            f"everyone {verb_group(verb, Agr(), tense)} {name}.",
            f"what {article(adj)} {adj} {noun} {name} {verb_group(BE, agr, tense)}!" if not entity.plural
            else f"how {adj} {name} {verb_group(BE, agr, tense)}!",
        ]
    text = rng.choice(options)
    if speaker is not None and not text.endswith("!"):
        said = "thinks" if tense == "present" else "thought"
        text = f"{r.name(speaker)} {said} that {text}"
    return capitalise(text)


# --------------------------------------------------------------------------- corruption

_AGREE = {"is": "are", "are": "is", "was": "were", "were": "was", "has": "have", "have": "has",
          "does": "do", "do": "does", "am": "is"}
for _v in VERBS:
    if _v not in (BE, HAVE, DO):
        _AGREE[_v.third], _AGREE[_v.base] = _v.base, _v.third
_PAST_OF = {v.base: v.past for v in VERBS}
_DROPPABLE = ("the", "in", "of", "for", "to", "a", "an", "as", "by", "from", "at")


def corrupt(sentence: str, rng: random.Random) -> tuple[str, str]:
    """A minimally ungrammatical variant of ``sentence`` and the kind of error.

    Kinds: ``agreement`` (is/are, lives/live), ``article`` (a/an swapped),
    ``tense`` (will + past form), ``omission`` (a function word dropped) and
    ``order`` (two neighbouring words swapped).  Raises ValueError when none applies.
    """
    words = sentence[:-1].split(" ") if sentence[-1:] in ".?!" else sentence.split(" ")
    end = sentence[-1] if sentence[-1:] in ".?!" else ""
    kinds = ["agreement", "article", "tense", "omission", "order"]
    rng.shuffle(kinds)
    for kind in kinds:
        out = _corrupt(words, kind, rng)
        if out is not None and out != words:
            return capitalise(" ".join(out)) + end, kind
    raise ValueError(f"cannot corrupt {sentence!r}")


def _corrupt(words: list[str], kind: str, rng: random.Random) -> list[str] | None:
    idx: list[int]
    if kind == "agreement":
        idx = [i for i, w in enumerate(words) if i > 0 and w in _AGREE]
        if not idx:
            return None
        i = rng.choice(idx)
        return words[:i] + [_AGREE[words[i]]] + words[i + 1:]
    if kind == "article":
        idx = [i for i, w in enumerate(words) if w.lower() in ("a", "an")]
        if not idx:
            return None
        i = rng.choice(idx)
        swap = {"a": "an", "an": "a", "A": "An", "An": "A"}[words[i]]
        return words[:i] + [swap] + words[i + 1:]
    if kind == "tense":
        idx = [i for i, w in enumerate(words[:-1]) if w == "will" and words[i + 1] in _PAST_OF]
        if not idx:
            return None
        i = rng.choice(idx) + 1
        return words[:i] + [_PAST_OF[words[i]]] + words[i + 1:]
    if kind == "omission":
        idx = [i for i, w in enumerate(words) if i > 0 and w in _DROPPABLE]
        if not idx:
            return None
        i = rng.choice(idx)
        return words[:i] + words[i + 1:]
    idx = [i for i in range(1, len(words) - 1) if words[i].isalpha() and words[i + 1].isalpha()]
    if not idx:
        return None
    i = rng.choice(idx)
    return words[:i] + [words[i + 1], words[i]] + words[i + 2:]


def lexicon_words() -> list[str]:
    """Every lower-case word the grammar itself can emit (names must avoid them)."""
    words: list[str] = []
    for variants in TEMPLATES.values():
        for v in variants:
            words += re.findall(r"[a-z]+", re.sub(r"\{[a-z_]+\}", " ", f"{v.subj} {v.comp}"))
    for v in VERBS:
        words += [v.base, v.third, v.past]
    for group in (*SENTIMENT.values(), *ASPECTS.values(), INTENSIFIERS):
        words += list(group)
    return words
