"""Loading a model's small summaries: ``results/pretrain/{model}/summary.json``, ``metrics.jsonl`` and
``results/glue/{model}/summary.json`` (never weights, never torch)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdbudget.io import read_json
from kdbudget.report.layout import GroupLayout, model_names


@dataclass(frozen=True)
class ModelResults:
    """One model's summaries; None where a file was not found (its expected path is in ``paths``)."""

    name: str
    pretrain: dict[str, Any] | None
    metrics: list[dict[str, Any]] | None
    glue: dict[str, Any] | None
    paths: dict[str, str | None] = field(default_factory=dict)

    def where(self, key: str) -> str:
        return self.paths.get(key) or "not given"


def model_paths(pretrain_dir: str | Path, glue_dir: str | Path) -> dict[str, Path]:
    """A model's summaries in its pretraining directory and its GLUE directory."""
    pretrain_dir, glue_dir = Path(pretrain_dir), Path(glue_dir)
    return {"pretrain": pretrain_dir / "summary.json", "metrics": pretrain_dir / "metrics.jsonl",
            "glue": glue_dir / "summary.json"}


def result_paths(results_dir: str | Path, name: str) -> dict[str, Path]:
    """Where the pipeline writes a model's summaries under a results folder."""
    results_dir = Path(results_dir)
    return model_paths(results_dir / "pretrain" / name, results_dir / "glue" / name)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_model_results(name: str, *, pretrain: str | Path | None = None, metrics: str | Path | None = None,
                       glue: str | Path | None = None) -> ModelResults:
    """Read the summaries that exist (None for a path that is None or absent); a summary of
    another model (a copied file) is an error."""
    paths = {"pretrain": pretrain, "metrics": metrics, "glue": glue}
    readers = {"pretrain": read_json, "metrics": read_metrics, "glue": read_json}
    loaded = {key: readers[key](path) if path is not None and Path(path).is_file() else None
              for key, path in paths.items()}
    for key, name_field in (("pretrain", "name"), ("glue", "model")):
        found = (loaded[key] or {}).get(name_field)
        if found is not None and found != name:
            raise ValueError(f"{paths[key]}: a summary of model {found!r} where {name!r} was expected")
    return ModelResults(name, loaded["pretrain"], loaded["metrics"], loaded["glue"],
                        {key: None if path is None else str(path) for key, path in paths.items()})


def load_results(layout: Sequence[GroupLayout], results_dir: str | Path) -> dict[str, ModelResults]:
    """Every model of the layout, from the standard layout of a results folder."""
    return {name: load_model_results(name, **result_paths(results_dir, name)) for name in model_names(layout)}


def load_model_dirs(names: Sequence[str], pretrain_dirs: Sequence[str | Path],
                    glue_dirs: Sequence[str | Path]) -> dict[str, ModelResults]:
    """The named models from their pretraining and GLUE directories, given in the same order (the report
    rules' inputs)."""
    return {name: load_model_results(name, **model_paths(pretrain, glue))
            for name, pretrain, glue in zip(names, pretrain_dirs, glue_dirs, strict=True)}
