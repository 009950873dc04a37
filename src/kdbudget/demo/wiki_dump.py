"""Writes the demo world as a bz2-compressed MediaWiki XML export dump.

Why: the real pipeline runs wikiextractor on a Wikipedia dump; the demo must feed it
the same format with the same markup (infoboxes, templates, piped links, references,
categories, tables, redirects, template pages) so that the extraction step is
exercised for real.  Facts are stated in prose, because wikiextractor drops
infoboxes and tables: those repeat the prose facts as structured markup only.

The word budget counts the words of the text wikiextractor will keep (see
:func:`plain_text`), not of the markup, so that the corpus size the caller asks for is
the size of the training text.
"""

from __future__ import annotations

import bz2
import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from kdbudget.demo.realise import Realiser, article, capitalise
from kdbudget.demo.world import Entity, Fact, World

TIMESTAMP = "2023-11-01T00:00:00Z"  # the paper's crawl month; fixed for byte-identical dumps
BZ2_LEVEL = 9
_HEADER = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
xsi:schemaLocation="http://www.mediawiki.org/xml/export-0.10/ http://www.mediawiki.org/xml/export-0.10.xsd" \
version="0.10" xml:lang="en">
  <siteinfo>
    <sitename>Demopedia</sitename>
    <dbname>demowiki</dbname>
    <base>https://demo.invalid/wiki/Main_Page</base>
    <generator>MediaWiki 1.41.0</generator>
    <case>first-letter</case>
    <namespaces>
      <namespace key="-2" case="first-letter">Media</namespace>
      <namespace key="-1" case="first-letter">Special</namespace>
      <namespace key="0" case="first-letter" />
      <namespace key="1" case="first-letter">Talk</namespace>
      <namespace key="2" case="first-letter">User</namespace>
      <namespace key="4" case="first-letter">Demopedia</namespace>
      <namespace key="6" case="first-letter">File</namespace>
      <namespace key="10" case="first-letter">Template</namespace>
      <namespace key="14" case="first-letter">Category</namespace>
    </namespaces>
  </siteinfo>
"""
#: Template pages (namespace 10).  Nowrap is used in prose, so extraction must expand it;
#: the infobox and citation templates are deliberately undefined, as in a partial dump.
TEMPLATES: dict[str, str] = {
    "Template:Nowrap": "{{{1}}}<noinclude>\nKeeps its argument on one line.\n"
                       "[[Category:Formatting templates]]\n</noinclude>",
    "Template:Short description": "<noinclude>\nSets the short description of an article.\n</noinclude>",
}


@dataclass(frozen=True)
class Page:
    """One ``<page>``: an article, a redirect (``redirect`` = target), a template or a category."""

    title: str
    ns: int
    text: str
    redirect: str | None = None


def title_of(e: Entity) -> str:
    """Article titles; animals and objects are disambiguated as on Wikipedia ("Pip (dog)")."""
    return f"{e.name} ({e.type})" if e.kind in ("animal", "object") else e.name


# --------------------------------------------------------------------------- plain text

_TEMPLATE = re.compile(r"\{\{([^{}]*)\}\}")
_LINK = re.compile(r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]")


def plain_text(markup: str) -> str:
    """The text wikiextractor keeps from *this writer's* markup (used for word budgets)."""
    while _TEMPLATE.search(markup):
        markup = _TEMPLATE.sub(lambda m: m.group(1).split("|", 1)[1] if m.group(1).lower().startswith("nowrap|")
                               else "", markup)
    markup = re.sub(r"\{\|.*?\n\|\}", "", markup, flags=re.S)
    markup = re.sub(r"<ref[^>]*/>|<ref[^>]*>.*?</ref>", "", markup, flags=re.S)
    markup = re.sub(r"\[\[Category:[^\]]*\]\]", "", markup)
    lines: list[tuple[bool, str]] = []  # (is heading, text)
    for line in markup.split("\n"):
        heading = re.fullmatch(r"=+ *(.*?) *=+", line)
        if heading:
            lines.append((True, heading.group(1) + "."))
        elif line.strip() and not line.startswith(("*", "#")):
            lines.append((False, line))
    # wikiextractor drops a heading whose section has no prose (e.g. only a list)
    kept = [text for i, (is_heading, text) in enumerate(lines)
            if not is_heading or (i + 1 < len(lines) and not lines[i + 1][0])]
    text = _LINK.sub(r"\1", "\n".join(kept))
    return text.replace("'''", "").replace("''", '"')


def count_words(text: str) -> int:
    return len(text.split())


# --------------------------------------------------------------------------- articles

class _Linker:
    """Per-article link state: bold the subject once, link each other entity once."""

    def __init__(self, focus: Entity, titles: dict[str, str]) -> None:
        self.focus, self.titles = focus, titles
        self.linked: set[str] = set()  # membership only
        self.bolded = False

    def __call__(self, e: Entity, text: str) -> str:
        if e.id == self.focus.id:
            if self.bolded:
                return text
            self.bolded = True
            return f"'''{text}'''"
        if e.id in self.linked or e.id not in self.titles:
            return text
        self.linked.add(e.id)
        title = self.titles[e.id]
        return f"[[{text}]]" if title == text else f"[[{title}|{text}]]"


class _ArticleWriter:
    """Composes one article about ``focus`` from its facts, with references sprinkled in."""

    def __init__(self, world: World, focus: Entity, titles: dict[str, str], rng: random.Random) -> None:
        self.w, self.e, self.rng = world, focus, rng
        self.r = Realiser("wiki", _Linker(focus, titles), track=True, focus=focus)
        self.n_refs = 0

    def say(self, fact: Fact, *, pronoun: bool = False, subject_only: bool = False,
            only: tuple[int, ...] = ()) -> str:
        """A random phrasing of ``fact``; ``subject_only`` keeps ``{s}`` as the subject,
        ``only`` restricts the choice to some variants."""
        options = list(only) or (self.r.subject_variants(fact) if (pronoun or subject_only)
                                 else list(range(len(self.r.variants(fact)))))
        return self.r.sentence(fact, self.rng.choice(options), pronoun=pronoun) + self.ref()

    def ref(self) -> str:
        """A citation after roughly one sentence in four (named, reused or inline)."""
        x = self.rng.random()
        if x > 0.25:
            return ""
        if x < 0.08 and self.n_refs:
            return f'<ref name="r{self.rng.randint(1, self.n_refs)}" />'
        self.n_refs += 1
        author = self.rng.choice(self.w.of_kind("person"))
        place = self.rng.choice(self.w.of_kind("place"))
        year = self.rng.randint(1950, 2020)
        if x < 0.17:
            cite = (f"{{{{cite book |last={author.family} |first={author.given} |title=A History of "
                    f"{place.name} |publisher={place.name} Press |year={year} |page={self.rng.randint(2, 300)}}}}}")
        else:
            cite = (f"{{{{cite web |url=https://demo.invalid/{place.name.lower()}/{self.n_refs} "
                    f"|title={place.name} Gazette |date=1 May {year}}}}}")
        return f'<ref name="r{self.n_refs}">{cite}</ref>'

    def about(self, rel: str) -> list[Fact]:
        return self.w.facts_about(self.e, rel)

    def one(self, rel: str) -> Fact:
        return self.about(rel)[0]

    def mentioning(self, rel: str, kind: str | None = None) -> list[Fact]:
        return [f for f in self.w.facts_mentioning(self.e) if f.relation == rel
                and (kind is None or f.subject.kind == kind)]


def _infobox(kind: str, rows: list[tuple[str, str]]) -> str:
    body = "\n".join(f"| {k:<12} = {v}" for k, v in rows)
    return f"{{{{Infobox {kind}\n{body}\n}}}}"


def _listing(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _person(a: _ArticleWriter) -> str:
    w, p, r, rng = a.w, a.e, a.r, a.rng
    year = str(a.one("birth_year").object)
    home, org = a.one("lives_in").object, a.one("works_for").object
    born, prof = a.one("born_in").object, str(a.one("profession").object)
    assert isinstance(home, Entity) and isinstance(org, Entity) and isinstance(born, Entity)
    out = [f"{{{{Short description|{prof.capitalize()} from {home.name}}}}}",
           _infobox("person", [("name", p.name), ("birth_date", f"{{{{birth year|{year}}}}}"),
                               ("birth_place", f"[[{born.name}]]"), ("residence", f"[[{home.name}]]"),
                               ("occupation", f"[[{prof}]]"), ("employer", f"[[{org.name}]]")])]
    lives = a.one("lives_in")
    lead = (f"{r.name(p)} (born {{{{nowrap|{year}}}}}) is {article(prof)} [[{prof}]] "
            f"{r.relative(lives, rng.choice(r.subject_variants(lives)))}.{a.ref()} ")
    lead += a.say(a.one("works_for"), pronoun=True) + " " + a.say(a.one("temperament"))
    out.append(lead)

    if rng.random() < 0.5:
        early = [a.say(a.one("born_in")), a.say(a.one("birth_year"), pronoun=True)]
    else:  # both facts in one sentence
        early = [f"{r.sentence(a.one('born_in'), 0)[:-1]} in {year}.{a.ref()}"]
    early += [a.say(f, only=(1, 2)) for f in a.mentioning("parent_of")]  # "Kelim is the son of ..."
    out += ["== Early life ==", " ".join(early)]

    career = [a.say(a.one("profession"), subject_only=True), a.say(a.one("works_for"))]
    for f in a.mentioning("founded_by"):
        career += [a.say(f), a.say(w.facts_about(f.subject, "founded_year")[0], pronoun=True)]
    colleagues = [q for q in w.subjects("works_for", org) if q is not p][:4]
    if colleagues:
        career.append(f"{capitalise(r.name(p))}'s colleagues at {r.name(org)} include "
                      f"{_listing([r.name(q) for q in colleagues])}.")
    out += ["== Career ==", " ".join(career)]

    personal = [a.say(lives), a.say(a.one("hair"))]
    for q in w.objects(p, "friend_of"):
        assert isinstance(q, Entity)
        personal.append(a.say(Fact(p, "friend_of", q)))
    children = a.about("parent_of")
    personal += [a.say(f) for f in children]
    for f in a.about("owns"):
        thing = f.object
        assert isinstance(thing, Entity)
        personal.append(a.say(f))
        personal.append(r.sentence(w.facts_about(thing, "colour")[0], 2) + a.ref())
    personal += [a.say(f) for f in a.about("likes") + a.about("dislikes")]
    out += ["== Personal life ==", " ".join(personal)]
    if children:
        rows = "\n".join(f"|-\n| [[{f.object.name}]] || {w.value(f.object, 'birth_year')}"  # type: ignore[union-attr]
                         for f in children)
        out.append(f'{{| class="wikitable"\n|+ Children\n! Name !! Born\n{rows}\n|}}')
    out += ["== References ==", "{{Reflist}}", "",
            f"[[Category:{prof.capitalize()}s]]", f"[[Category:People from {home.name}]]",
            f"[[Category:{year} births]]"]
    return "\n".join(out)


def _place(a: _ArticleWriter) -> str:
    w, e, r, rng = a.w, a.e, a.r, a.rng
    region = a.one("located_in").object
    assert isinstance(region, Entity)
    out = [_infobox("settlement", [("name", e.name), ("type", e.type), ("region", f"[[{region.name}]]")])]
    lead = a.say(a.one("size"), subject_only=True) + " " + a.say(a.one("located_in"), pronoun=True)
    out.append(lead + " " + a.say(a.one("famous_for"), pronoun=rng.random() < 0.5))
    orgs = [f.subject for f in a.mentioning("located_in", "organisation")][:6]
    if orgs:
        out += ["== Economy ==", " ".join(a.say(w.facts_about(o, "located_in")[0]) for o in orgs)]
    residents = [f for f in a.mentioning("lives_in")][:8]
    natives = [f.subject for f in a.mentioning("born_in")][:5]
    people = [a.say(f) for f in residents]
    if natives:
        people.append(f"People born in {r.name(e)} include {_listing([r.name(q) for q in natives])}.")
    if people:
        out += ["== Notable people ==", " ".join(people)]
        rows = "\n".join(f"|-\n| [[{f.subject.name}]] || {w.value(f.subject, 'profession')}" for f in residents)
        if rows:
            out.append(f'{{| class="wikitable sortable"\n! Name !! Profession\n{rows}\n|}}')
    out += ["== See also ==", f"* [[{region.name}]]", "", f"[[Category:{e.type.capitalize()}s in the {region.name}]]"]
    return "\n".join(out)


def _organisation(a: _ArticleWriter) -> str:
    e = a.e
    home, founder = a.one("located_in").object, a.one("founded_by").object
    year = a.one("founded_year").object
    assert isinstance(home, Entity) and isinstance(founder, Entity)
    out = [_infobox("organization", [("name", e.name), ("type", e.type), ("location", f"[[{home.name}]]"),
                                     ("founder", f"[[{founder.name}]]"), ("founded", str(year))])]
    out.append(" ".join([a.say(a.one("type"), subject_only=True), a.say(a.one("located_in"), pronoun=True)]))
    out += ["== History ==", " ".join([a.say(a.one("founded_by")), a.say(a.one("founded_year"), pronoun=True)])]
    staff = a.mentioning("works_for")[:8]
    if staff:
        out += ["== Staff ==", " ".join(a.say(f) for f in staff)]
    fans = a.mentioning("likes")[:3] + a.mentioning("dislikes")[:2]
    if fans:
        out += ["== Reception ==", " ".join(a.say(f) for f in fans)]
    out += ["== References ==", "{{Reflist}}", "",
            f"[[Category:Organisations in {home.name}]]", f"[[Category:{e.type.capitalize()}s]]"]
    return "\n".join(out)


def _region(a: _ArticleWriter) -> str:
    e, r = a.e, a.r
    places = [f.subject for f in a.mentioning("located_in", "place")]
    out = [a.say(a.one("type"), subject_only=True)]
    if places:
        out[0] += (f" {capitalise(r.name(e))} {'contain' if e.plural else 'contains'} "
                   f"{len(places)} places, among them {_listing([r.name(q) for q in places[:6]])}.")
        out += ["== Places ==", " ".join(a.say(a.w.facts_about(q, "located_in")[0]) for q in places[:10])]
    out += ["== See also ==", *(f"* [[{q.name}]]" for q in places[:5]), "", "[[Category:Regions]]"]
    return "\n".join(out)


def _thing(a: _ArticleWriter) -> str:
    e = a.e
    owner = a.mentioning("owns")[0]
    out = [_infobox("animal" if e.kind == "animal" else "object", [("name", e.name), ("type", e.type)])]
    sentences = [a.say(a.one("type"), subject_only=True), a.say(owner)]
    sentences += [a.say(a.one(rel), pronoun=a.rng.random() < 0.5) for rel in ("colour", "size", "age")]
    out.append(" ".join(sentences))
    out += ["", f"[[Category:{e.type.capitalize()}s]]"]
    return "\n".join(out)


_WRITERS: dict[str, Callable[[_ArticleWriter], str]] = {
    "person": _person, "place": _place, "organisation": _organisation, "region": _region,
    "animal": _thing, "object": _thing,
}


def _redirects(e: Entity, taken: set[str]) -> list[Page]:
    """Alternative titles pointing at ``e``'s article (skipped where they would clash)."""
    alts = {"person": [f"{e.given[:1]}. {e.family}"], "organisation": [f"{e.name.rsplit(' ', 1)[0]} {e.type}"],
            "place": [f"{e.name} ({e.type})"], "animal": [e.name], "object": [f"The {e.name}"],
            "region": [f"The {e.name}"]}[e.kind]
    pages = []
    for alt in alts:
        if alt not in taken and alt != title_of(e):
            taken.add(alt)
            pages.append(Page(alt, 0, f"#REDIRECT [[{title_of(e)}]]", redirect=title_of(e)))
    return pages


def article_pages(world: World, words: int, rng: random.Random) -> tuple[list[Page], int]:
    """Articles (regions first, then the rest shuffled) until ``words`` plain words are
    written; each followed by its redirects.  Returns the pages and the word count."""
    rest = [e for e in world.entities if e.kind != "region"]
    rng.shuffle(rest)
    order = world.of_kind("region") + rest
    titles = {e.id: title_of(e) for e in world.entities}
    taken = set(titles.values())
    pages: list[Page] = []
    total = 0
    for e in order:
        if total >= words:
            break
        text = _WRITERS[e.kind](_ArticleWriter(world, e, titles, rng))
        pages.append(Page(title_of(e), 0, text))
        pages += _redirects(e, taken)
        total += count_words(plain_text(text))
    return pages, total


def _category_pages(world: World) -> list[Page]:
    return [Page(f"Category:People from {p.name}", 14, f"People who live in [[{p.name}]].\n\n"
                 "[[Category:People by place]]") for p in world.of_kind("place")]


def _page_xml(page: Page, page_id: int) -> str:
    text = page.text
    sha1 = _base36(int(hashlib.sha1(text.encode()).hexdigest(), 16)).rjust(31, "0")
    redirect = f"    <redirect title={quoteattr(page.redirect)} />\n" if page.redirect else ""
    return (f"  <page>\n    <title>{escape(page.title)}</title>\n    <ns>{page.ns}</ns>\n"
            f"    <id>{page_id}</id>\n{redirect}    <revision>\n      <id>{100000 + page_id}</id>\n"
            f"      <timestamp>{TIMESTAMP}</timestamp>\n"
            f"      <contributor>\n        <ip>127.0.0.1</ip>\n      </contributor>\n"
            f"      <model>wikitext</model>\n      <format>text/x-wiki</format>\n"
            f'      <text bytes="{len(text.encode())}" xml:space="preserve">{escape(text)}</text>\n'
            f"      <sha1>{sha1}</sha1>\n    </revision>\n  </page>\n")


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, d = divmod(n, 36)
        out = digits[d] + out
    return out or "0"


def write_wiki_dump(path: Path, world: World, *, words: int, seed: int) -> dict[str, int]:
    """Writes the dump to ``path`` (not atomically: the caller writes to a temp name).

    Returns counts: pages, articles, redirects, templates, categories, words (plain).
    """
    rng = random.Random(f"kdbudget-demo-wiki:{seed}")
    articles, n_words = article_pages(world, words, rng)
    templates = [Page(t, 10, body) for t, body in TEMPLATES.items()]
    pages = templates + articles + _category_pages(world)
    with bz2.open(path, "wt", encoding="utf-8", compresslevel=BZ2_LEVEL) as fh:
        fh.write(_HEADER)
        for i, page in enumerate(pages, start=1):
            fh.write(_page_xml(page, i))
        fh.write("</mediawiki>\n")
    n_redirects = sum(p.redirect is not None for p in pages)
    return {"pages": len(pages), "articles": sum(p.ns == 0 and p.redirect is None for p in pages),
            "redirects": n_redirects, "templates": len(templates),
            "categories": sum(p.ns == 14 for p in pages), "words": n_words}
