"""Document cleaning: markup wikiextractor leaves behind, whitespace, headings,
and the filters that decide whether a document is kept at all."""

from __future__ import annotations

import hashlib
import html
import re

_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
_LINK = re.compile(r"\[\[(?:[^\[\]|]*\|)?([^\[\]]*)\]\]")
_EXTERNAL_LINK = re.compile(r"\[https?://[^\s\]]+(?:\s([^\]]*))?\]")
_REF = re.compile(r"<ref[^<>]*/>|<ref[^<>]*>.*?</ref>|<!--.*?-->", re.IGNORECASE)
_TAG = re.compile(r"</?[a-zA-Z][^<>]*?/?>")
_TABLE_LINE = re.compile(r"^\s*(\{\||\|\}|\|-|!|\|)")
_BOLD_ITALIC = re.compile(r"'{2,}")
_SPACES = re.compile(r"[ \t\u00a0]+")


def _strip_markup(line: str) -> str:
    line = html.unescape(line)
    for _ in range(3):  # nested templates/links shrink one level per pass
        line = _TEMPLATE.sub("", line)
    line = _LINK.sub(r"\1", line)
    line = _EXTERNAL_LINK.sub(lambda m: m.group(1) or "", line)
    line = _REF.sub("", line)
    line = _TAG.sub("", line)
    line = _BOLD_ITALIC.sub("", line)
    return _SPACES.sub(" ", line).strip()


def clean_text(text: str, *, min_line_words: int = 1) -> str:
    """Return ``text`` with markup leftovers, table rows and lines of fewer than
    ``min_line_words`` words removed.

    wikiextractor keeps the title and section headings ("History.") as lines
    of their own; a small ``min_line_words`` drops them from articles, while
    books keep their one-word dialogue lines. Paragraph structure (one
    paragraph per line) is kept; sentence splitting happens per shard.
    """
    kept = []
    for raw in text.splitlines():
        if _TABLE_LINE.match(raw):
            continue
        line = _strip_markup(raw)
        if line and len(line.split()) >= min_line_words:
            kept.append(line)
    return "\n".join(kept)


def word_count(text: str) -> int:
    return len(text.split())


def fingerprint(text: str) -> bytes:
    """Digest of a document's words, for exact-duplicate detection."""
    return hashlib.blake2b(" ".join(text.split()).encode("utf-8"), digest_size=16).digest()
