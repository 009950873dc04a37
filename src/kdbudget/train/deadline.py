"""When the cluster will end this job: the trainer stops itself, with a
checkpoint, a margin before that, so it never depends on a warning signal
reaching it (on clusters that track job steps by cgroup, a signal that kills
Snakemake's wrapper process ends the whole step, trainer included).

The end time comes from ``SLURM_JOB_END_TIME`` where SLURM sets it (23.02
and later), otherwise from ``squeue -h -j $SLURM_JOB_ID -o %e``. Outside a
SLURM job there is no deadline.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from datetime import datetime

log = logging.getLogger(__name__)


def job_end_time(env: Mapping[str, str] = os.environ) -> float | None:
    """The SLURM job's end time (a UNIX timestamp), or None outside SLURM or when it is unknown."""
    job_id = env.get("SLURM_JOB_ID")
    if not job_id:
        return None
    if env.get("SLURM_JOB_END_TIME", "").isdigit():
        return float(env["SLURM_JOB_END_TIME"])
    squeue = shutil.which("squeue", path=env.get("PATH"))
    if squeue is None:
        log.warning("SLURM job %s but no squeue on PATH: no deadline-aware stop", job_id)
        return None
    try:
        out = subprocess.run([squeue, "-h", "-j", job_id, "-o", "%e"], capture_output=True, text=True,
                             timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("cannot read the end time of SLURM job %s (%s): no deadline-aware stop", job_id, err)
        return None
    try:
        return datetime.fromisoformat(out).timestamp()  # squeue prints local time
    except ValueError:
        log.warning("SLURM job %s has no end time (squeue: %r): no deadline-aware stop", job_id, out)
        return None
