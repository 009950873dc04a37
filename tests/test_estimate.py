"""python -m kdbudget.estimate: a config's GPU-hours from a benchmark JSON, checked against a hand
computation on a hand-made benchmark."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import ROOT

from kdbudget.config import validate_config
from kdbudget.estimate import EstimateError, estimate, main

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SHAPE = {"layers": 6, "hidden": 768, "heads": 12, "intermediate": 3072}
CONFIG = {
    "teachers": {"bert-base": {"source": "hub", "name": "bert-base-uncased"}},
    "groups": {
        "seconds6": {"student": SHAPE, "teacher": "bert-base", "strategies": ["nokd", "vanillakd", "minilm"],
                     "budget": {"mode": "reference", "measure": "seconds", "epochs": 2}},
        "flops6": {"suffix": "_f", "student": SHAPE, "teacher": "bert-base", "strategies": ["nokd", "tinybert"],
                   "budget": {"mode": "reference", "measure": "flops", "epochs": 1}},
        "fixed6": {"suffix": "_s", "student": SHAPE, "teacher": "bert-base", "strategies": ["vanillakd"],
                   "budget": {"mode": "seconds", "limit": 7200}},
    },
    "glue": {"tasks": ["rte", "mrpc"], "grid": {"batch_size": [16, 32], "lr": [1.0e-5]}, "seeds": [42], "epochs": 3},
    "resources": {"glue": {"examples_per_second": 400}},
}


def _row(strategy: str, tokens_per_second: float, flops_per_token: float, compile_: bool = True) -> dict:
    return {"shape": "paper6", "strategy": strategy, "compile": compile_, "student": SHAPE, "tokens_per_step": 1000,
            "flops_per_step": 1000 * flops_per_token, "tokens_per_second": tokens_per_second}


BENCHMARK = {"device": "NVIDIA H100 80GB HBM3", "rows": [
    _row("nokd", 1e6, 3e8), _row("vanillakd", 5e5, 5e8), _row("minilm", 8e5, 4e8), _row("tinybert", 4e5, 5e8),
    _row("nokd", 9e5, 3e8, compile_=False),  # the config compiles on a GPU (auto): this row is not used
]}


def test_the_estimate_matches_a_hand_computation():
    result = estimate(validate_config(CONFIG, SCHEMA), BENCHMARK, tokens=1e9)
    hours = {r["name"]: r["gpu_hours"] * 3600 for r in result["pretraining"]}
    assert hours == pytest.approx({
        "nokd6": 2e9 / 1e6, "vanillakd6": 2000, "minilm6": 2000,  # 2 epochs of 1e9 tokens; KD: the same seconds
        "nokd6_f": 1000,  # 1 epoch: 1e9 tokens x 3e8 FLOP/token = 3e17 FLOPs
        "tinybert6_f": 3e17 / (4e5 * 5e8),  # the same FLOPs at TinyBERT's 2e14 FLOP/s: 1500 s
        "vanillakd6_s": 7200,
    })
    assert result["pretraining_gpu_hours"] == pytest.approx(15700 / 3600)
    # GLUE: 6 models (6L/768: half BERT-base's cost) x 2 cells x (2490 RTE + 3668 MRPC) examples x 3 epochs / 400
    glue_seconds = 6 * 2 * (2490 + 3668) * 3 * 0.5 / 400
    assert result["glue"]["seconds"] == pytest.approx(glue_seconds) and result["glue"]["jobs"] == 6 * 2 * 2
    assert result["glue_start_up_gpu_hours"] == pytest.approx(24 * 5 / 60)
    assert result["total_gpu_hours"] == pytest.approx((15700 + glue_seconds) / 3600)
    faster_glue = estimate(validate_config(CONFIG, SCHEMA), BENCHMARK, 1e9, glue_examples_per_second=800)
    assert faster_glue["glue"]["seconds"] == pytest.approx(glue_seconds / 2)


def test_the_command_reads_the_corpus_size_from_meta_and_names_what_is_missing(tmp_path, capsys):
    config, benchmark, meta = tmp_path / "config.yaml", tmp_path / "bench.json", tmp_path / "meta.json"
    config.write_text(yaml.safe_dump(CONFIG))
    benchmark.write_text(json.dumps(BENCHMARK))
    meta.write_text(json.dumps({"sequences": 1e9 / 128, "seq_len": 128}))
    args = [str(config), "--benchmark", str(benchmark), "--schema", str(SCHEMA), "--json", str(tmp_path / "e.json")]
    assert main(args + ["--meta", str(meta)]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["pretraining_gpu_hours"] == pytest.approx(15700 / 3600)
    assert "nokd6" in capsys.readouterr().out
    assert main(args + ["--meta", str(tmp_path / "none.json")]) == 1
    assert "--tokens" in capsys.readouterr().err
    benchmark.write_text(json.dumps({"rows": [r for r in BENCHMARK["rows"] if r["strategy"] != "minilm"]}))
    with pytest.raises(EstimateError, match="no row for minilm with a 6/768/12/3072 student"):
        estimate(validate_config(CONFIG, SCHEMA), json.loads(benchmark.read_text()), 1e9)
