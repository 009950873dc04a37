"""Fetching sources that need the internet. Only local rules of the paper
configuration call these; tests and the demo never do (the tests serve a
mirror on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kdbudget.io import FILE_MODE, atomic_dir, write_json
from kdbudget.log import progress

log = logging.getLogger(__name__)

TIMEOUT_S = 60.0
CHUNK_BYTES = 1 << 22
RETRIES = 3


class DownloadError(RuntimeError):
    """A transfer failed; the message names the URL. ``status`` is the HTTP
    status when the server answered with an error."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransferInterrupted(DownloadError):
    """A failure worth retrying (broken connection, timeout, a busy server);
    the partial file is kept so that the retry resumes it."""


class ChecksumError(DownloadError):
    """A downloaded file does not match its published (or configured) checksum."""


@dataclass(frozen=True)
class DumpRun:
    """The dated dump a configured ``dump_date`` stands for, and its SHA-1."""

    url: str
    language: str
    requested_date: str
    dump_date: str
    filename: str
    sha1: str
    sha1_source: str  # "config" or the sha1sums URL it was read from


def dump_filename(language: str, date: str) -> str:
    return f"{language}wiki-{date}-pages-articles.xml.bz2"


def wikipedia_dump_url(mirror: str, language: str, date: str) -> str:
    return f"{mirror.rstrip('/')}/{language}wiki/{date}/{dump_filename(language, date)}"


def sha1sums_url(mirror: str, language: str, date: str) -> str:
    return f"{mirror.rstrip('/')}/{language}wiki/{date}/{language}wiki-{date}-sha1sums.txt"


def _open(url: str, timeout: float, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        # Overload and gateway errors pass; a 404 or 403 will not.
        kind = TransferInterrupted if err.code in (408, 429) or err.code >= 500 else DownloadError
        raise kind(f"{url}: HTTP {err.code} {err.reason}", status=err.code) from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise TransferInterrupted(f"{url}: cannot connect ({reason})") from None


def _read_text(url: str, timeout: float) -> str:
    with _open(url, timeout) as response:
        try:
            return response.read().decode("utf-8")
        except (OSError, http.client.HTTPException, UnicodeDecodeError) as err:
            raise DownloadError(f"{url}: cannot read ({err})") from None


def parse_sha1sums(text: str) -> dict[str, str]:
    """``sha1sum`` output (``HEX  NAME`` per line) as {name: hex}."""
    sums = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and re.fullmatch(r"[0-9a-fA-F]{40}", parts[0]):
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def resolve_dump(mirror: str, language: str, date: str, sha1: str | None = None,
                 timeout: float = TIMEOUT_S) -> DumpRun:
    """Find the dated run, URL and SHA-1 of ``date`` (``latest`` or ``YYYYMMDD``).

    ``latest/`` holds undated links, but its sha1sums file is a copy of the run's
    own and lists dated names; the dated name therefore both resolves the date
    and checks the file, which is then fetched from the dated folder so that
    the URL, the name and the checksum all refer to the same run.
    """
    if date != "latest" and sha1:
        # Nothing to look up: the date and the checksum are both given.
        return DumpRun(wikipedia_dump_url(mirror, language, date), language, date, date,
                       dump_filename(language, date), sha1.lower(), "config")
    sums_url = sha1sums_url(mirror, language, date)
    sums = parse_sha1sums(_read_text(sums_url, timeout))
    if date == "latest":
        # Only the one-file dump: not -multistream, nor the pagesN/-pNpM parts.
        pattern = re.compile(rf"{re.escape(language)}wiki-(\d{{8}})-pages-articles\.xml\.bz2")
        dates = sorted({m.group(1) for name in sums if (m := pattern.fullmatch(name))})
        if len(dates) != 1:
            found = "none" if not dates else ", ".join(dates)
            raise DownloadError(f"{sums_url}: expected one {dump_filename(language, 'YYYYMMDD')} line, found {found}")
        resolved = dates[0]
    else:
        resolved = date
    filename = dump_filename(language, resolved)
    if filename not in sums and not sha1:
        raise DownloadError(f"{sums_url}: {filename} is not listed")
    expected, source = (sha1.lower(), "config") if sha1 else (sums[filename], sums_url)
    return DumpRun(wikipedia_dump_url(mirror, language, resolved), language, date, resolved, filename, expected, source)


def _content_range_start(value: str | None) -> tuple[int, int | None] | None:
    """(first byte, total or None) of a ``Content-Range: bytes A-B/T`` header."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", value or "")
    if not match:
        return None
    return int(match.group(1)), None if match.group(2) == "*" else int(match.group(2))


def _hash_file(path: Path) -> tuple[Any, int]:
    digest, size = hashlib.sha1(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest, size


def _transfer(url: str, part: Path, timeout: float, chunk_bytes: int) -> tuple[str, int]:
    """Bring ``part`` up to the whole of ``url`` (resuming it); return (sha1, bytes)."""
    if part.exists():
        digest, offset = _hash_file(part)
    else:
        digest, offset = hashlib.sha1(), 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = _open(url, timeout, headers)
    except DownloadError as err:
        if offset and err.status == 416:
            # The part is not a prefix the server can continue (as long as or
            # longer than the file): it cannot be trusted, start again.
            log.warning("%s: range %d- not satisfiable, restarting from zero", url, offset)
            part.unlink()
            return _transfer(url, part, timeout, chunk_bytes)
        raise
    with response:
        length = response.headers.get("Content-Length")
        total: int | None = None
        if offset and response.status == 206:
            start = _content_range_start(response.headers.get("Content-Range"))
            if start is None or start[0] != offset:
                # Not the continuation that was asked for: the part cannot be
                # extended safely, so it is dropped and the file fetched whole.
                log.warning("%s: asked for bytes %d- but got Content-Range %r, restarting from zero", url, offset,
                            response.headers.get("Content-Range"))
                response.close()
                part.unlink()
                return _transfer(url, part, timeout, chunk_bytes)
            total = start[1] if start[1] is not None else (offset + int(length) if length else None)
            log.info("resuming %s at byte %d", url, offset)
        else:
            if offset:
                # The server ignored the Range request and sends the whole file.
                log.warning("%s: the server answered %d to a Range request, restarting from zero", url,
                            response.status)
            digest, offset = hashlib.sha1(), 0
            total = int(length) if length else None
        mode = "ab" if offset else "wb"
        received = offset
        bar = progress(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                       desc=part.name.removesuffix(".part"))
        try:
            with open(part, mode) as out:
                while True:
                    try:
                        chunk = response.read(chunk_bytes)
                    except (OSError, http.client.HTTPException) as err:
                        raise TransferInterrupted(f"{url}: transfer broke after {received} bytes ({err}); "
                                                  f"{part} is kept and a rerun resumes it") from None
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        finally:
            bar.close()
    # urllib returns an empty read, not an error, when the peer closes early.
    if total is not None and received != total:
        raise TransferInterrupted(f"{url}: transfer ended after {received} of {total} bytes; "
                                  f"{part} is kept and a rerun resumes it")
    return digest.hexdigest(), received


def download(url: str, dest: str | Path, sha1: str | None, *, part: str | Path | None = None,
             timeout: float = TIMEOUT_S, retries: int = RETRIES, retry_wait_s: float = 10.0,
             chunk_bytes: int = CHUNK_BYTES) -> tuple[str, int]:
    """Fetch ``url`` to ``dest`` through a resumable partial file; return (sha1, bytes).

    The partial file (``part``, default ``DEST.part``) has a stable name so that
    a broken transfer, in this call (``retries`` times) or in a later run,
    continues with an HTTP Range request. ``dest`` appears only after the SHA-1
    of the whole file matched ``sha1`` (when given); a mismatch deletes the part.
    """
    dest = Path(dest)
    part = Path(part) if part else dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            actual, size = _transfer(url, part, timeout, chunk_bytes)
            break
        except TransferInterrupted as err:
            if attempt == retries:
                raise
            wait = retry_wait_s * 2 ** attempt
            log.warning("%s; retrying in %.0f s (%d of %d)", err, wait, attempt + 1, retries)
            time.sleep(wait)
    if sha1 and actual != sha1.lower():
        # A complete but wrong file cannot be resumed into a right one.
        part.unlink(missing_ok=True)
        raise ChecksumError(f"{url}: SHA-1 {actual} does not match the expected {sha1.lower()}; "
                            f"the download was deleted")
    os.chmod(part, FILE_MODE)
    os.replace(part, dest)
    log.info("downloaded %s to %s (%d bytes, sha1 %s)", url, dest, size, actual)
    return actual, size


def fetch_wikipedia(mirror: str, language: str, date: str, dest: str | Path, sha1: str | None = None,
                    record: str | Path | None = None, **download_options: Any) -> dict[str, Any]:
    """Download the pages-articles dump of ``date`` (``latest`` is resolved to its
    dated run) to ``dest`` and describe it in the JSON ``record`` (url, dated run,
    sha1, bytes), which tells which dump ``latest`` was."""
    run = resolve_dump(mirror, language, date, sha1, timeout=download_options.get("timeout", TIMEOUT_S))
    if date == "latest":
        log.info("latest %swiki dump is the run of %s", language, run.dump_date)
    # The part is named after the dated file: a part left by an older "latest"
    # is then never continued with a newer run's bytes, and a dated config of
    # the same run shares it.
    part = Path(dest).with_name(run.filename + ".part")
    actual, size = download(run.url, dest, run.sha1, part=part, **download_options)
    info = {**asdict(run), "sha1": actual, "bytes": size}
    if record:
        write_json(record, info)
    return info


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
