"""Pretraining through Snakemake on a test config far smaller than the demo."""

import json
import subprocess

import pytest
from conftest import ROOT, SNAKEMAKE, base_config, run_snakemake

from kdbudget.cpu_isa import isa_environment

TINY = {"layers": 2, "hidden": 32, "heads": 4, "intermediate": 64}


def pretrain_config(**overrides) -> dict:
    config = base_config(
        teachers={"t4": {"source": "pretrain", "shape": {**TINY, "layers": 4},
                         "budget": {"mode": "tokens", "limit": 8 * 128 * 10}}},
        groups={"small": {"student": TINY, "teacher": "t4", "strategies": ["nokd", "minilm"],
                          "budget": {"mode": "reference", "measure": "flops", "epochs": 1}}},
        pretrain={"batch_size": 8, "micro_batch_size": 4, "log_every_steps": 1, "eval_sequences": 16},
        resources={"pretrain": {"threads": 1, "gpu": 0, "runtime": 5, "mem_mb": 1000}},
    )
    return {**config, **overrides}


@pytest.mark.slow
def test_kd_run_gets_the_nokd_budget_through_the_dag(tmp_path):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    work = tmp_path / "work"
    result = run_snakemake(work, pretrain_config(), "results/pretrain/minilm2")  # a model directory is a target
    out = result.stdout + result.stderr
    assert "pretrain_teacher" in out and "pretrain_model" in out
    nokd = json.loads((work / "results/pretrain/nokd2/summary.json").read_text())
    minilm = json.loads((work / "results/pretrain/minilm2/summary.json").read_text())
    assert nokd["budget"]["role"] == "reference" and minilm["budget"]["reference"] == "nokd2"
    assert abs(minilm["flops"] - nokd["flops"]) / nokd["flops"] < 0.05
    assert minilm["tokens"] < nokd["tokens"]
    if isa_environment("avx2"):  # the config's default cpu_isa reached the training jobs (kdbudget.cpu_isa)
        for summary in (nokd, minilm):
            assert summary["cpu_kernels"] == {"aten": "AVX2", "aten_cpu_capability": "avx2", "mkl_cbwr": "AVX2",
                                              "onednn_max_cpu_isa": "AVX2"}
    for name in ("nokd2", "minilm2"):
        model_dir = work / "results/pretrain" / name
        AutoModelForMaskedLM.from_pretrained(model_dir)
        AutoTokenizer.from_pretrained(model_dir)
        assert (work / "logs/pretrain" / f"{name}.log").stat().st_size > 0
    assert not (work / "results/checkpoints").exists() or not any((work / "results/checkpoints").iterdir())


def test_paper_pretraining_plans_table_2s_twelve_models_and_the_extra_row(tmp_path):
    result = subprocess.run([str(SNAKEMAKE), "pretrain", "-n", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                             str(tmp_path), "--configfile", str(ROOT / "config" / "paper.yaml")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    names = [f"{s}{n}{suffix}" for s in ("nokd", "vanillakd", "minilm", "tinybert")
             for n, suffix in ((6, ""), (12, ""), (6, "_limited"))]
    names.append("distilbert6")  # not in the paper's Table 2: an extra row of the 6-layer group
    for name in names:
        assert f"results/pretrain/{name}\n" in out or f"results/pretrain/{name} " in out
    assert "gpu=1" in out and "runtime=1620" in out
    minilm6 = next(block for block in out.split("\n\n") if "wildcards: model=minilm6\n" in block + "\n")
    assert "input: results/data/meta.json, resources/teachers/bert-base-uncased, results/pretrain/nokd6" in minilm6
