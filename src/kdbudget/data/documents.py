"""The document format that flows between the corpus rules.

One JSON object per line: ``source`` (wikipedia, bookcorpus), ``id``, ``title``
and ``text`` (paragraphs separated by newlines). Extraction writes it, cleaning
and sharding read and write it, packing reads it.

No document holds more than :data:`MAX_DOC_CHARS` characters: extraction splits
a longer book (or article) between paragraphs into parts ``{id}#1``, ``{id}#2``,
..., each with ``group`` set to the source's own id, which decides the
train/validation split, so that a book never straddles both. Every later job
holds at most one document (or a batch of them) in memory at a time, so this
bound, not the largest book of a corpus, sets their memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path
from typing import Any, TextIO

from kdbudget.io import atomic_path

# About 170,000 words: a long novel stays one document (packing then sees it whole, as BERT's
# create_pretraining_data does), while a 50 MB file (a whole shelf in one .txt, or text without
# book boundaries) becomes parts that each job handles in bounded memory.
MAX_DOC_CHARS = 1_000_000


def read_documents(path: str | Path) -> Iterator[dict[str, Any]]:
    path = Path(path)
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line_no}: not a JSON document line ({err.msg})") from None


def write_documents(path: str | Path, documents: Iterable[dict[str, Any]]) -> int:
    """Write documents atomically; return how many were written."""
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for doc in documents:
            handle.write(json.dumps(doc, ensure_ascii=False) + "\n")
            count += 1
    return count


def bounded_lines(handle: TextIO, max_chars: int = MAX_DOC_CHARS) -> Iterator[str]:
    """Lines of ``handle`` (newlines kept), none longer than ``max_chars``.

    Reads at most ``max_chars`` characters at a time, so a file without line breaks never sits in
    memory whole; a longer line is broken after its last space or tab within the limit (mid-word
    only where it has none)."""
    carry = ""
    while True:
        chunk = handle.readline(max_chars - len(carry))
        if not chunk:
            if carry:
                yield carry
            return
        line, carry = carry + chunk, ""
        if line.endswith("\n") or len(line) < max_chars:
            yield line
            continue
        cut = max(line.rfind(" "), line.rfind("\t")) + 1
        if cut <= 0:
            cut = len(line)
        yield line[:cut]
        carry = line[cut:]  # shorter than max_chars: the next read is never empty by request


def split_text(lines: Iterable[str], max_chars: int = MAX_DOC_CHARS) -> Iterator[str]:
    """Join ``lines`` (each at most ``max_chars``, newlines kept) into texts of at most
    ``max_chars`` characters, breaking only between lines."""
    part: list[str] = []
    size = 0
    for line in lines:
        if part and size + len(line) > max_chars:
            yield "".join(part)
            part, size = [], 0
        part.append(line)
        size += len(line)
    if part:
        yield "".join(part)


def document_parts(doc: dict[str, Any], parts: Iterable[str]) -> Iterator[dict[str, Any]]:
    """``doc`` (without its text) once per text of ``parts``: unchanged where there is one text
    (an empty one where there is none), else as parts ``{id}#1``, ``{id}#2``, ... of ``group`` id."""
    parts = iter(parts)
    first = next(parts, "")
    second = next(parts, None)
    if second is None:
        yield {**doc, "text": first}
        return
    for number, text in enumerate(chain([first, second], parts), 1):
        yield {**doc, "id": f"{doc['id']}#{number}", "group": doc["id"], "text": text}
