"""One trainer per checkpoint folder.

Two trainers on one folder overwrite each other's checkpoints and metrics,
and the first to finish deletes the folder under the other (which then fails,
and Snakemake deletes the outputs of the failed job: nothing remains). That
happens when Snakemake is killed, its trainer lives on, and a rerun starts a
second one. So a trainer holds an exclusive ``flock`` on ``trainer.lock`` in
its checkpoint folder for as long as it runs. The operating system frees the
lock when the process dies, however it dies, so no stale lock ever outlives a
``kill -9``. The file records who holds it (host, pid, start time), so a
refused trainer names the holder.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from kdbudget.io import FILE_MODE

log = logging.getLogger(__name__)

LOCK_FILE = "trainer.lock"
# Set by kdbudget.train.launch for the torchrun workers it starts: the launcher already holds
# the lock of this (resolved) checkpoint folder, so the workers must not take it again.
HELD_ENV = "KDBUDGET_CHECKPOINT_LOCK_HELD"


class CheckpointBusy(RuntimeError):
    """Another live trainer holds the checkpoint folder."""


def lock_path(checkpoint_dir: str | Path) -> Path:
    return Path(checkpoint_dir) / LOCK_FILE


def held_by_launcher(checkpoint_dir: str | Path) -> bool:
    """Whether the process that started this one (kdbudget.train.launch) holds the folder's lock."""
    return os.environ.get(HELD_ENV) == str(Path(checkpoint_dir).resolve())


def _describe(holder: dict[str, Any]) -> str:
    if not holder.get("pid"):
        return "another process (it has not recorded itself yet)"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["started"])) if holder.get("started") else "?"
    return (f"trainer {holder.get('name', '?')!r}, pid {holder['pid']} on host {holder.get('host', '?')}, "
            f"since {started}")


class CheckpointLock:
    """An exclusive lock on a checkpoint folder (created if missing), held until :meth:`release`."""

    def __init__(self, checkpoint_dir: str | Path, name: str = "") -> None:
        self.directory = Path(checkpoint_dir)
        self.path = lock_path(checkpoint_dir)
        self.name = name
        self._fd: int | None = None

    def acquire(self) -> CheckpointLock:
        while True:
            self.directory.mkdir(parents=True, exist_ok=True)
            try:
                # Not inherited by programs this process starts (PEP 446), which would keep the lock alive.
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
            except FileNotFoundError:  # a finishing trainer removed the folder just now
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise CheckpointBusy(
                    f"{self.directory} is in use by {_describe(holder)}; two trainers on one checkpoint folder "
                    f"would overwrite each other's checkpoints. Wait for it to end (a trainer whose Snakemake is "
                    f"gone checkpoints and stops by itself within seconds) or stop it "
                    f"(kill {holder.get('pid') or '<pid>'} on {holder.get('host') or 'its host'}), then rerun: "
                    "the rerun resumes from the last checkpoint") from None
            except OSError as err:
                os.close(fd)
                if err.errno not in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                # Some cluster file systems (Lustre mounted without -o flock) have no locks: running
                # unprotected beats refusing every job there.
                log.warning("%s: this file system does not support locks (%s); nothing stops a second trainer "
                            "on this checkpoint folder", self.path, err)
                return self
            # A trainer that finished deletes its folder, lock file included, while still holding the
            # lock. Having waited for that lock, we would hold a file nobody else can open: start over.
            try:
                current = os.stat(self.path)
                mine = os.fstat(fd)
                same = (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev)
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._fd = fd
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(), "name": self.name}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor frees the flock
            self._fd = None

    def __enter__(self) -> CheckpointLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}
