"""Stop a run whose loss has diverged instead of burning the rest of its budget.

Post-LN students at the paper's learning rate (1e-3, batch 1024) can diverge
at scale: the loss turns NaN/inf, or jumps far above where it has been and
stays at chance level. Every later step would be wasted compute, and its
checkpoints would overwrite the last good one.
"""

from __future__ import annotations

import math
from collections import deque
from statistics import median


class Diverged(RuntimeError):
    """The training loss became non-finite or spiked far above its recent level."""


class DivergenceGuard:
    """Judges each step's loss against the median of the last ``window`` steps.

    A loss is a spike when it exceeds ``spike_factor`` times that median, once
    ``min_history`` steps have been seen (the first steps of a run move fast).
    ``spike_factor`` 0 turns spike detection off; non-finite losses always stop.
    """

    def __init__(self, spike_factor: float = 3.0, window: int = 100, min_history: int = 20) -> None:
        if spike_factor and spike_factor <= 1:
            raise ValueError(f"spike_factor must be above 1 (or 0 to disable), got {spike_factor}")
        self.spike_factor = spike_factor
        self.min_history = min(min_history, window)
        self.recent: deque[float] = deque(maxlen=window)

    def check(self, loss: float) -> str | None:
        """None for a healthy loss (then remembered), else why the run diverged."""
        if not math.isfinite(loss):
            return f"the loss is {loss}"
        if self.spike_factor and len(self.recent) >= self.min_history:
            level = median(self.recent)
            if level > 0 and loss > self.spike_factor * level:
                return (f"the loss {loss:.4g} is {loss / level:.1f}x its median {level:.4g} over the last "
                        f"{len(self.recent)} steps (limit {self.spike_factor:g}x)")
        self.recent.append(loss)
        return None
