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


@pytest.mark.slow
def test_seeds_scales_and_glue_seeds_reach_table2_and_the_sweep(tmp_path):
    """The whole DAG with pretraining seeds, two budget scales and two GLUE seeds, on one GLUE task: Table 2's
    rows are the mean and sample std over the pretraining seeds of what each model's GLUE summary says, Δ has an
    interval, and the sweep's table and plot are written."""
    import csv
    import statistics

    from test_glue_pipeline import write_sst2

    config = seeded_config(budget_scales=[0.5, 1], **SEEDED)
    config["glue"] = {"source": "dir", "path": str(write_sst2(tmp_path / "glue")), "tasks": ["sst2"],
                      "grid": {"batch_size": [8], "lr": [1.0e-3]}, "epochs": 1, "seeds": [1, 2]}
    config["resources"]["glue"] = {"threads": 1, "gpu": 0, "runtime": 5, "mem_mb": 1000}
    work = tmp_path / "work"
    run_snakemake(work, config, "table", timeout=1200)

    def glue_score(model: str) -> float:
        entry = json.loads((work / "results/glue" / model / "summary.json").read_text())["tasks"]["sst2"]
        per_seed = [json.loads((work / "results/finetune" / model / "sst2" / f"bs8_lr0.001_seed{s}.json")
                               .read_text())["dev"]["main"] for s in (1, 2)]
        assert entry["main"] == pytest.approx(statistics.mean(per_seed))  # GLUE seeds averaged, not maximised
        return 100 * entry["main"]

    rows = {(r["strategy"], float(r["budget_scale"])): r
            for r in csv.DictReader((work / "results/tables/table2.csv").open(encoding="utf-8"))}
    assert set(rows) == {(s, scale) for s in ("nokd", "minilm") for scale in (0.5, 1.0)}
    for (strategy, scale), row in rows.items():
        suffix = "" if scale == 1 else "-x0.5"
        scores = [glue_score(f"{strategy}2{suffix}-seed{seed}") for seed in (0, 1)]
        assert float(row["sst2"]) == pytest.approx(statistics.mean(scores), abs=1e-6)
        assert float(row["sst2_std"]) == pytest.approx(statistics.stdev(scores), abs=1e-6)
        assert row["runs"] == "2"
    assert "±" in (work / "results/tables/table2.md").read_text(encoding="utf-8")
    sweep = (work / "results/tables/sweep.md").read_text(encoding="utf-8")
    assert "MiniLM" in sweep
    assert (work / "results/plots/compute_quality.png").stat().st_size > 0
