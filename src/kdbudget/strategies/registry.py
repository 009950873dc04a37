"""Every pretraining strategy, one entry each: the one place that names a strategy.

An entry says where the class lives (``kdbudget.strategies.<module>``, the module
named after the strategy unless ``module`` says otherwise), the row label of
Table 2, the plot colour, the default peak learning rate, whether it needs a
teacher, and its options (JSON-schema fragments with their defaults, the keyword
arguments of the class besides ``fidelity``). Everything else is derived from
here: :func:`kdbudget.strategies.build_strategy`, the config schema's strategy
names, ``pretrain.lr`` and ``pretrain.strategy_options`` (filled in by
:func:`kdbudget.config.validate_config`), the plan's teacher requirement and the
report's labels and colours.

This module imports neither torch nor transformers (the class is imported only by
:meth:`StrategyInfo.load`), because the config validation and the report layer,
which run in environments without torch, read it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import Strategy

# A strategy name is a config key and starts model and file names (``{strategy}{layers}{suffix}``).
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class StrategyInfo:
    """One registered strategy (see the module docstring)."""

    name: str
    cls: str
    label: str
    color: str
    lr: float
    teacher: bool = True
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    module: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"strategy name {self.name!r}: lowercase letters, digits and '_', from a letter")
        if not _COLOR.match(self.color):
            raise ValueError(f"strategy {self.name!r}: colour {self.color!r} is not '#rrggbb'")
        if not self.lr > 0:
            raise ValueError(f"strategy {self.name!r}: lr must be positive, got {self.lr}")
        for option, schema in self.options.items():
            if option == "fidelity" or "default" not in schema:
                raise ValueError(f"strategy {self.name!r}: option {option!r} needs a default (and is not 'fidelity')")
        # Frozen all the way down: the registry is shared by every caller.
        object.__setattr__(self, "options", MappingProxyType({k: MappingProxyType(dict(v))
                                                               for k, v in self.options.items()}))

    @property
    def module_name(self) -> str:
        return f"{__package__}.{self.module or self.name}"

    def load(self) -> type[Strategy]:
        """The strategy class (imports torch)."""
        return getattr(importlib.import_module(self.module_name), self.cls)

    def option_defaults(self) -> dict[str, Any]:
        return {name: schema["default"] for name, schema in self.options.items()}


def _register(*entries: StrategyInfo) -> Mapping[str, StrategyInfo]:
    registry: dict[str, StrategyInfo] = {}
    for entry in entries:
        if entry.name in registry:
            raise ValueError(f"strategy {entry.name!r} is registered twice")
        registry[entry.name] = entry
    return MappingProxyType(registry)


_RELATION_HEADS = {"relation_heads": {"type": ["integer", "null"], "minimum": 1, "default": None}}

# Order: the report's order of strategies where it needs one (legends), and the schema's enum.
STRATEGIES: Mapping[str, StrategyInfo] = _register(
    StrategyInfo("nokd", "NoKD", "No-KD", "#4d4d4d", lr=1.0e-3, teacher=False),
    StrategyInfo("vanillakd", "VanillaKD", "Vanilla-KD", "#1f77b4", lr=5.0e-4, options={
        "temperature": {"type": "number", "exclusiveMinimum": 0, "default": 1.0},
        "t2_scaling": {"type": "boolean", "default": False}}),
    StrategyInfo("tinybert", "TinyBERT", "TinyBERT", "#2ca02c", lr=5.0e-4, options={
        "add_mlm": {"type": "boolean", "default": False},
        "mlm_weight": {"type": "number", "minimum": 0, "default": 1.0}}),
    StrategyInfo("minilm", "MiniLM", "MiniLM", "#ff7f0e", lr=5.0e-4, options=_RELATION_HEADS),
    StrategyInfo("minilmv2", "MiniLMv2", "MiniLMv2", "#9467bd", lr=5.0e-4, options=_RELATION_HEADS),
    StrategyInfo("distilbert", "DistilBERT", "DistilBERT", "#bcbd22", lr=5.0e-4, options={
        "temperature": {"type": "number", "exclusiveMinimum": 0, "default": 2.0},
        "alpha_ce": {"type": "number", "minimum": 0, "default": 5.0},
        "alpha_mlm": {"type": "number", "minimum": 0, "default": 2.0},
        "alpha_cos": {"type": "number", "minimum": 0, "default": 1.0}}),
    StrategyInfo("mobilebert", "MobileBERT", "MobileBERT", "#e377c2", lr=5.0e-4, options={
        "schedule": {"enum": ["joint", "progressive"], "default": "joint"},
        "mlm_weight": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
        "temperature": {"type": "number", "exclusiveMinimum": 0, "default": 1.0}}),
)


def strategy_info(name: str) -> StrategyInfo:
    """The registered strategy ``name``; unknown names are a KeyError listing the known ones."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known: {sorted(STRATEGIES)}") from None


def schema_defs() -> dict[str, dict[str, Any]]:
    """The config schema's ``$defs`` that the registry owns (see workflow/schemas/config.schema.yaml):
    ``strategy`` (a registered name), ``strategy_lr`` (``pretrain.lr``: one default LR per strategy)
    and ``strategy_options`` (``pretrain.strategy_options``: each strategy's options and defaults)."""
    return {
        "strategy": {"enum": list(STRATEGIES), "description": "A registered strategy (kdbudget.strategies.registry)."},
        "strategy_lr": {
            "type": "object", "additionalProperties": False,
            "properties": {name: {"type": "number", "exclusiveMinimum": 0, "default": info.lr}
                           for name, info in STRATEGIES.items()},
        },
        "strategy_options": {
            "type": "object", "additionalProperties": False,
            "properties": {name: {"type": "object", "additionalProperties": False, "default": {},
                                  "properties": {k: dict(v) for k, v in info.options.items()}}
                           for name, info in STRATEGIES.items()},
        },
    }
