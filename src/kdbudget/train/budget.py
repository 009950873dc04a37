"""Compute budgets and what a run has spent of them.

A budget is a limit in one unit: wall-clock ``seconds`` (as the paper),
analytic ``flops`` (hardware-independent and deterministic) or ``tokens``
(sequence positions processed, padding included: what the compute was spent
on). The ``reference`` mode is resolved before training into one of these:
the No-KD run of a group trains a number of epochs, measured in tokens, and
every KD run of the group gets what that run spent, in the group's
``measure`` unit.

What counts as seconds: the time inside the training loop (data loading,
teacher and student passes, optimizer steps, logging), for every arm alike;
with read-ahead (``pretrain.prefetch``) the data loading overlaps the steps'
compute inside that time (``kdbudget.train.prefetch``).
Process start-up, loading the model and the teacher, evaluation and
checkpoint writes do not count; they vary with the file system and the
cluster, not with the method.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kdbudget.io import read_json
from kdbudget.train.spec import RunSpec

UNITS = ("seconds", "flops", "tokens")


@dataclass
class Spent:
    """What a run has consumed so far (carried over across resumes)."""

    seconds: float = 0.0
    flops: float = 0.0
    tokens: int = 0
    sequences: int = 0
    steps: int = 0
    teacher_flops: float = 0.0  # the teacher's forward passes' share of `flops` (not a budget unit)

    def get(self, unit: str) -> float:
        return float(getattr(self, unit))

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Budget:
    unit: str
    limit: float
    source: dict = field(default_factory=dict)  # how the limit was set (mode, reference run)

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"budget unit must be one of {UNITS}, got {self.unit!r}")
        if not self.limit > 0:
            raise ValueError(f"budget limit must be positive, got {self.limit}")

    def fraction(self, spent: Spent) -> float:
        return min(1.0, spent.get(self.unit) / self.limit)

    def should_stop(self, spent: Spent, next_step_cost: float) -> bool:
        """Stop when another step would end further from the limit than stopping now.

        So a run ends within half an optimizer step of its budget, on either side.
        """
        return spent.get(self.unit) + next_step_cost / 2 >= self.limit

    def as_dict(self) -> dict:
        return {"unit": self.unit, "limit": self.limit, **self.source}


class BudgetError(RuntimeError):
    """The budget cannot be resolved (missing reference, different hardware)."""


def resolve_budget(spec: RunSpec, meta: dict[str, Any], device: str) -> Budget:
    """The run's budget: its own limit, its epochs in tokens (a reference), or its reference's spend (a follower)."""
    b = spec.budget
    if b.mode in ("seconds", "flops", "tokens"):
        if not b.limit:
            raise BudgetError(f"{spec.name}: budget mode {b.mode!r} needs a limit")
        return Budget(b.mode, float(b.limit), {"mode": b.mode})
    if b.mode != "reference":
        raise BudgetError(f"{spec.name}: unknown budget mode {b.mode!r}")
    if b.is_reference:
        tokens = b.epochs * meta["sequences"] * meta["seq_len"]
        return Budget("tokens", tokens, {"mode": "reference", "role": "reference", "epochs": b.epochs,
                                         "measure": b.measure})
    if not b.reference_summary or not Path(b.reference_summary).is_file():
        raise BudgetError(f"{spec.name}: the reference run's summary is missing: {b.reference_summary}")
    reference = read_json(b.reference_summary)
    limit = reference["spent"][b.measure]
    if b.measure == "seconds" and reference["device"] != device and not b.allow_device_mismatch:
        raise BudgetError(
            f"{spec.name}: the wall-clock reference budget in {b.reference_summary} was measured on "
            f"'{reference['device']}', but this run is on '{device}'; wall-clock budgets are only comparable on the "
            "same hardware (set pretrain.allow_device_mismatch: true to run anyway, or use a flops budget)"
        )
    return Budget(b.measure, float(limit), {"mode": "reference", "role": "follower", "measure": b.measure,
                                            "reference": reference["name"], "reference_device": reference["device"]})
