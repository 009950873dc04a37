"""Seeds and budget scales through Snakemake: the dry run's jobs, and a tiny end-to-end run in which every
KD run is held to the No-KD run of its own seed."""

import json
import re

import pytest
from conftest import run_snakemake
from test_pretrain_pipeline import pretrain_config

SEEDED = {"seeds": [0, 1]}


def seeded_config(**group) -> dict:
    config = pretrain_config()
    config["groups"]["small"].update(group)
    return config


def jobs(out: str, rule: str) -> dict[str, str]:
    """wildcard model -> the job's input line, for every job of ``rule`` in a dry run's output."""
    found = {}
    for block in re.split(r"^(?=(?:local)?rule )", out, flags=re.M):
        if re.match(rf"(local)?rule {rule}:", block):
            model = re.search(r"wildcards: model=(\S+)", block)[1]
            found[model] = re.search(r"input: (.*)", block)[1]
    return found


def test_a_dry_run_plans_every_seed_and_scale_each_kd_run_after_its_own_reference(tmp_path):
    config = seeded_config(budget_scales=[0.5, 1], **SEEDED)
    config["glue"] = {"tasks": ["rte"], "grid": {"batch_size": [8], "lr": [1e-4]}, "seeds": [1, 2]}
    out = run_snakemake(tmp_path / "work", config, "glue", extra=("-n",)).stdout
    pretrain = jobs(out, "pretrain_model")
    expected = {"nokd2-x0.5-seed0", "nokd2-x0.5-seed1", "nokd2-seed0", "nokd2-seed1",
                "minilm2-x0.5-seed0", "minilm2-x0.5-seed1", "minilm2-seed0", "minilm2-seed1"}
    assert set(pretrain) == expected
    for kd in (m for m in expected if m.startswith("minilm")):
        assert pretrain[kd].endswith(f"results/pretrain/{kd.replace('minilm', 'nokd')}")
    assert all("results/pretrain/" not in pretrain[m] for m in expected if m.startswith("nokd"))
    assert set(jobs(out, "glue_summary")) == expected
    # Every model fine-tunes each GLUE seed of the one cell: 8 models x 2 seeds.
    cells = re.findall(r"output: results/finetune/(\S+)/rte/(bs8_lr0.0001_seed\d)\.json", out)
    assert sorted(cells) == sorted((m, f"bs8_lr0.0001_seed{s}") for m in expected for s in (1, 2))


@pytest.mark.slow
def test_seeded_runs_train_and_each_kd_summary_names_its_own_seeds_reference(tmp_path):
    work = tmp_path / "work"
    run_snakemake(work, seeded_config(**SEEDED), "pretrain")
    summaries = {name: json.loads((work / "results/pretrain" / name / "summary.json").read_text())
                 for name in ("nokd2-seed0", "nokd2-seed1", "minilm2-seed0", "minilm2-seed1")}
    for seed in (0, 1):
        nokd, kd = summaries[f"nokd2-seed{seed}"], summaries[f"minilm2-seed{seed}"]
        assert kd["budget"]["reference"] == f"nokd2-seed{seed}"
        assert abs(kd["flops"] - nokd["flops"]) / nokd["flops"] < 0.05  # its own reference's FLOPs
        for summary, base in ((nokd, "nokd2"), (kd, "minilm2")):
            assert (summary["base"], summary["seed"], summary["budget_scale"], summary["group"]) == \
                (base, seed, 1.0, "small")
        # The pipeline pretrained the teacher: its cost is measured from its summary, the same for every seed.
        teacher = json.loads((work / "results/teachers/t4/summary.json").read_text())
        assert kd["teacher_cost"]["source"] == "measured"
        assert kd["teacher_cost"]["flops"] == teacher["spent"]["flops"] and kd["teacher_cost"]["gpu_hours"] is None
        assert kd["teacher_forward"] == "partial"  # MiniLM stops at the teacher's last attention
        assert 0 < kd["teacher_flops"] < kd["flops"]
        assert "teacher_cost" not in nokd
    # The seeds trained differently (initialisation and data order), not one run twice.
    assert summaries["nokd2-seed0"]["validation"] != summaries["nokd2-seed1"]["validation"]
