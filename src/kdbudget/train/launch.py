"""Run one pretraining job in this process, or under torchrun with one
process per GPU when the job has several (data parallel).

Under torchrun this process holds the checkpoint folder's lock (see
``kdbudget.train.lock``) for as long as torchrun runs, so a second job is
refused before it starts any worker; the workers are told so and do not take
it again.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from kdbudget.io import write_json
from kdbudget.train.checkpoint import checkpoint_path
from kdbudget.train.lock import HELD_ENV, CheckpointLock
from kdbudget.train.runtime import pick_device
from kdbudget.train.spec import RunSpec
from kdbudget.train.trainer import pretrain

log = logging.getLogger(__name__)


def run(spec: dict[str, Any], *, processes: int = 1, log_file: str | None = None) -> None:
    """Pretrain ``spec`` (a RunSpec as a dict) in this process, or in ``processes`` torchrun workers."""
    if processes <= 1:
        pretrain(RunSpec.from_dict(spec))
        return
    # A job that asked for GPUs and sees none fails here, before torchrun starts its workers.
    pick_device(spec.get("device", "auto"), int(spec.get("gpus") or 0))
    with CheckpointLock(spec["checkpoint_dir"], spec["name"]):
        _torchrun(spec, processes, log_file)


def _torchrun(spec: dict[str, Any], processes: int, log_file: str | None) -> None:
    spec_path = Path(spec["checkpoint_dir"]) / "spec.json"
    write_json(spec_path, spec)
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", str(processes), "-m", "kdbudget.train", str(spec_path)]
    if log_file:
        cmd += ["--log-file", str(log_file)]
    log.info("%s: torchrun with %d processes, CUDA_VISIBLE_DEVICES=%s", spec["name"], processes,
             os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)"))
    # SLURM's time-limit warning (--signal=USR1@300) reaches every process of the job step. The
    # workers checkpoint on it; this process and torchrun (which inherits the setting) must not
    # die of it first, or the workers would be torn down mid-checkpoint.
    previous = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    try:
        env = {**os.environ, HELD_ENV: str(Path(spec["checkpoint_dir"]).resolve())}
        code = subprocess.run(cmd, env=env).returncode
    finally:
        signal.signal(signal.SIGUSR1, previous)
    if code:
        checkpoint = checkpoint_path(spec["checkpoint_dir"])
        resume = f"; a rerun resumes from {checkpoint}" if checkpoint.is_file() else ""
        raise RuntimeError(f"torchrun exited with {code}{resume}: {' '.join(cmd)}")
