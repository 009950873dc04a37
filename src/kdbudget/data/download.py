"""Fetching sources that need the internet. Only local rules of the paper
configuration call these; tests and the demo never do."""

from __future__ import annotations

import hashlib
import logging
import urllib.request
from pathlib import Path

from kdbudget.io import atomic_dir, atomic_path
from kdbudget.log import progress

log = logging.getLogger(__name__)


class ChecksumError(RuntimeError):
    """A downloaded file does not match its published checksum."""


def wikipedia_dump_url(mirror: str, language: str, date: str) -> str:
    return f"{mirror.rstrip('/')}/{language}wiki/{date}/{language}wiki-{date}-pages-articles.xml.bz2"


def published_sha1(mirror: str, language: str, date: str, filename: str) -> str:
    """Read the dump's SHA-1 from the mirror's ``sha1sums.txt`` for that dump run."""
    url = f"{mirror.rstrip('/')}/{language}wiki/{date}/{language}wiki-{date}-sha1sums.txt"
    with urllib.request.urlopen(url, timeout=60) as response:
        for line in response.read().decode("utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == filename:
                return parts[0]
    raise ChecksumError(f"{filename} is not listed in {url}")


def download(url: str, dest: str | Path, sha1: str | None) -> None:
    """Stream ``url`` to ``dest`` atomically, verifying its SHA-1 when given."""
    digest = hashlib.sha1()
    with atomic_path(dest) as tmp, urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        bar = progress(total=total, unit="B", unit_scale=True, desc=Path(dest).name)
        while chunk := response.read(1 << 22):
            out.write(chunk)
            digest.update(chunk)
            bar.update(len(chunk))
        bar.close()
        if sha1 and digest.hexdigest() != sha1:
            raise ChecksumError(f"{url}: SHA-1 {digest.hexdigest()} does not match the expected {sha1}")
    log.info("downloaded %s (sha1 %s)", dest, digest.hexdigest())


def fetch_wikipedia(mirror: str, language: str, date: str, dest: str | Path, sha1: str | None = None) -> None:
    url = wikipedia_dump_url(mirror, language, date)
    expected = sha1 or published_sha1(mirror, language, date, url.rsplit("/", 1)[1])
    download(url, dest, expected)


def fetch_hub_tokenizer(name: str, out_dir: str | Path) -> None:
    """Save a hub model's tokenizer (the teacher's) into ``out_dir``."""
    from transformers import AutoTokenizer

    from kdbudget.data.tokenizer import check_bert_tokenizer, save_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(name)
    check_bert_tokenizer(tokenizer, name)
    save_tokenizer(tokenizer, out_dir)


def fetch_hub_books(name: str, out_dir: str | Path, lines_per_book: int) -> int:
    """Write a line-per-sentence hub dataset (e.g. a BookCorpus copy) as a book folder.

    Such datasets lose book boundaries; every ``lines_per_book`` lines become one
    document so that packing still sees multi-sentence context.
    """
    from datasets import load_dataset

    dataset = load_dataset(name, split="train")
    if "text" not in dataset.column_names:
        raise ValueError(f"hub dataset {name} has no 'text' column (columns: {dataset.column_names})")
    books = 0
    with atomic_dir(out_dir) as tmp:
        for start in progress(range(0, len(dataset), lines_per_book), desc="books", unit="book"):
            lines = dataset[start:start + lines_per_book]["text"]
            (tmp / f"book_{books:07d}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
            books += 1
    return books
