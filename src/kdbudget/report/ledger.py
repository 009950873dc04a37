"""The budget ledger of a pretraining run, from its ``summary.json``: what it was given and what it spent.

- **measure**: what the group's budget counts (``seconds``, ``flops`` or
  ``tokens``); **amount**: the budget in that measure (a follower's limit; for
  a reference run, budgeted in epochs, what it spent, which is what its
  followers get); **spent**: what the run spent in that measure.
- **tokens**, **epochs** (passes over the training data) and **device**;
  **GPU-hours** where measured on GPUs: the run's seconds times its GPUs (a
  device named ``... x N`` has N; a CPU device, named ``... (N threads)``,
  has none).
- **teacher share**: the teacher's forward FLOPs over the run's FLOPs
  (``teacher_flops``), and whether the teacher ran in ``full`` or stopped at
  the last layer the strategy reads (``partial``; ``teacher_forward``).
- **teacher cost**: the teacher's own pretraining cost (``teacher_cost``:
  FLOPs, GPU-hours, where it comes from).

A field the summary lacks (older runs) is None, shown as n/a. A row of several
runs (pretraining seeds) averages the numbers and lists each distinct text.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Ledger:
    measure: str | None = None
    amount: float | None = None
    spent: float | None = None
    tokens: float | None = None
    epochs: float | None = None
    device: str | None = None
    gpu_hours: float | None = None
    has_teacher: bool = False
    teacher_share: float | None = None
    teacher_forward: str | None = None
    teacher_cost_flops: float | None = None
    teacher_cost_gpu_hours: float | None = None
    teacher_cost_source: str | None = None


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


_GPUS = re.compile(r" x (\d+)$")


def gpu_hours(device: str | None, seconds: float | None, device_type: str | None = None) -> float | None:
    """Measured GPU-hours: seconds times the GPUs of ``device`` (as the trainer names it); None on a CPU, also
    for a run of several CPU processes (``... (1 threads) x 2``). ``device_type`` (the summary's, where it has
    one) decides; older summaries are judged by the name."""
    if device is None or seconds is None or (device_type is not None and device_type != "cuda"):
        return None
    if "threads)" in device or device.lower() == "cpu":
        return None
    match = _GPUS.search(device)
    return seconds * (int(match.group(1)) if match else 1) / 3600


def ledger_of(summary: Mapping[str, Any] | None) -> Ledger:
    """One run's ledger (an empty one for a missing summary)."""
    if not summary:
        return Ledger()
    budget = summary.get("budget") or {}
    spent_by = summary.get("spent") or {}
    measure = budget.get("measure") or budget.get("unit")
    spent = _number(spent_by.get(measure)) if measure else None
    # A reference run is budgeted in epochs (unit: tokens) and measured in another unit: what it spent
    # in the measure is the amount every follower of its group receives.
    amount = _number(budget.get("limit")) if budget.get("unit") == measure else spent
    flops, teacher_flops = _number(summary.get("flops")), _number(summary.get("teacher_flops"))
    cost = summary.get("teacher_cost") or {}
    return Ledger(
        measure=measure, amount=amount, spent=spent, tokens=_number(summary.get("tokens")),
        epochs=_number(summary.get("epochs")), device=summary.get("device"),
        gpu_hours=gpu_hours(summary.get("device"), _number(spent_by.get("seconds", summary.get("seconds"))),
                            summary.get("device_type")),
        has_teacher=summary.get("teacher") is not None or bool(cost),
        teacher_share=teacher_flops / flops if teacher_flops is not None and flops else None,
        teacher_forward=summary.get("teacher_forward"), teacher_cost_flops=_number(cost.get("flops")),
        teacher_cost_gpu_hours=_number(cost.get("gpu_hours")), teacher_cost_source=cost.get("source"))


def combine(ledgers: Sequence[Ledger]) -> Ledger:
    """Several runs' ledgers as one row's: numbers averaged over the runs that have them, texts listed."""
    if len(ledgers) == 1:
        return ledgers[0]
    values: dict[str, Any] = {}
    for f in fields(Ledger):
        found = [getattr(ledger, f.name) for ledger in ledgers if getattr(ledger, f.name) is not None]
        if f.name == "has_teacher":
            values[f.name] = any(found)
        elif not found:
            values[f.name] = None
        elif isinstance(found[0], str):
            values[f.name] = "; ".join(dict.fromkeys(found))
        else:
            values[f.name] = statistics.fmean(found)
    return Ledger(**values)
