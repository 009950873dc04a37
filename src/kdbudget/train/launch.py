"""Run one pretraining job in this process, or under torchrun with one
process per GPU when the job has several (data parallel)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from kdbudget.io import atomic_path
from kdbudget.train.spec import RunSpec
from kdbudget.train.trainer import Interrupted, pretrain


def run(spec: dict[str, Any], *, processes: int = 1, log_file: str | None = None) -> None:
    if processes <= 1:
        pretrain(RunSpec.from_dict(spec))
        return
    spec_path = Path(spec["checkpoint_dir"]) / "spec.json"
    with atomic_path(spec_path) as tmp:
        tmp.write_text(json.dumps(spec, indent=2))
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", str(processes), "-m", "kdbudget.train", str(spec_path)]
    if log_file:
        cmd += ["--log-file", str(log_file)]
    code = subprocess.run(cmd).returncode
    if code:
        raise Interrupted(code) if code > 128 else RuntimeError(f"torchrun exited with {code}: {' '.join(cmd)}")
