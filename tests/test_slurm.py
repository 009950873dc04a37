"""The pipeline through a real SLURM: `snakemake --profile slurm` on a one-node
cluster with two fake GPUs (scripts/slurm/start-local-slurm.sh; `.ci/run`
starts it before `make test` and stops it after).

A fast slice of the demo (the data, a teacher, nokd2 and one KD model, each
pretrained on both GPUs under torchrun, a one-cell GLUE grid on the demo's
eight tasks, tiny, as Table 2 needs every column; the table) runs as SLURM
jobs. Every pretraining job first stops itself before its (shortened) time
limit, with a checkpoint, and the profile's retry resumes it; midway through
its retry nokd2 also gets SLURM's time-limit warning (USR1 to its job step)
and is resumed once more. The node's
prolog saves each job's `scontrol show job` (under $KDBUDGET_SLURM_STATE/jobs),
so the test checks what every job was granted against what its rule declares,
and that the weights and the table equal a local, uninterrupted run's, to the
bit. Skipped with a reason only where SLURM cannot run here (not root, no
apt-get); on CI (CI=true) it fails instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SNAKEMAKE, run_snakemake
from test_pretrain_pipeline import pretrain_config

from kdbudget.cpu_isa import isa_environment

# Only the test that runs jobs needs SLURM (and is slow); planning the paper needs neither.

STATE = Path(os.environ.get("KDBUDGET_SLURM_STATE", "/tmp/kdbudget-slurm"))
START = ROOT / "scripts" / "slurm" / "start-local-slurm.sh"
STOP = ROOT / "scripts" / "slurm" / "stop-local-slurm.sh"
PARTITION = os.environ.get("KDBUDGET_SLURM_TEST_PARTITION", "debug")
ACCOUNT = "kdbudget-test"
LOCAL_RULES = {"glue_summary", "table2", "plots", "table"}
TASKS = ["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte"]
SLICE_TASKS = ["sst2", "stsb"]
DATA_RULES = {"demo_corpus", "extract_wikipedia", "read_books", "shard_documents", "tokenizer", "pack_shard",
              "data_meta"}


def _cannot_run_slurm() -> str | None:
    if os.name != "posix" or os.geteuid() != 0:
        return "needs root to install and start SLURM"
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        return "SLURM is not installed and there is no apt-get to install it"
    return None


def _running() -> bool:
    return shutil.which("scontrol") is not None and subprocess.run(
        ["scontrol", "ping"], capture_output=True, timeout=20).returncode == 0 and "idle" in subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, timeout=20).stdout


@pytest.fixture(scope="module")
def slurm_cluster():
    reason = _cannot_run_slurm()
    if reason:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"SLURM test cannot run on CI: {reason}")
        pytest.skip(f"SLURM test skipped: {reason}")
    started_here = not _running()
    if started_here:
        result = subprocess.run([str(START)], capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"start-local-slurm.sh failed:\n{result.stdout}\n{result.stderr}"
    yield
    if started_here:
        subprocess.run([str(STOP)], capture_output=True, timeout=120)


def slice_config() -> dict:
    config = pretrain_config()
    config["resources"]["extract"] = {"threads": 1, "runtime": 5, "mem_mb": 500}
    # Both fake GPUs: each pretraining job runs torchrun once with two processes (gloo on the CPU).
    # 10 minutes: the rules' --signal=USR1@300 comes 300 s before the limit, so a 5-minute job
    # would get it at once.
    config["resources"]["pretrain"].update({"gpu": 2, "cpus_per_gpu": 1, "runtime": 10})
    # The fake GPUs are not CUDA devices: train on the CPU on purpose (device auto would refuse).
    config["pretrain"]["device"] = "cpu"
    # Three epochs keep nokd2 training long enough (some seconds) to be interrupted.
    config["groups"]["small"]["budget"]["epochs"] = 3
    # Stop 599 s before a 10-minute limit: every pretraining job's first attempt stops with a
    # checkpoint after one step (its job started more than a second earlier); a retry gets 15 minutes.
    config["pretrain"]["stop_before_time_limit_minutes"] = 599 / 60
    # Two of the demo's tasks (a classification and the regression), tiny, one grid cell each: each cell is a
    # cluster job, and the report of fewer tasks is tested in test_report_tasks.
    config["glue"] = {"source": "demo", "demo": {"sizes": {task: 16 for task in TASKS}}, "tasks": SLICE_TASKS,
                      "grid": {"batch_size": [8], "lr": [1.0e-3]}, "epochs": 1, "device": "cpu"}
    config["resources"]["glue"] = {"threads": 1, "gpu": 1, "cpus_per_gpu": 1, "runtime": 4, "mem_mb": 900}
    return config


def job_records(run_id: str) -> dict[str, list[dict[str, str]]]:
    """The prolog's `scontrol show job` of every job of this run, by rule."""
    by_rule: dict[str, list[dict[str, str]]] = {}
    for path in sorted((STATE / "jobs").glob("*.txt")):
        text = path.read_text()
        fields = dict(re.findall(r"(?:^|\s)([A-Za-z_/:]+)=(\S*)", text))
        if fields.get("JobName") != run_id:
            continue
        rule = re.match(r"rule_(.+?)(?:_wildcards_.*)?$", fields["Comment"]).group(1)
        by_rule.setdefault(rule, []).append(fields)
    return by_rule


def _warn_of_time_limit(work: Path, model: str, snakemake: subprocess.Popen, signalled: list[str]) -> None:
    """Do what SLURM does 300 s before a job's time limit (--signal=USR1@300): send USR1 to every
    process of the job step, here once `model` has trained a few steps."""
    metrics = work / "results/checkpoints" / model / "metrics.jsonl"
    while snakemake.poll() is None and not signalled:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 5:
            listing = subprocess.run(["squeue", "-h", "-o", "%i|%k"], capture_output=True, text=True).stdout
            for line in listing.splitlines():
                job_id, _, comment = line.partition("|")
                if comment == f"rule_pretrain_model_wildcards_{model}":
                    subprocess.run(["scancel", "--signal=USR1", job_id], check=True)
                    signalled.append(job_id)
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.slurm
def test_slice_runs_as_slurm_jobs_with_the_declared_resources(tmp_path, slurm_cluster):
    config = slice_config()

    work = tmp_path / "slurm"
    work.mkdir()
    (work / "test-config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    # Account and partition the SLURM plugin's own way (--default-resources), no site settings.
    env = {k: v for k, v in os.environ.items()
           if k not in {f"KDBUDGET_SLURM_{key}" for key in ("ACCOUNT", "PARTITION", "GPU_PARTITION", "QOS")}}
    env["KDBUDGET_SLURM_SITE"] = str(tmp_path / "no-site.yaml")
    cmd = ["timeout", "-k", "20", "900", str(SNAKEMAKE), "table", "--profile", str(ROOT / "slurm"),
           "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "test-config.yaml"),
           "--default-resources", f"slurm_account={ACCOUNT}", f"slurm_partition={PARTITION}",
           # No accounting on the test cluster: poll squeue (MinJobAge=300 keeps finished jobs there).
           "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
           "--slurm-keep-successful-logs", "--latency-wait", "5", "--retries", "2"]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=work, env=env)
    signalled: list[str] = []
    interrupt = threading.Thread(target=_warn_of_time_limit, args=(work, "nokd2", process, signalled), daemon=True)
    interrupt.start()
    out, _ = process.communicate(timeout=960)
    assert process.returncode == 0, f"snakemake --profile slurm failed ({process.returncode}):\n{out[-8000:]}"
    interrupt.join(timeout=5)
    assert signalled, "nokd2 finished before it could be interrupted"

    run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)
    jobs = job_records(run_id)
    expected = DATA_RULES | {"glue_demo_data", "pretrain_teacher", "pretrain_model", "finetune_cell"}
    assert set(jobs) == expected, sorted(jobs)
    assert not LOCAL_RULES & set(jobs)
    for rule, records in jobs.items():
        for job in records:
            assert job["Partition"] == PARTITION and job["Account"] == ACCOUNT, (rule, job)
    # Data rules: CPUs only, their config runtime (5 min) and memory (500 MB).
    for rule in DATA_RULES - {"demo_corpus", "data_meta"}:
        for job in jobs[rule]:
            assert job["JOB_GRES"] == "(null)" and job["TimeLimit"] == "00:05:00", (rule, job)
            assert job["MinMemoryNode"] == "500M", (rule, job)
    # Pretraining: two GPUs from the GRES, its runtime (10 min) and memory, +50% per retry. Every
    # job stopped before its time limit once; nokd2 was warned by USR1 in its second attempt too.
    pretraining = jobs["pretrain_teacher"] + jobs["pretrain_model"]
    assert len(jobs["pretrain_teacher"]) == 2 and len(jobs["pretrain_model"]) == 5
    for job in pretraining:
        assert job["JOB_GRES"] == "gpu:2" and len(job["SLURM_JOB_GPUS"].split(",")) == 2, job
        assert job["MinMemoryNode"] == "1000M", job
    limits = sorted(job["TimeLimit"] for job in pretraining)
    assert limits == ["00:10:00"] * 3 + ["00:15:00"] * 3 + ["00:20:00"], limits
    # One torchrun per job, seeing both GPUs (Snakemake starts a retried job's log afresh).
    for name in ("teacher-t4", "nokd2", "minilm2"):
        text = (work / "logs/pretrain" / f"{name}.log").read_text()
        launches = re.findall(r"torchrun with (\d) processes, CUDA_VISIBLE_DEVICES=(\S+)", text)
        assert len(launches) == 1 and launches[0][0] == "2" and len(launches[0][1].split(",")) == 2, launches
        assert f"resumed {name.removeprefix('teacher-')} at step" in text
    summaries = {name: json.loads((work / "results/pretrain" / name / "summary.json").read_text())
                 for name in ("nokd2", "minilm2")}
    assert summaries["nokd2"]["resumes"] == 2 and summaries["minilm2"]["resumes"] == 1
    assert all(s["device"].endswith(" x 2") for s in summaries.values())
    # The GLUE grid: one GPU each, a short runtime, submitted as one array job.
    cells = jobs["finetune_cell"]
    assert len(cells) == 2 * len(SLICE_TASKS)  # two models x two tasks x one cell
    assert len({job["ArrayJobId"] for job in cells}) <= 2 and all(job.get("ArrayTaskId") for job in cells)
    for job in cells:
        assert job["JOB_GRES"] == "gpu:1" and job["TimeLimit"] == "00:04:00", job

    local = tmp_path / "local"
    run_snakemake(local, config, "table")
    # Pretraining is identical under SLURM (interrupted and resumed) and locally, to the bit.
    for name in ("nokd2", "minilm2"):
        remote, here = (json.loads((d / "results/pretrain" / name / "summary.json").read_text()) for d in (work, local))
        counts = ("steps", "tokens", "flops")
        assert {k: remote[k] for k in counts} == {k: here[k] for k in counts}
        assert here["resumes"] == 0
        # The config's cpu_isa reached the cluster jobs too (kdbudget.cpu_isa): the same kernels, the same bits.
        assert remote["cpu_kernels"] == here["cpu_kernels"]
        if isa_environment("avx2"):
            assert remote["cpu_kernels"]["aten"] == "AVX2" and remote["cpu_kernels"]["mkl_cbwr"] == "AVX2"
        weights = [(d / "results/pretrain" / name / "model.safetensors").read_bytes() for d in (work, local)]
        assert weights[0] == weights[1], name
    # The table equals the local run's, GLUE scores included: the data, the tokenizer (our own
    # deterministic WordPiece learner), the training and the fine-tuning are all reproducible.
    remote_table, local_table = ((d / "results/tables/table2.csv").read_text() for d in (work, local))
    assert remote_table == local_table

def plan_paper(tmp_path: Path, **site: str) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    """`snakemake -n --profile slurm all` from the root with site settings from the environment;
    the planned jobs' blocks by rule."""
    env = {**os.environ, "KDBUDGET_SLURM_SITE": str(tmp_path / "none.yaml"),
           **{f"KDBUDGET_SLURM_{key.upper()}": value for key, value in site.items()}}
    result = subprocess.run([str(SNAKEMAKE), "-n", "--profile", "slurm", "all", "--directory", str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    blocks = {}
    for block in re.split(r"^\[[^\]\n]+\]$", result.stdout, flags=re.M):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        if rule:
            blocks.setdefault(rule.group(1), block.split("resources:")[-1].split("\n")[0])
    return result, blocks


def test_profile_plans_the_paper_with_each_jobs_resources_without_slurm(tmp_path):
    """No SLURM needed to plan; GPU jobs ask with --gpus (and the site's GPU model)."""
    result, blocks = plan_paper(tmp_path, account="acct", partition="part1", gpu_model="a100")
    assert result.returncode == 0, result.stderr[-3000:]
    pretrain = blocks["pretrain_model"]
    for expected in ("gpu=1", "cpus_per_gpu=8", "mem_mb=64000", "slurm_extra='--signal=USR1@300'",
                     "slurm_account=acct", "slurm_partition=part1", "gpu_model=a100"):
        assert expected in pretrain, expected
    assert re.search(r"runtime=(360|900|1620)\b", pretrain)
    # GLUE cells ask for what their task needs (sized by its training set), not a fixed 8 h.
    assert "gpu=1" in blocks["finetune_cell"]
    assert 15 <= int(re.search(r"runtime=(\d+)", blocks["finetune_cell"]).group(1)) <= 200
    assert "gpu" not in blocks["pack_shard"] and "slurm_partition=part1" in blocks["pack_shard"]
    assert " 768\n" in result.stdout.split("Job stats:")[1]  # 12 models x 8 tasks x 8 cells


def test_sites_that_take_gpus_as_gres_get_them_that_way(tmp_path):
    result, blocks = plan_paper(tmp_path, account="acct", partition="part1", gpu_model="a100", gpu_request="gres")
    assert result.returncode == 0, result.stderr[-3000:]
    for rule in ("pretrain_model", "finetune_cell"):
        resources = blocks[rule].split(", ")
        assert "gres=gpu:a100:1" in resources and not any(r.startswith(("gpu=", "gpu_model=")) for r in resources)
    assert "gres" not in blocks["pack_shard"]
    result, _ = plan_paper(tmp_path, account="acct", partition="part1", gpu_request="mig")
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "gpu_request" in out and "must be one of gpus, gres, got 'mig'" in out, out

