"""Validation of the pipeline configuration against its JSON schema.

The schema (``workflow/schemas/config.schema.yaml``) is the single source of
defaults, except for what the strategy registry owns (the strategy names, their
default learning rates and options): :func:`complete_schema` writes those into
the schema's ``$defs`` from :mod:`kdbudget.strategies.registry`, so a new
strategy is declared once. Validation fills the defaults in and turns every
schema violation into a :class:`ConfigError` that names the offending key as a
dotted path, so a user sees ``corpus.shards`` instead of a jsonschema traceback.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

from kdbudget.strategies.registry import schema_defs


class ConfigError(ValueError):
    """A configuration value is missing, unknown or invalid."""


def _with_defaults(validator_class: type) -> type:
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


_DefaultFillingValidator = _with_defaults(Draft202012Validator)


def load_schema(path: str | Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def complete_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` with the registry's ``$defs`` (strategy, strategy_lr, strategy_options) in place."""
    completed = copy.deepcopy(schema)
    completed.setdefault("$defs", {}).update(schema_defs())
    return completed


def _key_path(error) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "additionalProperties":
        # jsonschema reports the parent; name the unexpected key itself.
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        parts.append(",".join(extra))
    return ".".join(parts) or "<top level>"


def validate_config(config: dict[str, Any], schema: dict[str, Any] | str | Path) -> dict[str, Any]:
    """Return a validated copy of ``config`` with schema defaults filled in.

    Raises :class:`ConfigError` listing every violation with its key path.
    """
    if not isinstance(schema, dict):
        schema = load_schema(schema)
    schema = complete_schema(schema)
    filled = copy.deepcopy(config) if config is not None else {}
    validator = _DefaultFillingValidator(schema)
    errors = sorted(validator.iter_errors(filled), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = []
        for error in errors:
            if error.validator == "additionalProperties":
                lines.append(f"config key '{_key_path(error)}': unknown key (check its spelling in config/README.md)")
            else:
                lines.append(f"config key '{_key_path(error)}': {error.message}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    check_consistency(filled)
    return filled


def check_consistency(config: dict[str, Any]) -> None:
    """Cross-key rules that a JSON schema cannot express clearly."""
    corpus = config["corpus"]
    wiki, books = corpus["wikipedia"], corpus["bookcorpus"]
    if wiki["source"] == "none" and books["source"] == "none":
        raise ConfigError("config keys 'corpus.wikipedia.source' and 'corpus.bookcorpus.source' are both 'none': "
                          "the corpus would be empty")
    if wiki["source"] == "file" and not wiki["path"]:
        raise ConfigError("config key 'corpus.wikipedia.path' is required when corpus.wikipedia.source is 'file'")
    if books["source"] == "dir" and not books["path"]:
        raise ConfigError("config key 'corpus.bookcorpus.path' is required when corpus.bookcorpus.source is 'dir'")
    if books["source"] == "hub" and not books["hub_name"]:
        raise ConfigError("config key 'corpus.bookcorpus.hub_name' is required when corpus.bookcorpus.source is 'hub'")
    tokenizer = config["tokenizer"]
    if tokenizer["source"] == "dir" and not tokenizer["path"]:
        raise ConfigError("config key 'tokenizer.path' is required when tokenizer.source is 'dir'")
    if tokenizer["source"] == "hub" and not tokenizer["hub_name"]:
        raise ConfigError("config key 'tokenizer.hub_name' is required when tokenizer.source is 'hub'")
    glue = config["glue"]
    if glue["source"] == "dir" and not glue["path"]:
        raise ConfigError("config key 'glue.path' is required when glue.source is 'dir'")
    packing = config["packing"]
    if packing["masking"] == "dynamic" and packing["duplication"] != 1:
        raise ConfigError("config key 'packing.duplication' must be 1 with dynamic masking "
                          "(masks are drawn at load time)")
    if packing["max_predictions"] > packing["seq_len"] - 2:
        raise ConfigError("config key 'packing.max_predictions' exceeds the maskable positions of packing.seq_len")
    check_batch_sizes(config)


def check_batch_sizes(config: dict[str, Any]) -> None:
    """Each of a pretraining job's processes (one per GPU) runs whole micro-batches of every step.

    Checked here, before the data stage, rather than by the trainer hours later.
    """
    pretrain = config["pretrain"]
    batch, micro = pretrain["batch_size"], pretrain["micro_batch_size"]
    if batch % micro:
        raise ConfigError(f"config key 'pretrain.batch_size' ({batch}) must be a multiple of "
                          f"'pretrain.micro_batch_size' ({micro})")
    gpus = config["resources"]["pretrain"]["gpu"]
    if gpus > 1 and batch % (micro * gpus):
        raise ConfigError(f"config key 'pretrain.batch_size' ({batch}) must be a multiple of "
                          f"'pretrain.micro_batch_size' ({micro}) x 'resources.pretrain.gpu' ({gpus}): each GPU's "
                          "process trains whole micro-batches")
