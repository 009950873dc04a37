"""The name of a GLUE fine-tuning grid cell: the one place that spells it.

A cell is one (batch size, learning rate, seed) of the grid; its name is the stem
of ``results/finetune/{model}/{task}/{cell}.json`` and the workflow's ``cell``
wildcard: ``bs32_lr3e-05``, with ``_seed{N}`` appended only when the config
fine-tunes with more than one seed (so a single-seed run keeps the short names).
The learning rate is written with ``%g`` (six significant digits, as the grid's
values have far fewer); :func:`grid_cells` refuses two values that print alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# The workflow's `cell` wildcard constraint; non-capturing, as Snakemake wraps it in a named group.
CELL_REGEX = r"bs\d+_lr[0-9.e+-]+(?:_seed\d+)?"
_CELL = re.compile(r"bs(?P<batch_size>\d+)_lr(?P<lr>[0-9.e+-]+)(?:_seed(?P<seed>\d+))?")


@dataclass(frozen=True)
class Cell:
    """One grid cell; ``seed`` None when the name carries no seed."""

    batch_size: int
    lr: float
    seed: int | None = None

    @property
    def name(self) -> str:
        return cell_name(self.batch_size, self.lr, self.seed)


def lr_label(lr: float) -> str:
    """A learning rate as cell names write it: ``3e-05``, ``0.001``."""
    return f"{float(lr):g}"


def cell_name(batch_size: int, lr: float, seed: int | None = None) -> str:
    """``bs{batch_size}_lr{lr:g}``, plus ``_seed{seed}`` when a seed is given."""
    name = f"bs{int(batch_size)}_lr{lr_label(lr)}"
    return name if seed is None else f"{name}_seed{int(seed)}"


def parse_cell(name: str) -> Cell:
    """The cell a name stands for; a ValueError for anything :func:`cell_name` does not write."""
    match = _CELL.fullmatch(name)
    if match is None:
        raise ValueError(f"{name!r} is not a GLUE grid cell name (bs{{B}}_lr{{LR}}[_seed{{N}}])")
    try:
        lr = float(match["lr"])
    except ValueError:
        raise ValueError(f"{name!r}: {match['lr']!r} is not a learning rate") from None
    seed = match["seed"]
    return Cell(int(match["batch_size"]), lr, int(seed) if seed is not None else None)


def grid_cells(batch_sizes: Iterable[int], lrs: Iterable[float], seeds: Iterable[int]) -> dict[str, dict]:
    """Every cell of the grid by name, each as ``{"batch_size", "lr", "seed"}`` (the fine-tuning
    arguments: the seed is always there, but named only when there are several seeds)."""
    batch_sizes, lrs, seeds = list(batch_sizes), list(lrs), list(seeds)
    seeded = len(seeds) > 1
    cells = {cell_name(b, lr, seed if seeded else None): {"batch_size": b, "lr": lr, "seed": seed}
             for b in batch_sizes for lr in lrs for seed in seeds}
    if len(cells) != len(batch_sizes) * len(lrs) * len(seeds):
        # Two grid values that print alike (1e-5 and 1.0000001e-5) would share a result file.
        raise ValueError(f"GLUE grid values that give the same cell name: batch sizes {batch_sizes}, lrs {lrs}")
    return cells
