"""Table 2's layout: which models appear, in which block and order (from the config's plan).

One block per config group, in config order, titled with the group's ``title``; the group's
models in plan order (the group's strategy order). Only the models the config defines appear.

A group may repeat each strategy over pretraining seeds and budget scales: the
models are then named ``{base}`` + ``-x{scale}`` (unless the scale is 1) +
``-seed{k}`` (when the group lists seeds), e.g. ``minilm6-x0.25-seed2``. Each
model's base, seed and scale come from its summary (``table``), else from the
plan, else from this name (:func:`parse_model_name`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from kdbudget.plan import REFERENCE_STRATEGY, PlannedModel, plan_models

_NAME = re.compile(r"^(?P<base>.+?)(?:-x(?P<scale>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?))?(?:-seed(?P<seed>[0-9]+))?$")


class ModelIdentity(NamedTuple):
    base: str
    seed: int | None
    scale: float


def parse_model_name(name: str) -> ModelIdentity:
    """``minilm6-x0.25-seed2`` -> (``minilm6``, 2, 0.25); a plain name is its own base at scale 1."""
    match = _NAME.match(name)
    if not match:  # cannot happen for a non-empty name; kept for type checkers
        return ModelIdentity(name, None, 1.0)
    seed, scale = match.group("seed"), match.group("scale")
    return ModelIdentity(match.group("base"), None if seed is None else int(seed),
                         1.0 if scale is None else float(scale))


@dataclass(frozen=True)
class ModelLayout:
    name: str
    strategy: str
    layers: int
    # Where the plan knows them (a sweep or seeded group); None: from the summary or the name.
    base: str | None = None
    seed: int | None = None
    scale: float | None = None


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
                        models=tuple(_model_layout(m) for m in models.values() if m.group == group))
            for group, settings in groups.items()]


def _model_layout(model: PlannedModel) -> ModelLayout:
    # getattr: the planner may or may not record a model's base, seed and budget scale.
    scale = getattr(model, "budget_scale", None)
    return ModelLayout(model.name, model.strategy, int(model.shape["layers"]), getattr(model, "base", None),
                       getattr(model, "seed", None), None if scale is None else float(scale))


def layout_from_config(config: Mapping[str, Any]) -> list[GroupLayout]:
    """Table 2's blocks for a validated config."""
    return layout_from_plan(plan_models(dict(config)), config["groups"])


def layout_to_data(layout: Sequence[GroupLayout]) -> list[dict[str, Any]]:
    """Plain data (for Snakemake params, which also makes a changed layout a rerun trigger)."""
    def model(m: ModelLayout) -> dict[str, Any]:
        optional = {"base": m.base, "seed": m.seed, "scale": m.scale}
        return {"name": m.name, "strategy": m.strategy, "layers": m.layers,
                **{key: value for key, value in optional.items() if value is not None}}

    return [{"name": g.name, "title": g.title, "models": [model(m) for m in g.models]} for g in layout]


def layout_from_data(data: Sequence[Mapping[str, Any]]) -> list[GroupLayout]:
    return [GroupLayout(g["name"], g["title"],
                        tuple(ModelLayout(m["name"], m["strategy"], int(m["layers"]), m.get("base"), m.get("seed"),
                                          m.get("scale")) for m in g["models"])) for g in data]


def has_sweeps(config: Mapping[str, Any]) -> bool:
    """Whether a group of the config runs at more than one budget scale (``budget_scales``): then the report
    writes the sweep's table and plot."""
    return any(len(set(g.get("budget_scales") or [1])) > 1 for g in config["groups"].values())


def model_names(layout: Sequence[GroupLayout]) -> list[str]:
    return [m.name for g in layout for m in g.models]


