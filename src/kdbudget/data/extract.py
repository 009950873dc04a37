"""Reading the raw sources into documents: a Wikipedia dump through
wikiextractor 3.1.0, and a folder of plain-text books."""

from __future__ import annotations

import codecs
import io
import json
import logging
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kdbudget.data.documents import MAX_DOC_CHARS, bounded_lines, document_parts, split_text, write_documents

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """A corpus source is missing, unreadable or empty."""


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise SourceError(f"{what} not found: {path}")
    if path.stat().st_size == 0:
        raise SourceError(f"{what} is empty: {path}")


# A MediaWiki export's closing tag: an uncompressed dump that does not end with it was cut short.
_DUMP_END = b"</mediawiki>"
_COMPRESSED = (".bz2", ".gz")


def check_dump_complete(dump: Path) -> None:
    """Refuse an uncompressed dump that does not end with ``</mediawiki>``.

    A dump cut short (a full disk while running ``bunzip2``, an interrupted copy) is otherwise
    read up to its last complete page without complaint, and the corpus silently loses the rest.
    Compressed dumps need no look here: their decompressor fails on a truncated stream, and
    :func:`run_wikiextractor` reports that as a truncated dump.
    """
    if dump.name.endswith(_COMPRESSED):
        return
    with open(dump, "rb") as handle:
        handle.seek(max(0, dump.stat().st_size - 4096))
        tail = handle.read().rstrip()
    if not tail.endswith(_DUMP_END):
        raise SourceError(
            f"Wikipedia dump {dump} is incomplete: it does not end with {_DUMP_END.decode()} "
            "(cut short, e.g. by a full disk while decompressing or an interrupted copy?)"
        )


def run_wikiextractor(dump: Path, out_dir: Path, processes: int = 1) -> None:
    """Run wikiextractor on ``dump`` writing JSON lines under ``out_dir``."""
    cmd = [
        sys.executable, "-m", "wikiextractor.WikiExtractor", str(dump),
        "--json", "--output", str(out_dir), "--processes", str(max(1, processes)),
        "--bytes", "100M", "--quiet",
    ]
    log.info("running %s", " ".join(cmd))
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.stderr.strip():
        log.info("wikiextractor stderr:\n%s", result.stderr.strip()[-5000:])
    if result.returncode != 0 and "EOFError" in result.stderr:
        # bz2/gzip: "Compressed file ended before the end-of-stream marker was reached".
        raise SourceError(f"Wikipedia dump {dump} is truncated: the compressed stream ends early "
                          f"(an interrupted download or copy?): {result.stderr.strip().splitlines()[-1]}")
    if result.returncode != 0:
        raise SourceError(f"wikiextractor failed on {dump} (exit {result.returncode}): {result.stderr.strip()[-2000:]}")


def _wikiextractor_articles(out_dir: Path) -> Iterator[dict[str, Any]]:
    # wikiextractor writes AA/wiki_00, AA/wiki_01, ..., AB/...; sorted order keeps dump order.
    for part in sorted(p for p in out_dir.rglob("wiki_*") if p.is_file()):
        with open(part, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    article = json.loads(line)
                    doc = {"source": "wikipedia", "id": f"wiki:{article['id']}", "title": article.get("title", "")}
                    text = article.get("text", "")
                    # Articles are far below the bound; the rare longer one is split as a book is.
                    yield from document_parts(doc, split_text(bounded_lines(io.StringIO(text))))


def extract_wikipedia(dump: str | Path, out_path: str | Path, processes: int = 1) -> dict[str, int]:
    """Extract a MediaWiki pages-articles dump (.xml or .xml.bz2) into documents."""
    dump = Path(dump)
    _require_file(dump, "Wikipedia dump")
    check_dump_complete(dump)
    with tempfile.TemporaryDirectory(prefix="wikiextractor.", dir=Path(out_path).parent) as tmp:
        run_wikiextractor(dump, Path(tmp) / "out", processes)
        count = write_documents(out_path, _wikiextractor_articles(Path(tmp) / "out"))
    if count == 0:
        Path(out_path).unlink(missing_ok=True)
        raise SourceError(f"no articles extracted from Wikipedia dump {dump}: is it a pages-articles XML dump?")
    log.info("extracted %d articles from %s", count, dump)
    return {"documents": count}


def not_text(path: Path) -> str | None:
    """Why ``path`` is not a plain-text book (None where it is one): not UTF-8, or binary.

    Decoded in 1 MiB blocks, so a large file costs no more memory than a small one. A NUL byte
    marks a binary file (or UTF-16 text) even where its bytes happen to decode."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            nul = block.find(b"\0")
            if nul >= 0:
                return f"binary (a NUL byte at byte {offset + nul})"
            try:
                decoder.decode(block)
            except UnicodeDecodeError as err:
                return f"not UTF-8 text (near byte {offset + err.start}: {err.reason})"
            offset += len(block)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as err:
        return f"not UTF-8 text (it ends inside a character: {err.reason})"
    return None


def _book_documents(folder: Path, books: list[Path], counts: Counter) -> Iterator[dict[str, Any]]:
    for path in books:
        rel = path.relative_to(folder).as_posix()
        # utf-8-sig: a byte-order mark (Windows editors write one) is not text; strict decoding is
        # safe, not_text() has read the whole file.
        with open(path, encoding="utf-8-sig") as handle:
            parts = 0
            for doc in document_parts({"source": "bookcorpus", "id": f"book:{rel}", "title": path.stem},
                                      split_text(bounded_lines(handle, MAX_DOC_CHARS), MAX_DOC_CHARS)):
                parts += 1
                yield doc
        counts["books"] += 1
        if parts > 1:
            counts["split_books"] += 1
            log.info("book %s has more than %d characters: split into %d documents", path, MAX_DOC_CHARS, parts)


def read_books(folder: str | Path, out_path: str | Path) -> dict[str, int]:
    """Read a folder of plain-text books (``*.txt``, recursively) into documents.

    A file that is not UTF-8 text (a binary file, another encoding) is skipped with a warning
    naming it and counted in the log: decoding it anyway would turn its bytes into replacement
    characters and random symbols that the tokenizer then learns. If no file is text, nothing is
    written and the folder is named. Books longer than ``MAX_DOC_CHARS`` characters become several
    documents (kdbudget.data.documents)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"book folder not found: {folder}")
    candidates = sorted(folder.rglob("*.txt"))
    if not candidates:
        raise SourceError(f"book folder has no *.txt files: {folder}")
    books, skipped = [], []
    for path in candidates:
        reason = not_text(path)
        if reason is None:
            books.append(path)
        else:
            skipped.append(path)
            log.warning("skipping %s: %s", path, reason)
    if not books:
        raise SourceError(f"book folder {folder} has no readable books: all {len(skipped)} *.txt files are binary "
                          f"or not UTF-8 text (e.g. {skipped[0]})")
    counts: Counter = Counter()
    documents = write_documents(out_path, _book_documents(folder, books, counts))
    stats = {"documents": documents, "books": counts["books"], "split_books": counts["split_books"],
             "skipped_not_text": len(skipped)}
    log.info("read %d books from %s into %d documents (%d split for length); skipped %d files that are not "
             "UTF-8 text", stats["books"], folder, documents, stats["split_books"], len(skipped))
    return stats
