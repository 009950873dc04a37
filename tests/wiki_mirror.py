"""A local stand-in for dumps.wikimedia.org, for tests that download a dump.

Lay out one or more dump runs like the real mirror and serve them on
127.0.0.1 (a free port, HTTP Range supported)::

    from wiki_mirror import add_dump_run, serve_mirror

    add_dump_run(root, dump_bytes, language="en", date="20231101")   # also updates latest/
    with serve_mirror(root, cut_after=1000) as mirror:
        config["corpus"]["wikipedia"] = {"source": "download", "mirror": mirror.url, "dump_date": "latest"}
        ...
        assert mirror.ranges(".xml.bz2") == ["bytes=1000-"]

Layout of a run (as on the real mirror)::

    {lang}wiki/{date}/{lang}wiki-{date}-pages-articles.xml.bz2
    {lang}wiki/{date}/{lang}wiki-{date}-sha1sums.txt      # several files, multistream ones included
    {lang}wiki/latest/{lang}wiki-latest-pages-articles.xml.bz2
    {lang}wiki/latest/{lang}wiki-latest-sha1sums.txt      # a copy of the run's: DATED names

``cut_after=N`` makes the first GET of a pages-articles dump send its full
``Content-Length`` header but only N body bytes, then close the connection (an
interrupted transfer). ``honour_range=False`` makes the server ignore Range
headers and answer 200 with the whole file. Every request is recorded in
``mirror.requests``. The server thread is stopped when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Requests that take longer than this fail the test rather than hang it.
SOCKET_TIMEOUT_S = 10.0


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def add_dump_run(root: Path, dump: bytes | Path, *, language: str = "en", date: str = "20231101",
                 latest: bool = True, listed_sha1: str | None = None) -> Path:
    """Write a dump run under ``root`` and return the dated dump's path.

    ``listed_sha1`` replaces the dump's true SHA-1 in the sha1sums files (to
    test a mirror that publishes a wrong checksum). With ``latest`` the run also
    becomes ``{lang}wiki/latest/``.
    """
    data = dump.read_bytes() if isinstance(dump, Path) else dump
    name = f"{language}wiki-{date}"
    run = root / f"{language}wiki" / date
    run.mkdir(parents=True, exist_ok=True)
    dump_path = run / f"{name}-pages-articles.xml.bz2"
    dump_path.write_bytes(data)
    # The other files of a real run, listed around the wanted one (the
    # multistream dump and a pagesN part first) so that a reader that takes
    # the first "pages-articles" match gets a wrong checksum.
    others = {
        f"{name}-pages-articles-multistream.xml.bz2": b"multistream " + data,
        f"{name}-pages-articles-multistream-index.txt.bz2": b"index",
        f"{name}-pages-articles1.xml-p1p41242.bz2": b"part one " + data,
        f"{name}-pages-articles-multistream1.xml-p1p41242.bz2": b"multistream part one",
    }
    lines = [f"{_sha1(content)}  {file}" for file, content in others.items()]
    lines.append(f"{listed_sha1 or _sha1(data)}  {dump_path.name}")
    lines += [f"{_sha1(name.encode() + b'meta')}  {name}-pages-meta-current.xml.bz2",
              f"{_sha1(name.encode() + b'abstract')}  {name}-abstract.xml.gz"]
    sums = "\n".join(lines) + "\n"
    (run / f"{name}-sha1sums.txt").write_text(sums, encoding="utf-8")
    if latest:
        latest_dir = root / f"{language}wiki" / "latest"
        latest_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dump_path, latest_dir / f"{language}wiki-latest-pages-articles.xml.bz2")
        (latest_dir / f"{language}wiki-latest-sha1sums.txt").write_text(sums, encoding="utf-8")
    return dump_path


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    status: int


@dataclass
class Mirror:
    """A running mirror: its base ``url`` (use as ``corpus.wikipedia.mirror``)
    and what it was asked. ``cut_after`` and ``honour_range`` may be changed
    while it runs."""

    url: str
    root: Path
    cut_after: int | None = None
    honour_range: bool = True
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def gets(self, suffix: str = "") -> list[Request]:
        """The GET requests whose path ends with ``suffix``."""
        with self.lock:
            return [r for r in self.requests if r.method == "GET" and r.path.endswith(suffix)]

    def ranges(self, suffix: str = "") -> list[str | None]:
        """The Range header (or None) of each GET whose path ends with ``suffix``."""
        return [r.range for r in self.gets(suffix)]


def _handler(mirror: Mirror) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = SOCKET_TIMEOUT_S

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

        def _record(self, status: int) -> None:
            with mirror.lock:
                mirror.requests.append(Request(self.command, self.path, self.headers.get("Range"), status))

        def _error(self, status: int) -> None:
            self._record(status)
            body = f"{status}\n".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            relative = self.path.split("?", 1)[0].lstrip("/")
            path = (mirror.root / relative).resolve()
            if ".." in relative.split("/") or not path.is_file() or mirror.root.resolve() not in path.parents:
                self._error(404)
                return
            data = path.read_bytes()
            start, status = 0, 200
            requested = self.headers.get("Range")
            if requested and mirror.honour_range:
                match = re.fullmatch(r"bytes=(\d+)-", requested.strip())
                if not match:
                    self._error(400)
                    return
                start = int(match.group(1))
                if start >= len(data):
                    self._error(416)
                    return
                status = 206
            body = data[start:]
            cut = None
            if self.command == "GET" and path.name.endswith("pages-articles.xml.bz2"):
                with mirror.lock:
                    cut, mirror.cut_after = mirror.cut_after, None
            self._record(status)
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if self.command == "HEAD":
                return
            if cut is not None and cut < len(body):
                self.wfile.write(body[:cut])
                self.wfile.flush()
                # An interrupted transfer: fewer bytes than announced, then EOF.
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@contextlib.contextmanager
def serve_mirror(root: Path, *, cut_after: int | None = None, honour_range: bool = True) -> Iterator[Mirror]:
    """Serve ``root`` on 127.0.0.1 (a free port) for the ``with`` block."""
    mirror = Mirror(url="", root=Path(root), cut_after=cut_after, honour_range=honour_range)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(mirror))
    server.daemon_threads = True
    mirror.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield mirror
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=SOCKET_TIMEOUT_S)


@contextlib.contextmanager
def wiki_mirror(root: Path, dump: bytes | Path, *, language: str = "en", date: str = "20231101",
                listed_sha1: str | None = None, cut_after: int | None = None,
                honour_range: bool = True) -> Iterator[Mirror]:
    """One dump run (also ``latest``) laid out under ``root`` and served."""
    add_dump_run(root, dump, language=language, date=date, listed_sha1=listed_sha1)
    with serve_mirror(root, cut_after=cut_after, honour_range=honour_range) as mirror:
        yield mirror
