"""A trainer notices that the job that started it is gone.

After ``kill -9`` of Snakemake its job's processes live on: in a local run the
job is ``snakemake -> bash -> python (workflow script) [-> torchrun -> workers]``
and only the shell is reparented, so the trainer's own parent never changes
and ``PR_SET_PDEATHSIG`` (which fires on the death of the direct parent) would
not fire either. Snakemake cannot record such a run as finished, so whatever
the orphan writes is discarded by the rerun. It should stop at once and keep
a checkpoint for the rerun instead.

So the workflow names its Snakemake process in ``KDBUDGET_JOB_OWNER``
(``host:pid:start-time:pid-namespace``, set by rules/common.smk in the process that runs
the jobs: the main Snakemake locally, the job's own Snakemake in a cluster
job). A trainer records the chain of processes from its parent up to that
owner at start and, at step boundaries, checks that every one of them is
still the process it was (same pid, same start time: a pid can be reused).
Without an owner in the environment (``python -m kdbudget.train`` by hand,
torchrun by hand), or when the owner is not among the trainer's ancestors
(another host, another PID namespace), it watches its direct parent only.
An owner that is already gone when the trainer starts watching (Snakemake
killed while the job was still importing torch: seconds on a busy machine)
is not among the ancestors either, as its children were reparented; the
token names the owner's PID namespace, so that case is told apart from
another namespace and the trainer stops at once. Linux reads ``/proc``;
elsewhere only a change of the parent pid is seen.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

OWNER_ENV = "KDBUDGET_JOB_OWNER"
_PROC = Path("/proc")


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process from /proc; None if it is gone or a zombie."""
    try:
        fields = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):  # ended, not yet reaped
        return None
    return int(fields[1]), int(fields[19])


def _pid_namespace() -> str:
    """This process's PID namespace (the inode of /proc/self/ns/pid); '' where unknown."""
    try:
        return str(os.stat(_PROC / "self" / "ns" / "pid").st_ino)
    except OSError:
        return ""


def owner_token(pid: int | None = None) -> str:
    """``host:pid:start:pidns`` naming a process (this one by default) for ``KDBUDGET_JOB_OWNER``."""
    pid = os.getpid() if pid is None else pid
    stat = _stat(pid)
    return f"{socket.gethostname()}:{pid}:{stat[1] if stat else ''}:{_pid_namespace()}"


def mark_job_owner(environ: dict[str, str] | None = None) -> None:
    """Name this process as the owner of the jobs it starts (they inherit the environment)."""
    (os.environ if environ is None else environ)[OWNER_ENV] = owner_token()


class ParentWatch:
    """Tells whether the processes between this one and its job's owner are all still alive."""

    def __init__(self, environ: Mapping[str, str] | None = None, interval: float = 1.0) -> None:
        environ = os.environ if environ is None else environ
        self.interval = interval
        self._next = 0.0
        self.parent = os.getppid()
        self.chain: list[tuple[int, int]] = []  # (pid, start time) from the parent up to the owner
        self.owner: int | None = None
        self.gone_at_start = False  # the owner had ended before this watch began
        if not _PROC.is_dir():
            return
        owner, namespace = self._owner(environ.get(OWNER_ENV, ""))
        pid = self.parent
        for _ in range(64):
            stat = _stat(pid)
            if stat is None or pid <= 1:
                break
            self.chain.append((pid, stat[1]))
            if owner is not None and (pid, str(stat[1])) == owner:
                self.owner = pid
                return
            if owner is None:
                break  # no owner named: the parent alone
            pid = stat[0]
        if owner is not None and namespace and namespace == _pid_namespace():
            stat = _stat(owner[0])
            if stat is None or str(stat[1]) != owner[1]:  # ended (or its pid reused): this job is orphaned
                self.owner = owner[0]
                self.gone_at_start = True
                return
        if owner is not None:
            log.info("the job owner %s is not an ancestor of this process: watching the parent (pid %d) only",
                     environ.get(OWNER_ENV), self.parent)
        self.chain = self.chain[:1]

    @staticmethod
    def _owner(token: str) -> tuple[tuple[int, str] | None, str]:
        """(pid, start time) of the owner, or None; and its PID namespace ('' if not named)."""
        host, _, rest = token.partition(":")
        pid, _, rest = rest.partition(":")
        start, _, namespace = rest.partition(":")
        # A token from another host (an environment exported to a cluster job) names no process here.
        if host != socket.gethostname() or not pid.isdigit() or not start:
            return None, ""
        return (int(pid), start), namespace

    @property
    def watched(self) -> str:
        if self.owner is not None:
            return f"the Snakemake process that started this job (pid {self.owner})"
        return f"the parent process (pid {self.parent})"

    def orphaned(self, *, now: bool = False) -> bool:
        """True once a watched process has ended; reads /proc at most every ``interval`` seconds."""
        if self.gone_at_start:
            return True
        if self.parent > 1 and os.getppid() != self.parent:
            return True
        if not self.chain or (not now and time.monotonic() < self._next):
            return False
        self._next = time.monotonic() + self.interval
        for pid, start in self.chain:
            stat = _stat(pid)
            if stat is None or stat[1] != start:
                return True
        return False
