"""What a user sees when a job fails or Snakemake is killed, through Snakemake itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SNAKEMAKE, base_config, ended, run_snakemake

pytestmark = pytest.mark.slow

TINY = {"layers": 2, "hidden": 32, "heads": 4, "intermediate": 64}
STEPS = 100


def _trainer_below(pid: int) -> int:
    """The pretraining job's process (Snakemake's copy of workflow/scripts/pretrain.py) below ``pid``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            cmdline = (stat.parent / "cmdline").read_bytes()
            ancestor = int(stat.parent.name)
            while ancestor > 1 and ancestor != pid:
                ancestor = int((Path("/proc") / str(ancestor) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ancestor == pid and cmdline.split(b"\0")[1].endswith(b".pretrain.py"):  # python, not its shell
            return int(stat.parent.name)
    raise AssertionError(f"no pretraining process below {pid}")


def test_a_failed_job_shows_its_cause_on_the_console(tmp_path):
    """Snakemake itself says only "message: None ... log: FILE" for a failed script."""
    missing = tmp_path / "no-glue-here"
    work = tmp_path / "work"
    result = run_snakemake(work, base_config(glue={"source": "hub", "hub_name": str(missing)}), "resources/glue/hub",
                           check=False)
    assert result.returncode != 0
    cause = f"ERROR FileNotFoundError: Couldn't find any data file at {missing}"
    assert cause in result.stdout + result.stderr
    assert (work / "logs" / "glue" / "fetch_glue.log").read_text().splitlines()[-1].startswith(cause)


def test_a_killed_snakemake_leaves_a_checkpoint_that_the_rerun_resumes(tmp_path):
    """kill -9 of Snakemake mid-training: its trainer notices, checkpoints and stops (it no longer
    lives on beside the rerun's trainer); after --unlock the rerun resumes and finishes."""
    config = base_config(
        groups={"small": {"student": TINY, "strategies": ["nokd"],
                          "budget": {"mode": "tokens", "limit": 8 * 128 * STEPS}}},
        pretrain={"batch_size": 8, "micro_batch_size": 4, "log_every_steps": 1, "eval_sequences": 16,
                  "device": "cpu"},
        resources={"pretrain": {"threads": 1, "gpu": 0, "runtime": 5, "mem_mb": 1000}},
    )
    work = tmp_path / "work"
    work.mkdir()
    (work / "test-config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    target = "results/pretrain/nokd2"
    cmd = [str(SNAKEMAKE), target, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), "--cores", "2",
           "--configfile", str(work / "test-config.yaml")]
    checkpoints = work / "results" / "checkpoints" / "nokd2"
    with open(tmp_path / "first.txt", "w") as console:
        first = subprocess.Popen(cmd, cwd=work, stdout=console, stderr=subprocess.STDOUT)
    trainer = None
    try:
        deadline = time.time() + 400
        while time.time() < deadline and first.poll() is None:
            metrics = checkpoints / "metrics.jsonl"
            if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
                break
            time.sleep(0.1)
        assert first.poll() is None, (tmp_path / "first.txt").read_text()[-3000:]
        trainer = _trainer_below(first.pid)
        first.kill()
        first.wait(timeout=60)
        assert ended(trainer, wait=30), "the trainer lives on after its Snakemake was killed"
    finally:
        if first.poll() is None:
            first.kill()
        if trainer is not None and not ended(trainer):
            os.kill(trainer, signal.SIGKILL)
    assert (checkpoints / "checkpoint.pt").is_file(), "the orphan left no checkpoint (it trained on to the end?)"
    assert not (work / target).exists(), "the orphan wrote outputs, which Snakemake cannot trust"
    assert "stopped with a checkpoint" in (work / "logs" / "pretrain" / "nokd2.log").read_text()

    run_snakemake(work, config, "--unlock")
    run_snakemake(work, config, target)
    summary = json.loads((work / target / "summary.json").read_text())
    assert summary["resumes"] == 1 and summary["steps"] == STEPS
    rows = (work / "results" / "pretrain" / "nokd2" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == list(range(1, STEPS + 1))
    assert not checkpoints.exists()
