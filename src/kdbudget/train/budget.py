"""Compute budgets and what a run has spent of them.

A budget is a limit in one unit: wall-clock ``seconds`` (as the paper),
analytic ``flops`` (hardware-independent and deterministic) or ``tokens``
(sequence positions processed, padding included: what the compute was spent
on). The ``reference`` mode is resolved before training into one of these:
the No-KD run of a group trains a number of epochs, measured in tokens, and
every KD run of the group gets what that run spent, in the group's
``measure`` unit.

What counts as seconds: the time inside the training loop (data loading,
teacher and student passes, optimizer steps, logging), for every arm alike.
Process start-up, loading the model and the teacher, evaluation and
checkpoint writes do not count; they vary with the file system and the
cluster, not with the method.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

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
