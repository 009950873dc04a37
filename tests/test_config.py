"""Config validation: defaults come from the schema, and every error names its key."""

from pathlib import Path

import pytest
import yaml

from kdbudget.config import ConfigError, validate_config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml", "study.yaml"])
def test_shipped_configs_validate(name):
    config = validate_config(load(name), SCHEMA)
    assert config["packing"]["seq_len"] == 128
    assert config["packing"]["max_predictions"] == 20


def test_the_study_is_the_demo_world_swept_over_three_scales_and_seeds():
    from kdbudget.plan import plan_models

    demo, study = validate_config(load("config.yaml"), SCHEMA), validate_config(load("study.yaml"), SCHEMA)
    # The same world, corpus, teacher and training settings as the demo: only the group and GLUE's tasks and
    # seeds differ, so its scale-1 runs are the demo's runs at other seeds.
    for key in ("seed", "corpus", "tokenizer", "packing", "teachers", "pretrain", "resources"):
        assert study[key] == demo[key], key
    assert {k: v for k, v in study["glue"].items() if k not in ("tasks", "seeds")} == \
        {k: v for k, v in demo["glue"].items() if k not in ("tasks", "seeds")}
    assert (study["glue"]["tasks"], study["glue"]["seeds"]) == (["sst2", "qnli"], [42, 43])
    models = plan_models(study)
    # 3 strategies x 3 scales x 3 seeds, each KD run held to the No-KD run of its own scale and seed.
    assert len(models) == 27
    assert models["minilm6-x0.25-seed2"].reference_name(models) == "nokd6-x0.25-seed2"
    assert models["vanillakd6-seed0"].reference_name(models) == "nokd6-seed0"
    assert [models[f"nokd6{s}-seed1"].budget["epochs"] for s in ("-x0.25", "-x0.5", "")] == [0.5, 1.0, 2]
    assert all(m.shape == demo["groups"]["unlimited6"]["student"] | {"layer_norm": m.shape["layer_norm"]}
               for m in models.values())


def test_defaults_are_filled_from_the_schema():
    config = validate_config({}, SCHEMA)
    assert config["corpus"]["wikipedia"]["source"] == "demo"
    assert config["packing"]["mask_prob"] == 0.15
    assert config["resources"]["data"]["mem_mb"] == 4000


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"corpus\.shardz"):
        validate_config({"corpus": {"shardz": 3}}, SCHEMA)


def test_bad_value_is_named():
    with pytest.raises(ConfigError, match=r"packing\.masking"):
        validate_config({"packing": {"masking": "sometimes"}}, SCHEMA)
    for option, bad in (("alpha_ce", -1.0), ("alpha_cos", "high"), ("temperature", 0)):
        with pytest.raises(ConfigError, match=rf"pretrain\.strategy_options\.distilbert\.{option}"):
            validate_config({"pretrain": {"strategy_options": {"distilbert": {option: bad}}}}, SCHEMA)
    with pytest.raises(ConfigError, match=r"corpus\.shards"):
        validate_config({"corpus": {"shards": 0}}, SCHEMA)


@pytest.mark.parametrize(
    "config, key",
    [
        ({"corpus": {"wikipedia": {"source": "none"}, "bookcorpus": {"source": "none"}}}, "corpus.wikipedia.source"),
        ({"corpus": {"wikipedia": {"source": "file"}}}, "corpus.wikipedia.path"),
        ({"corpus": {"bookcorpus": {"source": "dir"}}}, "corpus.bookcorpus.path"),
        ({"tokenizer": {"source": "hub"}}, "tokenizer.hub_name"),
        ({"glue": {"source": "dir"}}, "glue.path"),
        ({"packing": {"masking": "dynamic", "duplication": 3}}, "packing.duplication"),
    ],
)
def test_inconsistent_values_are_named(config, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(config, SCHEMA)
