"""TensorBoard event files beside ``metrics.jsonl`` (the optional ``pretrain.tensorboard`` switch).

One event file per run, under a fixed name, holds every row of ``metrics.jsonl`` as scalars with the
optimizer step as x, and the validation scores at the last step. Values are float32 ``simple_value``s,
the numbers of ``metrics.jsonl`` to 7 digits: TensorBoard's default reader (its Rust data server) shows
no float64 scalar (tried with tensorboard 2.21), and the exact numbers stay in ``metrics.jsonl``.

Resume: the trainer truncates ``metrics.jsonl`` to the checkpoint's step and replays the steps after
it. The event file is rebuilt to hold exactly those kept rows (each with the wall time it was first
written at) and is replaced in one rename, so no step appears twice and none is lost, whatever reads
the file. TensorBoard's ``purge_step`` would instead leave the stale steps on disk and rely on each
reader to hide them.

The ``tensorboard`` package is optional (``pip install -e '.[tensorboard]'``) and imported only
when the switch is on.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

EVENTS_FILE = "events.out.tfevents.kdbudget"  # TensorBoard reads any file whose name holds "tfevents"
CONFIG_KEY = "pretrain.tensorboard"

# Tags of the row keys of metrics.jsonl; any other key is a loss component of the strategy.
ROW_TAGS = {"loss": "loss/total", "lr": "train/lr", "tokens_per_second": "train/tokens_per_second",
            "epochs": "train/epochs", "budget_fraction": "budget/fraction", "seconds": "budget/seconds",
            "tokens": "budget/tokens", "flops": "budget/flops"}
VALIDATION_KEYS = ("mlm_loss", "mlm_accuracy", "perplexity")  # of the summary's "validation", as eval/KEY


class TensorBoardMissing(RuntimeError):
    """The switch is on but the tensorboard package is not installed."""


def require_tensorboard() -> None:
    """Fail before any training when the switch is on and the package is missing."""
    try:
        import tensorboard.compat.proto.event_pb2  # noqa: F401
    except ImportError as err:
        raise TensorBoardMissing(
            f"config key '{CONFIG_KEY}' is true but the tensorboard package cannot be imported ({err}): install "
            f"it (pip install -e '.[tensorboard]' in the repository, or pip install tensorboard; envs/train.yaml has "
            f"it) or set {CONFIG_KEY}: false"
        ) from err


def row_tag(key: str) -> str:
    return ROW_TAGS.get(key, f"loss/{key}")


def read_wall_times(path: Path) -> dict[int, float]:
    """The wall time of each step's metrics in an event file (a killed writer's cut-off last record is skipped)."""
    if not path.is_file():
        return {}
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    return {event.step: event.wall_time for event in EventFileLoader(str(path)).Load()
            if any(v.tag in ROW_TAGS.values() for v in event.summary.value)}


class EventLog:
    """Appends metric rows to ``directory/EVENTS_FILE``, after rewriting it to hold exactly ``rows``."""

    def __init__(self, directory: str | Path, rows: Sequence[Mapping[str, Any]] = ()) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._pb = (event_pb2, summary_pb2)
        self.path = Path(directory) / EVENTS_FILE
        walls = read_wall_times(self.path)
        # Not atomic_path's temporary name: it would hold "tfevents", and a live TensorBoard would read it.
        tmp = self.path.with_name(".kdbudget-events.tmp")
        with open(tmp, "wb") as handle:
            writer = RecordWriter(handle)
            writer.write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
            for row in rows:
                writer.write(self._event(row["step"], self._row_values(row), walls.get(row["step"])))
        os.replace(tmp, self.path)
        self._writer = RecordWriter(open(self.path, "ab"))

    def add_row(self, row: Mapping[str, Any]) -> None:
        """One row of metrics.jsonl (its ``step`` is x; a null value, e.g. the first tokens/s, is left out)."""
        self._writer.write(self._event(row["step"], self._row_values(row)))
        self._writer.flush()  # as metrics.jsonl: a live TensorBoard sees each step

    def add_validation(self, step: int, validation: Mapping[str, Any]) -> None:
        """The validation scores of the finished run (``summary.json``'s ``validation``) at its last step."""
        values = {f"eval/{k}": validation[k] for k in VALIDATION_KEYS if validation.get(k) is not None}
        if values:
            self._writer.write(self._event(step, values))
            self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    @staticmethod
    def _row_values(row: Mapping[str, Any]) -> dict[str, float]:
        return {row_tag(k): v for k, v in row.items() if k != "step" and v is not None}

    def _event(self, step: int, values: Mapping[str, float], wall_time: float | None = None) -> bytes:
        event_pb2, summary_pb2 = self._pb
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(v))
                                             for tag, v in values.items()])
        wall = time.time() if wall_time is None else wall_time
        return event_pb2.Event(wall_time=wall, step=int(step), summary=summary).SerializeToString()


class NoEventLog:
    """The switch off, or a process other than rank 0: nothing is written."""

    def add_row(self, row: Mapping[str, Any]) -> None:
        pass

    def add_validation(self, step: int, validation: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def open_event_log(enabled: bool, metrics_path: str | Path) -> EventLog | NoEventLog:
    """The event log beside ``metrics_path``, first rewritten to the rows that file holds (a resumed run's)."""
    if not enabled:
        return NoEventLog()
    metrics_path = Path(metrics_path)
    lines = metrics_path.read_text(encoding="utf-8").splitlines() if metrics_path.is_file() else []
    return EventLog(metrics_path.parent, [json.loads(line) for line in lines if line])
