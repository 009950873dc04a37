"""Reading the raw sources into documents: a Wikipedia dump through
wikiextractor 3.1.0, and a folder of plain-text books."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kdbudget.data.documents import write_documents

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
                    yield {"source": "wikipedia", "id": f"wiki:{article['id']}",
                           "title": article.get("title", ""), "text": article.get("text", "")}


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


def _books(folder: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(folder.rglob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace")
        rel = path.relative_to(folder).as_posix()
        yield {"source": "bookcorpus", "id": f"book:{rel}", "title": path.stem, "text": text}


def read_books(folder: str | Path, out_path: str | Path) -> dict[str, int]:
    """Read a folder of plain-text books (``*.txt``, recursively) into documents."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"book folder not found: {folder}")
    if not any(folder.rglob("*.txt")):
        raise SourceError(f"book folder has no *.txt files: {folder}")
    count = write_documents(out_path, _books(folder))
    log.info("read %d books from %s", count, folder)
    return {"documents": count}
