"""Bad corpus input, one row each: the error (or, for a file that is skipped, the warning) names
the culprit file or config key, and nothing that looks like a finished output is left behind.

The last two rows passed before these checks were added: they keep the older messages honest."""

from __future__ import annotations

import bz2
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import base_config, run_snakemake, write_books, write_wiki_dump

from kdbudget.data.extract import SourceError, extract_wikipedia, read_books
from kdbudget.data.shard import EmptyCorpusError, shard_documents


@dataclass
class Outcome:
    message: str  # the error, or the log where the step succeeds with a warning
    failed: bool
    culprits: list[str]  # what the message must name
    absent: list[Path] = field(default_factory=list)  # outputs that must not exist


@contextlib.contextmanager
def captured_log() -> Iterator[list[str]]:
    lines: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("kdbudget")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def _calling(step: Callable[[], object], *errors: type[Exception]) -> tuple[str, bool]:
    with captured_log() as lines:
        try:
            step()
        except errors as err:
            return str(err), True
    return "\n".join(lines), False


def _dry_run(tmp_path: Path, config: dict, *targets: str) -> tuple[str, bool]:
    result = run_snakemake(tmp_path / "work", config, *(targets or ("data",)), "-n", check=False)
    return result.stdout + result.stderr, result.returncode != 0


def _plain_dump(tmp_path: Path) -> bytes:
    return bz2.decompress(write_wiki_dump(tmp_path / "full.xml.bz2", n_articles=40).read_bytes())


def glue_dir_without_path(tmp_path: Path) -> Outcome:
    message, failed = _dry_run(tmp_path, base_config(glue={"source": "dir"}))
    return Outcome(message, failed, ["glue.path"], [tmp_path / "work" / "results"])


def documents_of_an_unused_source(tmp_path: Path) -> Outcome:
    config = base_config(corpus={"bookcorpus": {"source": "none"}})
    message, failed = _dry_run(tmp_path, config, "results/data/extracted/bookcorpus.jsonl")
    return Outcome(message, failed, ["corpus.bookcorpus.source"], [tmp_path / "work" / "results"])


def truncated_xml_dump(tmp_path: Path) -> Outcome:
    # A full disk during bunzip2: the dump stops in the middle of a page.
    xml = _plain_dump(tmp_path)
    dump = tmp_path / "enwiki-pages-articles.xml"
    dump.write_bytes(xml[: len(xml) // 2])
    out = tmp_path / "wikipedia.jsonl"
    message, failed = _calling(lambda: extract_wikipedia(dump, out), SourceError)
    return Outcome(message, failed, [str(dump), "</mediawiki>"], [out])


def truncated_bz2_dump(tmp_path: Path) -> Outcome:
    data = write_wiki_dump(tmp_path / "full.xml.bz2", n_articles=40).read_bytes()
    dump = tmp_path / "enwiki-pages-articles.xml.bz2"
    dump.write_bytes(data[: len(data) - 40])  # loses only the end of the stream
    out = tmp_path / "wikipedia.jsonl"
    message, failed = _calling(lambda: extract_wikipedia(dump, out), SourceError)
    return Outcome(message, failed, [str(dump), "truncated"], [out])


def binary_book_among_books(tmp_path: Path) -> Outcome:
    books = write_books(tmp_path / "books", n_books=2)
    binary = books / "scan.txt"
    binary.write_bytes(bytes(range(256)) * 200)  # a NUL byte, and invalid UTF-8 further on
    out = tmp_path / "bookcorpus.jsonl"
    message, failed = _calling(lambda: read_books(books, out), SourceError)
    assert out.read_text(encoding="utf-8").count("\n") == 2 and "\ufffd" not in out.read_text(encoding="utf-8")
    return Outcome(message, failed, [str(binary), "binary", "skipped 1 "])


def latin1_book_among_books(tmp_path: Path) -> Outcome:
    books = write_books(tmp_path / "books", n_books=2)
    latin1 = books / "nested" / "café.txt"
    latin1.parent.mkdir()
    latin1.write_bytes("Le café était fermé, et la pluie tombait sur la place déserte.\n".encode("latin-1"))
    out = tmp_path / "bookcorpus.jsonl"
    message, failed = _calling(lambda: read_books(books, out), SourceError)
    return Outcome(message, failed, [str(latin1), "not UTF-8", "skipped 1 "])


def only_binary_books(tmp_path: Path) -> Outcome:
    books = tmp_path / "books"
    books.mkdir()
    (books / "a.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)
    (books / "b.txt").write_bytes("plain words".encode("utf-16"))  # NUL bytes: UTF-16, not UTF-8
    out = tmp_path / "bookcorpus.jsonl"
    message, failed = _calling(lambda: read_books(books, out), SourceError)
    return Outcome(message, failed, [str(books), str(books / "a.txt"), "all 2 "], [out])


def missing_book_folder(tmp_path: Path) -> Outcome:
    missing = tmp_path / "no-books"
    config = base_config(corpus={"bookcorpus": {"source": "dir", "path": str(missing)}})
    message, failed = _dry_run(tmp_path, config)
    return Outcome(message, failed, [str(missing)], [tmp_path / "work" / "results"])


def empty_corpus_after_cleaning(tmp_path: Path) -> Outcome:
    books = write_books(tmp_path / "books", n_books=1)
    docs = tmp_path / "bookcorpus.jsonl"
    read_books(books, docs)
    train, validation = tmp_path / "docs" / "train-000.jsonl", tmp_path / "docs" / "validation-000.jsonl"
    message, failed = _calling(lambda: shard_documents([docs], [train], validation, min_doc_words=100000,
                                                       validation_fraction=0.1, seed=1), EmptyCorpusError)
    return Outcome(message, failed, [str(docs), "corpus.min_doc_words=100000"], [train, validation])


ROWS = [
    # (case, should it fail?)
    (glue_dir_without_path, True),
    (documents_of_an_unused_source, True),
    (truncated_xml_dump, True),
    (truncated_bz2_dump, True),
    (binary_book_among_books, False),
    (latin1_book_among_books, False),
    (only_binary_books, True),
    # Passed before: a regression net.
    (missing_book_folder, True),
    (empty_corpus_after_cleaning, True),
]


@pytest.mark.parametrize("case, fails", ROWS, ids=[case.__name__ for case, _ in ROWS])
def test_bad_input_is_named(tmp_path: Path, case: Callable[[Path], Outcome], fails: bool) -> None:
    outcome = case(tmp_path)
    assert outcome.failed == fails, outcome.message[-3000:]
    for culprit in outcome.culprits:
        assert culprit in outcome.message, f"{culprit!r} not named in:\n{outcome.message[-3000:]}"
    for path in outcome.absent:
        assert not path.exists(), f"{path} was left behind"


def test_a_complete_uncompressed_dump_is_read(tmp_path: Path) -> None:
    """The completeness check does not refuse a good .xml dump (trailing newline and all)."""
    dump = tmp_path / "enwiki-pages-articles.xml"
    dump.write_bytes(_plain_dump(tmp_path))
    assert extract_wikipedia(dump, tmp_path / "wikipedia.jsonl") == {"documents": 40}
