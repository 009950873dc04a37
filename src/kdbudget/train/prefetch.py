"""Each step's batches, read when the step needs them or ahead of it (``pretrain.prefetch``).

Without read-ahead a step reads its micro-batches from the stream, masks them (dynamic masking),
counts the predicted positions, pins them and copies them to the GPU on its critical path: the GPU
idles while the host works. With it, a background thread does the host part for the next steps (at
most ``DEPTH`` steps queued) while the current step runs, and right after a step's work is queued, before
the step clock waits for the device, the loop issues the next step's non-blocking copies
(``StepFeed.ahead``), so they queue behind the step's compute instead of after it.

What read-ahead must not change:

- the batches, their content and order: the reader is the stream's only reader, from the same
  position, and the masks depend on the position only (``kdbudget.train.stream``);
- where a resume starts: ``StepFeed.position`` is the stream's position after the last step the loop
  *took*, which the checkpoint saves; what the reader has read beyond it is dropped and read again;
- the budget clock's fairness: the setting comes from the plan's common settings, so every arm of a
  comparison reads ahead or none does. The step clock still times whole steps, and the reader works
  during them, overlapping the step's compute: a wall-clock budget includes the host work it overlaps
  (only the part the compute does not hide makes a step longer). A little of it may fall between two
  steps' clocks (while a metrics row or a checkpoint is written), for every arm alike.
- no thread outlives the loop: leaving ``StepFeed``'s context (at the end, on a stop or on an error)
  stops the reader and joins it.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, replace

import torch

from kdbudget.train.speed import prepare, to_device
from kdbudget.train.stream import BatchStream, StreamPosition

log = logging.getLogger(__name__)

PREFETCH_SETTINGS = ("auto", True, False)
DEPTH = 1  # steps the reader may hold ready besides the one it is reading and the one staged on the device
THREAD_NAME = "kdbudget-read-ahead"
_POLL_SECONDS = 0.1  # how often a reader waiting for room checks whether it was stopped

Batch = dict[str, torch.Tensor]


def resolve_prefetch(setting: bool | str, device: torch.device) -> bool:
    """``auto``: read ahead on CUDA only (on a CPU the reader competes with the step for the same cores;
    see config/README.md for the measurement)."""
    if setting not in PREFETCH_SETTINGS:
        raise ValueError(f"prefetch must be one of {PREFETCH_SETTINGS}, got {setting!r}")
    return torch.device(device).type == "cuda" if setting == "auto" else bool(setting)


@dataclass
class StepBatches:
    """One optimizer step's data, for this process."""

    micro_batches: list[Batch]  # this process's rows, prepared (``speed.prepare``); on the device once staged
    masked: int  # predicted positions in the whole step (every process's rows): its FLOPs depend on them
    position: StreamPosition  # the stream's position after this step: where a resume continues


@dataclass(frozen=True)
class StepShape:
    """How a step reads the stream: ``accumulation`` micro-batches of ``micro_batch_size`` rows for each of
    ``processes`` processes, of which this one trains on ``rank``'s."""

    micro_batch_size: int
    accumulation: int
    processes: int = 1
    rank: int = 0


def read_step(stream: BatchStream, shape: StepShape, device: torch.device) -> StepBatches:
    """The next step's batches. Every process reads the global micro-batches and keeps its own rows; they
    are read as one process would read them, micro-batch by micro-batch, so dynamic masks (keyed by
    position) are the same for any number of processes."""
    size = shape.micro_batch_size
    mine = slice(shape.rank * size, (shape.rank + 1) * size)
    global_batches = [_concat([stream.next(size) for _ in range(shape.processes)]) for _ in range(shape.accumulation)]
    masked = sum(int((b["labels"] != -100).sum()) for b in global_batches)  # on the host: no sync
    mine_batches = [prepare({k: v[mine] for k, v in b.items()}, device) for b in global_batches]
    return StepBatches(mine_batches, masked, replace(stream.position))


def _concat(batches: list[Batch]) -> Batch:
    return batches[0] if len(batches) == 1 else {k: torch.cat([b[k] for b in batches]) for k in batches[0]}


class StepFeed:
    """The steps' batches read on demand (``take``); :class:`ReadAhead` reads them ahead. A context
    manager: leaving it releases what the feed holds."""

    def __init__(self, stream: BatchStream, shape: StepShape, device: torch.device) -> None:
        self.stream, self.shape, self.device = stream, shape, torch.device(device)
        self.position = replace(stream.position)  # after the last step taken

    def take(self) -> StepBatches:
        """This step's batches (the stream's next)."""
        step = self._next()
        self.position = step.position
        return step

    def ahead(self) -> None:
        """Start the next step's transfers now (after this step's work is queued): nothing to do here."""

    def _next(self) -> StepBatches:
        return read_step(self.stream, self.shape, self.device)

    def close(self) -> None:
        pass

    def __enter__(self) -> StepFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ReadAhead(StepFeed):
    """A feed whose steps a background thread reads ahead; ``ahead`` stages the next one on the device."""

    def __init__(self, stream: BatchStream, shape: StepShape, device: torch.device, depth: int = DEPTH) -> None:
        super().__init__(stream, shape, device)
        self._ready: queue.Queue[StepBatches | BaseException] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._staged: StepBatches | None = None
        self._thread = threading.Thread(target=self._read, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        if self.device.type == "cuda" and self.device.index is not None:
            torch.cuda.set_device(self.device)  # pinned buffers for the loop's GPU
        try:
            while not self._stop.is_set():
                self._put(read_step(self.stream, self.shape, self.device))
        except BaseException as error:  # noqa: BLE001 - handed to the loop, which raises it
            self._put(error)

    def _put(self, item: StepBatches | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._ready.put(item, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def _next(self) -> StepBatches:
        step, self._staged = self._staged, None
        if step is not None:
            return step
        item = self._ready.get()
        if isinstance(item, BaseException):
            raise item  # as the loop would have raised it reading itself
        return item

    def ahead(self) -> None:
        # Queued behind this step's compute on the device's stream: the copies overlap nothing the step
        # needs, and the pinned host tensors stay referenced (by the staged step) until they are done.
        step = self._next()
        step.micro_batches = [to_device(b, self.device) for b in step.micro_batches]
        self._staged = step

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._staged = None


def open_feed(stream: BatchStream, shape: StepShape, device: torch.device, prefetch: bool) -> StepFeed:
    """The feed of a run: :class:`ReadAhead` with read-ahead on, else :class:`StepFeed`."""
    return (ReadAhead if prefetch else StepFeed)(stream, shape, device)
