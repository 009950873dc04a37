"""The teacher's own pretraining cost, recorded in every KD run's summary.

Under a fixed budget a KD arm is charged only for its student's steps (and the
teacher's forward passes inside them); the compute that made the teacher is
free. The paper names charging it as future work; this module says what it was,
so a report can amortise it. Three sources, in this order:

- ``measured``: the pipeline pretrained the teacher (``source: pretrain``), so
  its own ``summary.json`` holds the FLOPs and seconds it spent;
- ``config``: ``teachers.NAME.cost`` (FLOPs and/or GPU-hours) for a hub or
  directory teacher;
- ``default``: a cited estimate for the BERT checkpoints the paper used (below),
  or nulls where no estimate is known.

No torch: the plan (Snakemake) and the trainer both use it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kdbudget.io import read_json

# Devlin et al. (2019), "BERT: Pre-training of Deep Bidirectional Transformers", Section A.2: batches of
# 256 sequences x 512 tokens = 128,000 tokens for 1,000,000 steps, so D = 1.28e11 tokens seen; N is the
# paper's parameter count (110M base, 340M large). Cost = 6 N D (forward + backward per parameter and
# token): an upper estimate, since 90% of the steps ran at sequence length 128. Trained on TPUs (base: 4
# Cloud TPUs, large: 16, four days each), so there are no GPU-hours to cite.
_BERT_TOKENS = 1.28e11  # 128,000 tokens/batch x 1,000,000 steps, as the paper states it
_BERT_SOURCE = ("Devlin et al. 2019 (BERT), Sec. A.2: 6*N*D with N = {n} parameters and D = 1.28e11 tokens "
                "(256 x 512 tokens x 1M steps, the paper's 128,000 tokens/batch); TPU-trained, no GPU-hours")
DEFAULT_COSTS: dict[str, dict[str, Any]] = {
    "bert-base-uncased": {"flops": 6 * 110e6 * _BERT_TOKENS, "gpu_hours": None,
                          "reference": _BERT_SOURCE.format(n="110M")},
    "bert-large-uncased": {"flops": 6 * 340e6 * _BERT_TOKENS, "gpu_hours": None,
                           "reference": _BERT_SOURCE.format(n="340M")},
}

SUMMARY = "summary.json"


def planned_teacher_cost(name: str, teacher: Mapping[str, Any]) -> dict[str, Any]:
    """The cost of teacher ``name`` (its ``teachers.NAME`` config) as far as the config knows it.

    A pretrained teacher's cost is ``measured`` with null numbers until :func:`resolve_teacher_cost`
    reads its summary (it does not exist when the workflow plans the run).
    """
    cost = teacher.get("cost")
    if teacher["source"] == "pretrain":
        return {"flops": None, "gpu_hours": None, "source": "measured", "reference": f"teacher {name}'s {SUMMARY}"}
    if cost:
        return {"flops": _float(cost.get("flops")), "gpu_hours": _float(cost.get("gpu_hours")), "source": "config",
                "reference": cost.get("reference") or f"config key 'teachers.{name}.cost'"}
    default = DEFAULT_COSTS.get(teacher.get("name") or "") if teacher["source"] == "hub" else None
    if default:
        return {**default, "source": "default"}
    return {"flops": None, "gpu_hours": None, "source": "default",
            "reference": f"unknown: no default for this teacher; set teachers.{name}.cost"}


def resolve_teacher_cost(cost: Mapping[str, Any], teacher_dir: str | Path | None) -> dict[str, Any]:
    """``cost`` with a ``measured`` teacher's numbers read from its model directory's summary."""
    if cost.get("source") != "measured":
        return dict(cost)
    if teacher_dir is None or not (Path(teacher_dir) / SUMMARY).is_file():
        raise FileNotFoundError(f"the pretrained teacher's {SUMMARY} is missing in {teacher_dir}: its cost cannot "
                                "be measured")
    return measured_cost(read_json(Path(teacher_dir) / SUMMARY), str(Path(teacher_dir) / SUMMARY))


def measured_cost(summary: Mapping[str, Any], reference: str) -> dict[str, Any]:
    """A pretrained teacher's cost from its summary: its FLOPs, and GPU-hours where it ran on GPUs (the
    training loop's seconds times the number of GPUs; null on a CPU)."""
    spent = summary.get("spent") or {}
    seconds = spent.get("seconds", summary.get("seconds"))
    gpus = gpu_count(summary)
    return {"flops": _float(spent.get("flops", summary.get("flops"))),
            "gpu_hours": seconds * gpus / 3600 if gpus and seconds is not None else None,
            "source": "measured", "reference": reference}


def gpu_count(summary: Mapping[str, Any]) -> int:
    """GPUs a run trained on: 0 unless its ``device_type`` is cuda (a CPU's name says nothing), then the
    process count of ``device`` ("NVIDIA H200", "NVIDIA H200 x 4")."""
    if summary.get("device_type") != "cuda":
        return 0
    match = re.search(r" x (\d+)$", str(summary.get("device", "")))
    return int(match[1]) if match else 1


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
