"""Pretraining strategies: No-KD and the distillation objectives of the paper.

Adding a strategy: one new module here with a `Strategy` subclass (see
`base.py`), and one `StrategyInfo` line in `registry.py` (its class, label,
colour, default LR, whether it needs a teacher, its options). Nothing else: the
config schema, the plan, `build_strategy` and the report read the registry.

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
