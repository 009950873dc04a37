"""Logging and progress reporting shared by every stage.

A rule's log file gets timestamped lines through :mod:`logging`. Progress bars
update freely on a terminal but only every ``interval`` seconds otherwise, so
cluster logs stay readable.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_file: str | Path | None = None, level: int = logging.INFO) -> None:
    """Send log records, warnings and everything written to stderr (progress
    bars, tracebacks, library chatter) to ``log_file``; to stderr without one."""
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        sys.stderr = open(log_file, "a", encoding="utf-8", buffering=1)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    logging.basicConfig(level=level, format=LOG_FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)


def progress(iterable: Iterable[T] | None = None, *, interval: float = 30.0, **kwargs: Any) -> tqdm:
    """A tqdm bar that is throttled to one line per ``interval`` s off a terminal."""
    on_terminal = sys.stderr.isatty()
    kwargs.setdefault("mininterval", 0.2 if on_terminal else interval)
    kwargs.setdefault("dynamic_ncols", on_terminal)
    kwargs.setdefault("file", sys.stderr)
    return tqdm(iterable, **kwargs)
