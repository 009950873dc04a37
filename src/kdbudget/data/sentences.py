"""A rule-based sentence splitter.

The paper's code used NLTK's punkt model, which must be downloaded at run
time; this pipeline never downloads, so it splits on sentence-final
punctuation followed by whitespace and an upper-case letter, digit or quote,
protecting common abbreviations and initials. Each input line is a paragraph
and never shares a sentence with another line.
"""

from __future__ import annotations

import re

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt ft vs etc e.g i.e cf al fig no vol pp ed eds "
    "jan feb mar apr jun jul aug sep sept oct nov dec inc ltd co corp gen col lt sgt rev".split()
)
_BOUNDARY = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9À-Þ])")


def _ends_with_abbreviation(chunk: str) -> bool:
    last = chunk.rstrip("\"'”’)]").split()[-1] if chunk.split() else ""
    word = last.rstrip(".").lower()
    if not last.endswith("."):
        return False
    # Single initials ("J. R. R. Tolkien") and listed abbreviations do not end a sentence.
    return len(word) == 1 and word.isalpha() or word in _ABBREVIATIONS


def split_sentences(text: str) -> list[str]:
    """Split ``text`` (one paragraph per line) into sentences."""
    sentences: list[str] = []
    for paragraph in text.splitlines():
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        start = 0
        pending = ""
        for match in _BOUNDARY.finditer(paragraph):
            chunk = pending + paragraph[start:match.start()] + paragraph[match.start():match.end()].rstrip()
            start = match.end()
            if _ends_with_abbreviation(chunk):
                pending = chunk + " "
                continue
            sentences.append(chunk.strip())
            pending = ""
        tail = (pending + paragraph[start:]).strip()
        if tail:
            sentences.append(tail)
    return sentences
