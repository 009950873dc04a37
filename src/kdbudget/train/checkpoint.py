"""Training checkpoints: everything an exact resume needs, written atomically.

They live outside the rule's declared outputs (Snakemake deletes a failed
job's outputs) and hold the student, the strategy's projections, the
optimizer and gradient scaler, the step, the budget spent, the data stream's
position and the RNG states. Loading uses ``weights_only=True``: no pickled
code is ever executed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from kdbudget.io import atomic_path

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"


def checkpoint_path(checkpoint_dir: str | Path) -> Path:
    return Path(checkpoint_dir) / CHECKPOINT_FILE


def save_checkpoint(checkpoint_dir: str | Path, state: dict[str, Any]) -> Path:
    path = checkpoint_path(checkpoint_dir)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
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
