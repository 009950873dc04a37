"""Pretraining strategies: No-KD and the distillation objectives of the paper.

Adding a strategy, say `mykd`, takes two edits and nothing else:

1. A new module `mykd.py` here with a `Strategy` subclass (`base.py`): the class
   attribute `name = "mykd"`; in `__init__(student_config, teacher_config, *,
   fidelity="paper", <options>)`, `student_needs` and `teacher_needs` (`Request`s:
   the trainer computes nothing more; `require_teacher` where it distils); and
   `compute()` returning fp32 scalars, the total under `"loss"`;
   `extra_flops_per_token` counts any matrix products of its own.
2. One `StrategyInfo` line in `registry.py`: the name, the class name, Table 2's
   label, the plot colour, the default peak LR, `teacher=False` if it needs no
   teacher, its options (JSON-schema fragments with defaults, exactly the
   keyword arguments after `fidelity`), and `module=` only if the file is not
   named after the strategy.

The config schema's enum, `pretrain.lr`, `pretrain.strategy_options`, the plan,
`build_strategy` and the report's labels and colours all read the registry;
tests/test_registry.py adds a toy strategy this way and runs it to Table 2.

Importing this package does not import torch (the config validation and the
report import `registry`, a submodule); the classes, `Strategy`,
`teacher_forward` and `REGISTRY` load torch when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .registry import STRATEGIES, StrategyInfo, strategy_info

if TYPE_CHECKING:
    from transformers import BertConfig

    from .base import FIDELITIES, Strategy, teacher_forward


def build_strategy(
    name: str, student_config: BertConfig, teacher_config: BertConfig | None = None, **options: object
) -> Strategy:
    """The strategy `name` for these configs; unknown names or options are errors."""
    return strategy_info(name).load()(student_config, teacher_config, **options)


# Names served from base.py on first use, so that `import kdbudget.strategies` stays torch-free.
_FROM_BASE = ("FIDELITIES", "Strategy", "teacher_forward")


def __getattr__(name: str) -> Any:
    if name in _FROM_BASE:
        return getattr(importlib.import_module(".base", __name__), name)
    if name == "REGISTRY":  # name -> class, every class imported
        return {key: info.load() for key, info in STRATEGIES.items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["FIDELITIES", "REGISTRY", "STRATEGIES", "Strategy", "StrategyInfo", "build_strategy", "strategy_info",
           "teacher_forward"]
