"""The step clock every arm of a comparison is timed with.

Under a wall-clock budget the No-KD reference's seconds become every KD
run's limit, so all arms must measure a step the same way, whatever their
own budget unit: the clock waits for the device once at the end of every
optimizer step (queued GPU work finishes inside the step that issued it) and
reads the host's monotonic clock. That one synchronisation per step is the
only one the loop needs; it costs every arm alike.
"""

from __future__ import annotations

import time

import torch


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a no-op on the CPU, which runs eagerly)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock:
    """``start()`` at the top of a step, ``stop()`` at its end returns the step's seconds."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._started: float | None = None

    def start(self) -> None:
        self._started = time.perf_counter()

    def stop(self) -> float:
        if self._started is None:
            raise RuntimeError("StepClock.stop() without start()")
        synchronize(self.device)
        seconds = time.perf_counter() - self._started
        self._started = None
        return seconds
