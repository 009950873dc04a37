"""The learning-rate schedule, as a function of the fraction of the budget spent.

Linear warmup to the peak over the first ``warmup`` of the budget, then a
linear decay to 0 at the end of it. The paper's code computes the same curve
from elapsed hours but clamps the decay denominator at one hour, which makes
short budgets drop discontinuously; here the curve depends on the fraction
only, so any budget length gives the same shape.
"""

from __future__ import annotations


def lr_multiplier(fraction: float, warmup: float) -> float:
    """Multiplier of the peak learning rate at ``fraction`` (0..1) of the budget."""
    if not 0.0 <= warmup < 1.0:
        raise ValueError(f"warmup must be in [0, 1), got {warmup}")
    fraction = min(max(fraction, 0.0), 1.0)
    if fraction < warmup:
        return fraction / warmup
    return max(0.0, (1.0 - fraction) / (1.0 - warmup))
