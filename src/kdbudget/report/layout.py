"""Table 2's layout: which models appear, in which block and order (from the config's plan).

One block per config group, in config order, titled with the group's ``title``; the group's
models in plan order (the group's strategy order). Only the models the config defines appear.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kdbudget.plan import REFERENCE_STRATEGY, PlannedModel, plan_models


@dataclass(frozen=True)
class ModelLayout:
    name: str
    strategy: str
    layers: int


@dataclass(frozen=True)
class GroupLayout:
    name: str
    title: str
    models: tuple[ModelLayout, ...]

    @property
    def reference(self) -> str | None:
        return next((m.name for m in self.models if m.strategy == REFERENCE_STRATEGY), None)


def layout_from_plan(models: Mapping[str, PlannedModel], groups: Mapping[str, Mapping[str, Any]]) -> list[GroupLayout]:
    """Table 2's blocks: the config's groups (``config["groups"]``) in order, each with its planned models."""
    return [GroupLayout(name=group, title=settings.get("title") or group,
                        models=tuple(ModelLayout(m.name, m.strategy, int(m.shape["layers"]))
                                     for m in models.values() if m.group == group))
            for group, settings in groups.items()]


def layout_from_config(config: Mapping[str, Any]) -> list[GroupLayout]:
    """Table 2's blocks for a validated config."""
    return layout_from_plan(plan_models(dict(config)), config["groups"])


def layout_to_data(layout: Sequence[GroupLayout]) -> list[dict[str, Any]]:
    """Plain data (for Snakemake params, which also makes a changed layout a rerun trigger)."""
    return [{"name": g.name, "title": g.title,
             "models": [{"name": m.name, "strategy": m.strategy, "layers": m.layers} for m in g.models]}
            for g in layout]


def layout_from_data(data: Sequence[Mapping[str, Any]]) -> list[GroupLayout]:
    return [GroupLayout(g["name"], g["title"], tuple(ModelLayout(m["name"], m["strategy"], int(m["layers"]))
                                                     for m in g["models"])) for g in data]


def model_names(layout: Sequence[GroupLayout]) -> list[str]:
    return [m.name for g in layout for m in g.models]


