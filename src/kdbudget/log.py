"""Logging and progress reporting shared by every stage.

A rule's log file gets timestamped lines through :mod:`logging`. Progress bars
update freely on a terminal but only every ``interval`` seconds otherwise, so
cluster logs stay readable.

A job that fails on an exception ends its log with the traceback and then one
line ``ERROR <ExceptionType>: <message>``: the cause, where a reader of the
log looks last. Snakemake's console says only "message: None ... log: FILE"
for a failed script, so that line also goes to the job's own stderr (the
console, in a local run) with the log's name.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_file: str | Path | None = None, level: int = logging.INFO) -> None:
    """Send log records, warnings and everything written to stderr (progress
    bars, tracebacks, library chatter) to ``log_file``; to stderr without one.
    An uncaught exception ends the log with :func:`failure_line`."""
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        console = sys.stderr
        sys.stderr = open(log_file, "a", encoding="utf-8", buffering=1)
        _redirect_stream_handlers(console, sys.stderr)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    logging.basicConfig(level=level, format=LOG_FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)
    sys.excepthook = _FailureHook(str(log_file) if log_file else None)


def _redirect_stream_handlers(old: Any, new: Any) -> None:
    """Libraries that set up their own handler at import (transformers' load reports) bound the stderr of
    that moment: point those handlers at the log file too, so their chatter does not reach the console."""
    loggers = [logging.getLogger(), *(item for item in logging.Logger.manager.loggerDict.values()
                                      if isinstance(item, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler and handler.stream is old:
                handler.setStream(new)


def failure_line(error: BaseException) -> str:
    """``ERROR <ExceptionType>: <message>`` on one line (a multi-line message is joined)."""
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return f"ERROR {type(error).__name__}: {message}" if message else f"ERROR {type(error).__name__}"


class _FailureHook:
    """``sys.excepthook``: the traceback, then the cause as the log's last line and on the console."""

    def __init__(self, log_file: str | None) -> None:
        self.log_file = log_file

    def __call__(self, kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, error, tb)
            return
        line = failure_line(error)
        stream = sys.stderr
        traceback.print_exception(kind, error, tb, file=stream)
        print(line, file=stream, flush=True)
        # Under torchrun every worker fails when one does: the console gets rank 0's cause only.
        console = sys.__stderr__
        if self.log_file and console is not None and console is not stream and os.environ.get("RANK", "0") == "0":
            print(f"{line} (log: {self.log_file})", file=console, flush=True)


def progress(iterable: Iterable[T] | None = None, *, interval: float = 30.0, **kwargs: Any) -> tqdm:
    """A tqdm bar that is throttled to one line per ``interval`` s off a terminal."""
    on_terminal = sys.stderr.isatty()
    kwargs.setdefault("mininterval", 0.2 if on_terminal else interval)
    kwargs.setdefault("dynamic_ncols", on_terminal)
    kwargs.setdefault("file", sys.stderr)
    return tqdm(iterable, **kwargs)
