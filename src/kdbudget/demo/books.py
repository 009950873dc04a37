"""Writes the demo world as a folder of plain-text novels (the Homemade BookCorpus layout).

Why: BookCorpus is the narrative half of BERT's pretraining data.  The demo books tell
short stories about the people of the same world, in the past tense, with dialogue
(first and second person, questions, negated answers), relative and subordinate
clauses and evaluative words, so the books restate the wiki's facts in a different
register: the model sees each fact in two styles, as in the real corpora.

Every statement about an entity is true in the world; invented details (weather,
walks, moods) never contradict a fact.  Answers in dialogue are truthful.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from kdbudget.demo.realise import Realiser, capitalise, sentiment_sentence
from kdbudget.demo.world import Entity, Fact, World

TIMES = ("morning", "afternoon", "evening", "night", "day")
TIME_ADJS = ("cold", "warm", "quiet", "grey", "bright", "windy", "rainy", "long")
MOVES = ("walked", "rode", "went", "hurried", "wandered", "travelled")
WEATHER: dict[str, tuple[str, ...]] = {
    "sky": ("grey", "blue", "clear", "dark", "pale"),
    "wind": ("cold", "warm", "strong", "gentle", "bitter"),
    "road": ("muddy", "dry", "long", "quiet", "narrow"),
    "air": ("fresh", "damp", "still", "sweet", "heavy"),
}
MOODS: dict[str, tuple[str, ...]] = {
    "cheerful": ("happy", "glad", "hopeful"), "gloomy": ("sad", "tired", "lonely"),
    "calm": ("calm", "content", "patient"), "nervous": ("worried", "anxious", "restless"),
    "kind": ("happy", "warm", "glad"), "stern": ("serious", "impatient", "cross"),
    "shy": ("nervous", "quiet", "uneasy"), "proud": ("proud", "pleased", "confident"),
    "generous": ("glad", "happy", "warm"), "stubborn": ("cross", "determined", "impatient"),
    "patient": ("calm", "content", "thoughtful"), "clever": ("curious", "thoughtful", "amused"),
}
GESTURES = ("smiled", "nodded", "laughed", "sighed", "frowned", "shrugged", "paused")
SAY_VERBS = ("said", "replied", "answered", "whispered")
ASK_VERBS = ("asked", "wondered", "enquired")
ACTIVITIES = ("drank a cup of tea", "ate some bread", "read a letter", "wrote a letter", "looked out of the window",
              "sat by the fire", "cleaned the kitchen", "opened the door", "closed the window")
_NUMBERS = ("One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten", "Eleven", "Twelve")
_LOWER_OK = re.compile(r"^(She|He|It|They|The|A|An|I|You|Everyone|What|How)\b")


def story_words() -> list[str]:
    """Every word of the story lexicon (names must avoid them)."""
    groups = (TIMES, TIME_ADJS, MOVES, *WEATHER.values(), tuple(WEATHER), *MOODS.values(), GESTURES, SAY_VERBS,
              ASK_VERBS, ACTIVITIES, _NUMBERS)
    return [w.lower() for g in groups for phrase in g for w in phrase.split()]


def _join(a: str, b: str, word: str = "and") -> str:
    """Two sentences as one: "A, and b." (b lower-cased only where it starts with a
    pronoun or determiner, never a name)."""
    b2 = b[0].lower() + b[1:] if _LOWER_OK.match(b) and not b.startswith("I ") else b
    return f"{a[:-1]}, {word} {b2}"


class _Story:
    """State while one book is written: its realiser (tracks first mentions) and rng."""

    def __init__(self, world: World, hero: Entity, rng: random.Random) -> None:
        self.w, self.hero, self.rng = world, hero, rng
        self.r = Realiser("story", track=True)

    def fact(self, e: Entity, rel: str) -> Fact:
        return self.w.facts_about(e, rel)[0]

    def val(self, e: Entity, rel: str) -> Entity:
        v = self.w.value(e, rel)
        assert isinstance(v, Entity)
        return v

    def say(self, f: Fact, *, pronoun: bool = False, **kw: object) -> str:
        vs = self.r.subject_variants(f) if pronoun else list(range(len(self.r.variants(f))))
        return self.r.sentence(f, self.rng.choice(vs), pronoun=pronoun, **kw)  # type: ignore[arg-type]

    def pred(self, f: Fact) -> str:
        return self.r.predicate(f, self.rng.choice(self.r.subject_variants(f)))

    def rel(self, f: Fact) -> str:
        return self.r.relative(f, self.rng.choice(self.r.subject_variants(f)))

    def mood(self, p: Entity) -> str:
        return self.rng.choice(MOODS[str(self.w.value(p, "temperament"))])

    # -- paragraphs
    def introduction(self, p: Entity) -> str:
        home = self.val(p, "lives_in")
        region = self.val(home, "located_in")
        kind = self.r.predicate(self.fact(home, "size"), 1).split(" ", 1)[1]  # "a small town"
        s1 = f"{self.r.sentence(self.fact(p, 'lives_in'), 0)[:-1]}, {kind} in {self.r.name(region)}."
        job, employer = self.fact(p, "profession"), self.fact(p, "works_for")
        s2 = _join(self.say(job, pronoun=True), self.say(employer, pronoun=True))
        born = self.r.sentence(self.fact(p, "born_in"), 0, pronoun=True)
        s3 = f"{born[:-1]} in {self.w.value(p, 'birth_year')}."
        s4 = f"Everyone knew that {self.say(self.fact(p, 'temperament'))[:-1]}."
        s5 = self.say(self.fact(p, "hair"), pronoun=True)
        return " ".join([s1, s2, s3, s4, s5])

    def family(self, p: Entity) -> str:
        out = []
        for f in [f for f in self.w.facts_mentioning(p) if f.relation == "parent_of"] + \
                self.w.facts_about(p, "parent_of"):
            other = f.subject if f.object is p else f.object
            out.append(self.say(f))
            out.append(f"{capitalise(self.r.name(other))}, {self.rel(self.fact(other, 'profession'))}, "
                       f"{self.pred(self.fact(other, 'lives_in'))}.")
        return " ".join(out)

    def pets(self, p: Entity) -> str:
        out = []
        for f in self.w.facts_about(p, "owns"):
            thing = f.object
            assert isinstance(thing, Entity)
            colour = str(self.w.value(thing, "colour"))
            name = capitalise(self.r.name(p))
            out.append(f"{name} had {self.r.intro(thing, colour)}.")
            out.append(self.say(self.fact(thing, self.rng.choice(("age", "size")))))
            if thing.kind == "animal":
                out.append(f"Every {self.rng.choice(TIMES)}, {self.r.name(thing)} waited by the door.")
        return " ".join(out)

    def journey(self, p: Entity, dest: Entity, reason: str) -> str:
        time = f"One {self.rng.choice(TIME_ADJS)} {self.rng.choice(TIMES)}"
        noun = self.rng.choice(tuple(WEATHER))
        out = [f"{time}, {self.r.name(p)} {self.rng.choice(MOVES)} to {self.r.name(dest)} {reason}.",
               f"The {noun} was {self.rng.choice(WEATHER[noun])}, and {self.r.name(p)} felt {self.mood(p)}."]
        return " ".join(out)

    def opinion(self, p: Entity, f: Fact) -> str:
        target = f.object
        assert isinstance(target, Entity)
        polarity = "positive" if f.relation == "likes" else "negative"
        first = self.say(f)
        why = sentiment_sentence(target, polarity, self.rng, style="story")
        if why.endswith("!"):
            return f"{first} {why}"
        return f"{first[:-1]} because {why[0].lower() + why[1:] if _LOWER_OK.match(why) else why}"

    def dialogue(self, p: Entity, q: Entity) -> list[str]:
        """Paragraphs of conversation: p asks q about q's life; q answers truthfully."""
        rng, r = self.rng, self.r
        pn, qn = p.given, q.given
        out = [f'"Good {rng.choice(TIMES[:3])}, {qn}," said {pn}.']
        for rel in rng.sample(["lives_in", "works_for", "profession", "born_in", "owns", "hair"], 3):
            facts = self.w.facts_about(q, rel)
            if not facts:
                out.append(f'"Do you have any animals, {qn}?" {rng.choice(ASK_VERBS)} {pn}.')
                out.append(f'"No, I do not," {rng.choice(SAY_VERBS)} {qn}.')
                continue
            fact = facts[0]
            if rel != "owns" and rng.random() < 0.5:  # "Where do you live?"
                out.append(f'"{r.question(fact, "wh", person=2, tense="present")}" {rng.choice(ASK_VERBS)} {pn}.')
                answer = r.sentence(fact, r.subject_variants(fact)[0], person=1, tense="present")
                out.append(f'"{answer[:-1]}," {rng.choice(SAY_VERBS)} {qn}.')
            elif rng.random() < 0.5:
                out.append(f'"{r.question(fact, "yn", person=2, tense="present")}" {rng.choice(ASK_VERBS)} {pn}.')
                out.append(f'"Yes," {rng.choice(SAY_VERBS)} {qn}. "{r.sentence(fact, 0, person=1, tense="present")}"')
            else:
                wrong = self.w.false_fact(fact, rng)
                out.append(f'"{r.question(wrong, "yn", person=2, tense="present")}" {rng.choice(ASK_VERBS)} {pn}.')
                out.append(f'"No," {qn} {rng.choice(SAY_VERBS)}, and {rng.choice(GESTURES)}. '
                           f'"{r.negation(wrong, person=1, tense="present")} '
                           f'{r.sentence(fact, 0, person=1, tense="present")}"')
        liked = [x for x in self.w.objects(q, "likes") if isinstance(x, Entity)]
        if liked:
            praise = sentiment_sentence(liked[0], "positive", rng, style="wiki")
            out.append(f'"{r.sentence(Fact(q, "likes", liked[0]), 0, person=1, tense="present")[:-1]}," {qn} '
                       f'{rng.choice(SAY_VERBS)}. "{praise}"')
        return out

    def place(self, e: Entity) -> str:
        """What a visitor sees of a place: its size, region and produce."""
        facts = [self.fact(e, "size"), self.fact(e, "located_in"), self.fact(e, "famous_for")]
        return " ".join([self.say(facts[0]), self.say(facts[1], pronoun=True), self.say(facts[2], pronoun=True)])

    def gossip(self, p: Entity, q: Entity) -> list[str]:
        """q tells p a fact about one of q's friends or relatives, or about q's employer."""
        rng = self.rng
        others = [x for x in self.w.objects(q, "friend_of") + self.w.objects(q, "parent_of")
                  if isinstance(x, Entity) and x is not p]
        others += [f.subject for f in self.w.facts_mentioning(q) if f.relation == "parent_of" and f.subject is not p]
        pool: list[Fact] = [f for f in self.w.facts_about(self.val(q, "works_for"))
                            if f.relation in ("founded_by", "founded_year") and f.object is not p]
        if others:
            pool += [f for f in self.w.facts_about(rng.choice(others))
                     if f.relation in ("lives_in", "works_for", "profession", "born_in", "owns", "likes")]
        if not pool:
            return []
        f = rng.choice(pool)
        news = self.r.sentence(f, rng.randrange(len(self.r.variants(f))), tense="present")
        news = news[0].lower() + news[1:] if _LOWER_OK.match(news) else news
        reply = rng.choice(("I did not know that", "Everyone knows that", "I know"))
        return [f'"Did you know that {news[:-1]}?" {rng.choice(ASK_VERBS[:2])} {q.given}.',
                f'"{reply}," {rng.choice(SAY_VERBS)} {p.given}.']

    def evening(self, p: Entity) -> str:
        home = self.val(p, "lives_in")
        return (f"That {self.rng.choice(TIMES[2:4])}, {self.r.name(p)} went home to {self.r.name(home)}. "
                f"{capitalise(self.r.name(p))} {self.rng.choice(ACTIVITIES)} and felt {self.mood(p)}.")

    # -- chapters
    def chapter(self, n: int) -> list[str]:
        p, w, rng = self.hero, self.w, self.rng
        if n == 1:
            paras = [self.introduction(p), self.family(p), self.pets(p)]
            return [x for x in paras if x]
        cast = [q for q in w.objects(p, "friend_of") if isinstance(q, Entity)]
        org = self.val(p, "works_for")
        cast += [q for q in w.subjects("works_for", org) if q is not p][:3]
        cast += [f.subject for f in w.facts_mentioning(p) if f.relation == "parent_of"]
        cast += [f.object for f in w.facts_about(p, "parent_of") if isinstance(f.object, Entity)]
        if not cast:
            cast = [rng.choice(w.of_kind("person"))]
        q = cast[(n - 2) % len(cast)]
        home = self.val(q, "lives_in")
        paras = [self.journey(p, home, f"to visit {self.r.name(q)}")]
        if rng.random() < 0.5:
            paras.append(self.place(home))
        paras.append(f"{capitalise(self.r.name(q))}, {self.rel(self.fact(q, 'works_for'))}, was at home. "
                     + self.say(self.fact(q, "temperament"), pronoun=True))
        paras += self.dialogue(p, q)
        if rng.random() < 0.6:
            paras += self.gossip(p, q)
        if rng.random() < 0.5 and w.facts_about(q, "owns"):
            paras.append(self.pets(q))
        opinions = w.facts_about(p, "likes") + w.facts_about(p, "dislikes")
        if opinions:
            paras.append(self.opinion(p, rng.choice(opinions)))
        if rng.random() < 0.4:
            paras.append(self.journey(p, org, "to work") + " " + self.say(self.fact(p, "works_for"), pronoun=True))
        paras.append(self.evening(p))
        return paras


def write_book(world: World, hero: Entity, rng: random.Random, target: int) -> str:
    """One book of about ``target`` words (at least one chapter) about ``hero``."""
    story = _Story(world, hero, rng)
    home = story.val(hero, "lives_in").name
    title = rng.choice((f"{hero.given} of {home}", f"The {hero.family} Family", f"Letters to {hero.given}",
                        f"A Year in {home}"))
    author = rng.choice(world.of_kind("person"))
    parts = [title, f"by {author.name}"]
    n_words = 0
    for n in range(1, 200):
        chapter = [f"Chapter {_NUMBERS[(n - 1) % 12] if n <= 12 else n}"] + story.chapter(n)
        parts += chapter
        n_words += sum(len(x.split()) for x in chapter)
        if n_words >= target:
            break
    return "\n\n".join(parts) + "\n"


def write_books(books_dir: Path, world: World, *, words: int, seed: int) -> dict[str, int]:
    """Writes books into ``books_dir`` until ``words`` whitespace words; returns counts."""
    rng = random.Random(f"kdbudget-demo-books:{seed}")
    heroes = world.of_kind("person")
    rng.shuffle(heroes)
    total, n = 0, 0
    while total < words:
        hero = heroes[n % len(heroes)]
        target = min(rng.randint(1500, 4000), max(words - total, 300))
        text = write_book(world, hero, rng, target)
        slug = re.sub(r"[^a-z0-9]+", "-", text.split("\n", 1)[0].lower()).strip("-")
        (books_dir / f"{n:05d}-{slug}.txt").write_text(text, encoding="utf-8")
        total += len(text.split())
        n += 1
    return {"books": n, "words": total}
