"""Pretraining strategies: No-KD and the distillation objectives of the paper.

Adding a strategy: one module with a `Strategy` subclass, one import and one
`REGISTRY` entry below.
"""

from __future__ import annotations

from transformers import BertConfig

from .base import FIDELITIES, Strategy, teacher_forward
from .minilm import MiniLM
from .minilmv2 import MiniLMv2
from .nokd import NoKD
from .tinybert import TinyBERT
from .vanillakd import VanillaKD

REGISTRY: dict[str, type[Strategy]] = {
    "nokd": NoKD,
    "vanillakd": VanillaKD,
    "tinybert": TinyBERT,
    "minilm": MiniLM,
    "minilmv2": MiniLMv2,
}


def build_strategy(
    name: str, student_config: BertConfig, teacher_config: BertConfig | None = None, **options: object
) -> Strategy:
    """The strategy `name` for these configs; unknown names or options are errors."""
    if name not in REGISTRY:
        raise KeyError(f"unknown strategy {name!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[name](student_config, teacher_config, **options)


__all__ = ["FIDELITIES", "REGISTRY", "Strategy", "build_strategy", "teacher_forward"]
