"""Training checkpoints: everything an exact resume needs, written atomically.

They live outside the rule's declared outputs (Snakemake deletes a failed
job's outputs) and hold the student, the strategy's projections, the
optimizer and gradient scaler, the step, the budget spent, the data stream's
position and the RNG states. Loading uses ``weights_only=True``: no pickled
code is ever executed.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from kdbudget.io import atomic_path

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, a quota); the previous one is kept."""


def checkpoint_path(checkpoint_dir: str | Path) -> Path:
    return Path(checkpoint_dir) / CHECKPOINT_FILE


def save_checkpoint(checkpoint_dir: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to the folder's checkpoint file, replacing the previous one only when complete."""
    path = checkpoint_path(checkpoint_dir)
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    except (OSError, RuntimeError) as err:
        # torch.save reports a full disk as "RuntimeError: ... unexpected pos N vs M"; say what it means.
        try:
            free = f"{shutil.disk_usage(path.parent).free / 2**20:.0f} MiB free there"
        except OSError:
            free = "free space unknown"
        kept = (f"the previous checkpoint {path} is kept (a rerun resumes from it)" if path.is_file()
                else "no earlier checkpoint exists")
        raise CheckpointWriteError(
            f"could not write the checkpoint {path} ({free}; a full disk or quota?): {err}. Nothing was "
            f"replaced: {kept}. Free some space, then rerun") from err
    log.info("checkpoint written: %s (step %s)", path, state["progress"]["spent"]["steps"])
    return path


def load_checkpoint(checkpoint_dir: str | Path) -> dict[str, Any] | None:
    path = checkpoint_path(checkpoint_dir)
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
