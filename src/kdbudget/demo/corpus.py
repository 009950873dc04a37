"""Writes both demo pretraining sources, atomically, from one seed and one word budget.

Why atomic: Snakemake (and a user's Ctrl-C) must never see a half-written dump or a
books folder with half the books; both are written under temporary names in the
same parent directory and renamed into place only when complete.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path

from kdbudget.demo.books import write_books
from kdbudget.demo.build import build_world
from kdbudget.demo.wiki_dump import write_wiki_dump
from kdbudget.demo.world import World
from kdbudget.io import atomic_dir, atomic_path

#: Plain wiki words written per world entity when every entity gets an article
#: (measured); the world is sized so the wiki budget is reached before the entities
#: run out, and every fact has a good chance to appear in both sources.
WIKI_WORDS_PER_ENTITY = 95
LANGUAGES = ("en",)


def world_size(words: int, wiki_fraction: float) -> int:
    """Entities in the world for a corpus of ``words`` words (at least 10)."""
    wiki_words = max(words * wiki_fraction, words * 0.3)
    return max(10, math.ceil(1.1 * wiki_words / WIKI_WORDS_PER_ENTITY))


def write_demo_corpus(wiki_dump: Path, books_dir: Path, *, words: int, seed: int, wiki_fraction: float = 0.5,
                      language: str = "en") -> dict:
    """Writes the bz2 MediaWiki dump ``wiki_dump`` and the folder of books ``books_dir``.

    ``words`` whitespace words in all (of the text wikiextractor keeps from the dump,
    plus the books), ``wiki_fraction`` of them in the wiki.  The same ``seed`` gives
    byte-identical files.  Both outputs replace what was there, atomically.

    Returns stats: entities, facts, pages, articles, redirects, templates, categories,
    books, wiki_words, book_words, words.
    """
    if isinstance(words, bool) or not isinstance(words, numbers.Integral) or words <= 0:
        raise ValueError(f"words must be a positive integer, got {words!r}")
    if not isinstance(wiki_fraction, (int, float)) or not 0.0 < wiki_fraction < 1.0:
        raise ValueError(f"wiki_fraction must lie strictly between 0 and 1, got {wiki_fraction!r}")
    if language not in LANGUAGES:
        raise ValueError(f"language {language!r} is not supported by the demo corpus (supported: {LANGUAGES})")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    words, seed = int(words), int(seed)
    wiki_dump, books_dir = Path(wiki_dump), Path(books_dir)
    world = build_world(seed, world_size(words, wiki_fraction))
    wiki_words = round(words * wiki_fraction)
    with atomic_path(wiki_dump) as tmp:
        wiki_stats = write_wiki_dump(tmp, world, words=wiki_words, seed=seed)
    with atomic_dir(books_dir) as tmp:
        book_stats = write_books(tmp, world, words=words - wiki_words, seed=seed)
    return {"entities": len(world.entities), "facts": len(world.facts),
            **{k: v for k, v in wiki_stats.items() if k != "words"}, "books": book_stats["books"],
            "wiki_words": wiki_stats["words"], "book_words": book_stats["words"],
            "words": wiki_stats["words"] + book_stats["words"]}


def demo_world(words: int, seed: int, wiki_fraction: float = 0.5) -> World:
    """The world that :func:`write_demo_corpus` uses for these arguments (for task builders)."""
    return build_world(seed, world_size(words, wiki_fraction))
