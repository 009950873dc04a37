"""What the workflow's jobs ask a SLURM cluster for: the site's settings and each job's runtime.

Plain functions (no Snakemake, no torch) that ``rules/common.smk`` calls, so that they are tested
on their own.

Site settings (account, partition, GPU partition, QOS, constraint, GPU model, GPU request style,
runtime cap) come from environment variables ``KDBUDGET_SLURM_<KEY>`` over an untracked YAML file
(``slurm/site.yaml``, or the file named by ``KDBUDGET_SLURM_SITE``). All are optional: without an
account or a partition, the SLURM plugin's own conventions apply (``--default-resources
slurm_account=... slurm_partition=...``, ``--set-resources RULE:slurm_partition=...``, or its
guesses: the account of the user's last job from ``sacct``, the cluster's default partition).

Runtimes are minutes, as Snakemake's ``runtime`` resource. Pretraining continues across jobs: the
trainer stops with a checkpoint ``pretrain.stop_before_time_limit_minutes`` before its job's time
limit (exit 75) and a retry resumes, so a run longer than ``max_runtime`` needs
:func:`jobs_needed` jobs, i.e. that many minus one retries on top of the ordinary ones.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from kdbudget.io import read_json

# Site setting -> the Snakemake resource it becomes (None: read by the workflow itself).
SITE_KEYS: dict[str, str | None] = {
    "account": "slurm_account",
    "partition": "slurm_partition",
    "gpu_partition": "slurm_partition",  # GPU jobs only; they use `partition` without it
    "qos": "qos",
    "constraint": "constraint",
    "gpu_model": "gpu_model",
    "gpu_request": None,  # how GPU jobs ask: "gpus" (sbatch --gpus, the default) or "gres" (--gres=gpu:...)
    "max_runtime": None,  # minutes: no job asks for more (pretraining continues in further jobs)
}
GPU_REQUESTS = ("gpus", "gres")
SITE_FILE_VARIABLE = "KDBUDGET_SLURM_SITE"

# A run's wall time as a job: +10% and 15 minutes for start-up, evaluation and the last checkpoint.
RUNTIME_FACTOR = 1.1
RUNTIME_EXTRA_MINUTES = 15
# A resumed job loads the model, the teacher and the data position again before it trains.
RESUME_MINUTES = 10
# A fine-tuning job loads its model and tokenizes the task before the first step.
GLUE_START_MINUTES = 5
# Per-token training cost of BERT-base (12 layers, hidden 768, intermediate 3072), the model that
# `resources.glue.examples_per_second` is stated for (see relative_cost).
_BASE_COST = 12 * 768 * (4 * 768 + 2 * 3072)


class SiteError(ValueError):
    """A site setting that cannot be used; the message names the setting and where it was read."""


def site_variable(key: str) -> str:
    return f"KDBUDGET_SLURM_{key.upper()}"


def read_site(env: Mapping[str, str], default_path: Path) -> tuple[dict[str, Any], Path]:
    """The site settings (environment over the site file) and the site file's path.

    Values are strings, except ``max_runtime`` (an int). A missing site file means no settings.
    """
    path = Path(env.get(SITE_FILE_VARIABLE) or default_path)
    site: dict[str, Any] = {}
    if path.is_file():
        try:
            site = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise SiteError(f"{path}: not valid YAML ({err})") from None
        if not isinstance(site, dict) or set(site) - set(SITE_KEYS):
            raise SiteError(f"{path}: expected a mapping with keys among {', '.join(SITE_KEYS)}")
    for key in SITE_KEYS:
        value = env.get(site_variable(key))
        if value:
            site[key] = value
    site = {key: str(value).strip() for key, value in site.items() if value not in (None, "")}
    if site.get("gpu_request", "gpus") not in GPU_REQUESTS:
        raise SiteError(f"SLURM site setting gpu_request ({site_variable('gpu_request')} or {path}) must be one "
                        f"of {', '.join(GPU_REQUESTS)}, got {site['gpu_request']!r}")
    if "max_runtime" in site:
        value = site["max_runtime"]
        if not value.isdigit() or int(value) <= 0:
            raise SiteError(f"SLURM site setting max_runtime ({site_variable('max_runtime')} or {path}) must be "
                            f"a whole number of minutes above 0, got {value!r}")
        site["max_runtime"] = int(value)
    return site, path


def site_resources(site: Mapping[str, Any], gpus: int = 0) -> dict[str, Any]:
    """One rule's cluster resources from the site settings.

    GPU jobs (``gpus`` > 0) go to ``gpu_partition`` where one is set, and ask for their GPUs as
    ``gpu`` (+ ``gpu_model``: sbatch --gpus=[MODEL:]N) or, with gpu_request "gres", as ``gres``
    (--gres=gpu:[MODEL:]N) for clusters that take GPUs only that way.
    """
    resources: dict[str, Any] = {
        SITE_KEYS[key]: value
        for key, value in site.items()
        if key in ("account", "partition", "qos", "constraint")
    }
    if gpus > 0 and "gpu_partition" in site:
        resources["slurm_partition"] = site["gpu_partition"]
    if gpus > 0 and site.get("gpu_request", "gpus") == "gres":
        model = [site["gpu_model"]] if "gpu_model" in site else []
        resources["gres"] = ":".join(["gpu", *model, str(gpus)])
    elif gpus > 0:
        resources["gpu"] = gpus
        if "gpu_model" in site:
            resources["gpu_model"] = site["gpu_model"]
    return resources


# --- runtimes ------------------------------------------------------------------


def attempt_scaled(minutes: int, attempt: int) -> int:
    """+50% per retry: a job killed at its time limit resumes from its checkpoint with more time."""
    return int(minutes * (1 + 0.5 * (attempt - 1)))


def capped(minutes: int, max_runtime: int | None) -> int:
    """No job asks for more than the site's ``max_runtime``: a cluster refuses or never starts it."""
    return min(minutes, max_runtime) if max_runtime else minutes


def wall_minutes(seconds: float) -> int:
    """A run of that many training seconds as a job's runtime: the margin of RUNTIME_FACTOR and
    RUNTIME_EXTRA_MINUTES."""
    # Rounded first, so that 86,400 s is 1584 minutes and not 1584.0000000000002 (then 1585).
    return math.ceil(round(seconds / 60 * RUNTIME_FACTOR, 6)) + RUNTIME_EXTRA_MINUTES


def budget_minutes(budget: Mapping[str, Any] | None) -> int:
    """A seconds budget's wall time with its margin, else 0 (FLOPs and tokens say nothing of time)."""
    if budget and budget.get("mode") == "seconds" and budget.get("limit"):
        return wall_minutes(budget["limit"])
    return 0


def reference_minutes(summary: str | os.PathLike[str] | None) -> int | None:
    """The minutes a KD run gets from its No-KD run's summary (``spent.seconds``), with the margin;
    None before that run has written it (a plan, or a dry run)."""
    if not summary or not Path(summary).is_file():
        return None
    try:
        seconds = float(read_json(summary)["spent"]["seconds"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{summary}: no spent.seconds to size the KD runs' jobs by ({err!r})") from None
    return wall_minutes(seconds)


def pretrain_minutes(planned: int, budget: Mapping[str, Any] | None, reference: int | None) -> int:
    """A pretraining run's minutes: its group's ``runtime`` (``planned``) or its seconds budget's wall
    time, whichever is longer; but a KD run that gets its No-KD run's seconds (a 'reference' budget
    measured in seconds) asks for what that run took (``reference``, from reference_minutes) once it
    is known. With FLOPs or tokens, the No-KD run's seconds say little of the KD run's (a KD step
    costs more): ``planned`` stays."""
    if reference is not None and budget and budget.get("mode") == "reference" and budget.get("measure") == "seconds":
        return reference
    return max(planned, budget_minutes(budget))


def jobs_needed(minutes: int, max_runtime: int | None, stop_before_minutes: float) -> int:
    """Jobs a pretraining run of ``minutes`` takes under a cap: each stops ``stop_before_minutes``
    before its limit and the next spends RESUME_MINUTES getting back to where it was."""
    if not max_runtime or minutes <= max_runtime:
        return 1
    useful = max_runtime - stop_before_minutes - RESUME_MINUTES
    if useful <= 0:
        raise SiteError(f"SLURM site setting max_runtime ({max_runtime} min) leaves no training time in a job: it "
                        f"must exceed pretrain.stop_before_time_limit_minutes ({stop_before_minutes:g}) + "
                        f"{RESUME_MINUTES} min of resuming")
    return math.ceil(minutes / useful)


def pretrain_retries(longest_minutes: int, max_runtime: int | None, stop_before_minutes: float, retries: int) -> int:
    """A pretraining rule's retries: ``retries`` for failures, plus one per further job its longest run
    needs under the cap (a rule's retries replace the profile's, they do not add to them)."""
    return retries + jobs_needed(longest_minutes, max_runtime, stop_before_minutes) - 1


def relative_cost(shape: Mapping[str, int]) -> float:
    """A model's training cost per token relative to BERT-base: its weight matrices' size (attention
    4 h^2, feed-forward 2 h i, per layer), which dominates at sequence length 128."""
    hidden, intermediate = shape["hidden"], shape["intermediate"]
    return shape["layers"] * hidden * (4 * hidden + 2 * intermediate) / _BASE_COST


def glue_cell_minutes(train_examples: int, *, epochs: float, examples_per_second: float, cost: float = 1.0,
                      min_minutes: int = 15) -> int:
    """One fine-tuning cell's runtime: its epochs over the task's training set at
    ``examples_per_second`` (stated for BERT-base, divided by the model's ``cost``), plus
    GLUE_START_MINUTES, at least ``min_minutes``."""
    seconds = train_examples * epochs * cost / examples_per_second
    return max(min_minutes, math.ceil(seconds / 60) + GLUE_START_MINUTES)
