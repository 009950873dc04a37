"""The document format that flows between the corpus rules.

One JSON object per line: ``source`` (wikipedia, bookcorpus), ``id``, ``title``
and ``text`` (paragraphs separated by newlines). Extraction writes it, cleaning
and sharding read and write it, packing reads it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from kdbudget.io import atomic_path


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
