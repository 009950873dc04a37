"""Table 2 over several runs: mean ± std, Delta's 95% interval, degenerate fine-tuning, the budget ledger.

Fixture summaries follow the pipeline's contract (results/pretrain/{model}/summary.json with base, seed,
budget_scale; results/glue/{model}/summary.json with per-task score, seeds, degenerate); every expected number
is computed by hand in the comments."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from kdbudget.report.formats import render_csv, render_html, render_markdown
from kdbudget.report.layout import GroupLayout, ModelLayout, parse_model_name
from kdbudget.report.ledger import gpu_hours, ledger_of
from kdbudget.report.results import load_results
from kdbudget.report.stats import paired_t_interval, std, welch_t_interval
from kdbudget.report.table import TASKS, build_table

T_975_2 = 4.303  # t_{0.975, 2}, from a printed table


def write_run(results: Path, name: str, strategy: str, score: float | list[float], *, seed: int | None = None,
              glue_seeds: list[float] | None = None, cola: dict | None = None, **summary) -> None:
    """A model whose seven Table 2 tasks all score ``score`` (a fraction), so its Avg is ``100 * score``."""
    pretrain = results / "pretrain" / name
    pretrain.mkdir(parents=True, exist_ok=True)
    base = {"name": name, "strategy": strategy, "tokens": 1000, "flops": 4.0e12, "seconds": 10.0, "epochs": 1.5,
            "budget": {"unit": "flops", "limit": 4.0e12, "measure": "flops"},
            "spent": {"flops": 4.0e12, "tokens": 1000, "seconds": 10.0}, "device": "cpu", "seed": seed,
            **summary}
    (pretrain / "summary.json").write_text(json.dumps(base))
    tasks = {}
    for task in TASKS:
        entry = {"task": task, "main": score, "score": score}
        if glue_seeds is not None:
            entry["seeds"] = glue_seeds
        tasks[task] = entry
    tasks["cola"].update(cola or {})
    glue = results / "glue" / name
    glue.mkdir(parents=True, exist_ok=True)
    (glue / "summary.json").write_text(json.dumps({"model": name, "tasks": tasks}))


def layout_of(names: dict[str, str]) -> list[GroupLayout]:
    return [GroupLayout("g6", "6-Layer", tuple(ModelLayout(n, s, 6) for n, s in names.items()))]


# --- statistics ----------------------------------------------------------------------


def test_mean_and_sample_std_of_a_made_up_set():
    # 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squared deviations sum to 32, sample variance 32/7.
    assert std([2, 4, 4, 4, 5, 5, 7, 9]) == pytest.approx(math.sqrt(32 / 7))
    assert std([3.0]) is None


def test_paired_t_interval_of_three_seeds_by_hand():
    # differences 3, 4, 5: mean 4, sd 1, half-width 4.303 / sqrt(3) = 2.4843
    ci = paired_t_interval([53, 56, 59], [50, 52, 54])
    assert (ci.low, ci.high) == pytest.approx((4 - T_975_2 / math.sqrt(3), 4 + T_975_2 / math.sqrt(3)), abs=1e-3)
    assert ci.excludes_zero and ci.n == 3
    # differences 2, 3, 1: 2 +- 2.4843 straddles 0
    assert not paired_t_interval([52, 55, 55], [50, 52, 54]).excludes_zero
    assert paired_t_interval([1.0], [0.0]) is None


def test_welch_interval_by_hand():
    # variances 8 and 8 over 2 values each: se = sqrt(4 + 4); df = 8^2 / (4^2 + 4^2) = 2
    ci = welch_t_interval([56, 60], [50, 54])
    half = T_975_2 * math.sqrt(8)
    assert (ci.low, ci.high) == pytest.approx((6 - half, 6 + half), abs=1e-3)


# --- Table 2 over pretraining seeds -----------------------------------------------------


def test_pretraining_seeds_give_mean_std_and_a_paired_interval_with_its_marker(tmp_path):
    avgs = {"nokd": [0.50, 0.52, 0.54], "minilm": [0.52, 0.55, 0.55], "vanillakd": [0.53, 0.56, 0.59]}
    names = {}
    for strategy, scores in avgs.items():
        for seed, score in enumerate(scores, start=1):
            name = f"{strategy}6-seed{seed}"
            names[name] = strategy
            # minilm's summaries predate the new fields: base and seed come from the name
            extra = {} if strategy == "minilm" else {"base": f"{strategy}6", "budget_scale": 1}
            write_run(tmp_path, name, strategy, score, seed=seed if strategy != "minilm" else None, **extra)
    layout = layout_of(names)
    (block,) = build_table(layout, load_results(layout, tmp_path))
    rows = {r.model: r for r in block.rows}
    assert list(rows) == ["nokd6", "minilm6", "vanillakd6"]
    # nokd: 50, 52, 54 -> 52 +- 2; minilm: 52, 55, 55 -> 54 +- sqrt(3); vanillakd: 53, 56, 59 -> 56 +- 3
    assert rows["nokd6"].avg == pytest.approx(52) and rows["nokd6"].avg_std == pytest.approx(2)
    assert rows["minilm6"].std["qnli"] == pytest.approx(math.sqrt(3))
    assert rows["vanillakd6"].delta == pytest.approx(4)
    md = render_markdown([block])
    assert "| No-KD₆ | 1.0K |" + " 52.0 ± 2.0 |" * 8 + " – |" in md  # seven tasks and Avg alike
    assert "| 54.0 ± 1.7 | +2.0 [-0.5, +4.5] |" in md  # 2 +- 2.48: no marker
    assert "| 56.0 ± 3.0 | +4.0 [+1.5, +6.5]* |" in md  # 4 +- 2.48 excludes 0
    assert "paired t-interval over the pretraining seeds" in md and "*: the interval excludes 0." in md
    header, *lines = render_csv([block]).splitlines()
    vanilla = dict(zip(header.split(","), lines[2].split(","), strict=False))
    assert vanilla["runs"] == "3" and vanilla["seeds"] == "1 2 3" and vanilla["delta_ci_method"] == "paired-t"
    assert float(vanilla["delta_ci_low"]) == pytest.approx(4 - T_975_2 / math.sqrt(3), abs=1e-3)
    assert vanilla["delta_ci_excludes_zero"] == "true"


def test_glue_seeds_only_give_a_welch_interval(tmp_path):
    write_run(tmp_path, "nokd6", "nokd", 0.52, seed=42, glue_seeds=[0.50, 0.54])
    write_run(tmp_path, "minilm6", "minilm", 0.58, seed=42, glue_seeds=[0.56, 0.60])
    layout = layout_of({"nokd6": "nokd", "minilm6": "minilm"})
    (block,) = build_table(layout, load_results(layout, tmp_path))
    md = render_markdown([block])
    # per-GLUE-seed Avgs 50, 54 and 56, 60: sd sqrt(8) = 2.83; Delta 6 +- 4.303 * sqrt(8) = 12.17
    assert "| 52.0 ± 2.8 | – |" in md and "| 58.0 ± 2.8 | +6.0 [-6.2, +18.2] |" in md
    assert "Welch t-interval" in md


def test_degenerate_fine_tuning_is_flagged_not_hidden(tmp_path):
    write_run(tmp_path, "nokd6-seed1", "nokd", 0.5, seed=1)
    write_run(tmp_path, "nokd6-seed2", "nokd", 0.5, seed=2, cola={"main": 0.25, "score": 0.25, "seeds": [0.5, 0.0],
                                                                    "degenerate": True, "degenerate_seeds": [43]})
    layout = layout_of({"nokd6-seed1": "nokd", "nokd6-seed2": "nokd"})
    (block,) = build_table(layout, load_results(layout, tmp_path))
    row = block.rows[0]
    # CoLA: 50 and 25 -> 37.5, kept in the mean; the cell is marked and the note names the run and seed
    assert row.scores["cola"] == pytest.approx(37.5)
    assert row.degenerate == {"cola": ["nokd6-seed2 (GLUE seed 43)"]}
    md = render_markdown([block])
    assert "| 37.5 ± 17.7† |" in md
    assert ("†: degenerate fine-tuning (a constant prediction), kept in the mean: "
            "CoLA: nokd6-seed2 (GLUE seed 43).") in md


def test_single_runs_show_no_spread_interval_or_extra_note(tmp_path):
    write_run(tmp_path, "nokd6", "nokd", 0.5, seed=42)
    write_run(tmp_path, "minilm6", "minilm", 0.6, seed=42)
    layout = layout_of({"nokd6": "nokd", "minilm6": "minilm"})
    blocks = build_table(layout, load_results(layout, tmp_path))
    md = render_markdown(blocks)
    assert "| 60.0 | 60.0 | +10.0 |" in md and "±" not in md and "interval" not in md and "†" not in md
    # without the ledger column: the table as it was before seeds and ledgers, line for line
    assert render_markdown(blocks, ledger=False).splitlines()[:5] == [
        "| Model | Total Token Throughput | QNLI (Acc) | SST-2 (Acc) | MNLI (Acc) | MRPC (F1) | QQP (Acc) | RTE (Acc) "
        "| CoLA (MCC) | Avg | Δ |",
        "| :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        "| *6-Layer* |  |  |  |  |  |  |  |  |  |  |",
        "| No-KD₆ | 1.0K | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 | – |",
        "| MiniLM₆ | 1.0K | 60.0 | 60.0 | 60.0 | 60.0 | 60.0 | 60.0 | 60.0 | 60.0 | +10.0 |"]


# --- the budget ledger ----------------------------------------------------------------


def test_ledger_columns_from_the_summary(tmp_path):
    # the reference: budgeted in tokens (2 epochs), measured in FLOPs; its spend is the group's amount
    write_run(tmp_path, "nokd6", "nokd", 0.5, seed=42, epochs=2.0, teacher=None,
              budget={"unit": "tokens", "limit": 1000, "measure": "flops", "role": "reference"})
    # a follower: teacher forward 3e12 of 4e12 FLOPs = 75%; the teacher cost from config
    write_run(tmp_path, "minilm6", "minilm", 0.6, seed=42, teacher={"layers": 12}, teacher_flops=3.0e12,
              teacher_forward="partial", spent={"flops": 3.9e12, "tokens": 800, "seconds": 9.0},
              teacher_cost={"flops": 1.0e15, "gpu_hours": None, "source": "config", "reference": "x"})
    # an older follower: no teacher fields at all
    write_run(tmp_path, "tinybert6", "tinybert", 0.6, seed=42, teacher={"layers": 12})
    assert ledger_of(None).measure is None
    layout = layout_of({"nokd6": "nokd", "minilm6": "minilm", "tinybert6": "tinybert"})
    blocks = build_table(layout, load_results(layout, tmp_path))
    md = render_markdown(blocks)
    assert "| – | 4.0T FLOPs (100.0%), 2.00 ep |" in md  # No-KD: no teacher part
    assert "| 3.9T FLOPs (97.5%), 1.50 ep, teacher 75% partial |" in md  # 3.9 / 4.0
    assert "| 4.0T FLOPs (100.0%), 1.50 ep, teacher n/a |" in md
    header, *lines = render_csv(blocks).splitlines()
    minilm = dict(zip(header.split(","), lines[1].split(","), strict=False))
    assert minilm["budget_measure"] == "flops" and float(minilm["budget_amount"]) == 4.0e12
    assert float(minilm["budget_spent"]) == 3.9e12 and float(minilm["teacher_flops_share"]) == 0.75
    assert minilm["teacher_forward"] == "partial" and float(minilm["teacher_cost_flops"]) == 1.0e15
    assert minilm["teacher_cost_source"] == "config" and minilm["device"] == "cpu" and minilm["epochs"] == "1.5"
    html = render_html(blocks)
    assert "<th>Teacher share of FLOPs</th>" in html
    assert "<td>75%</td><td>partial</td><td>1000T FLOPs (config)</td><td>cpu</td>" in html


def test_gpu_hours_are_measured_seconds_times_gpus():
    assert gpu_hours("NVIDIA H100 80GB HBM3 x 4", 900.0) == pytest.approx(1.0)  # 900 s * 4 / 3600
    assert gpu_hours("NVIDIA A100-SXM4-40GB", 7200.0) == pytest.approx(2.0)
    assert gpu_hours("AMD EPYC (1 threads)", 7200.0) is None and gpu_hours(None, 1.0) is None
    # Two CPU processes (torchrun on a CPU) are no GPUs: a CPU run's table holds no wall-clock number.
    assert gpu_hours("AMD EPYC (1 threads) x 2", 7200.0) is None
    assert gpu_hours("AMD EPYC x 2", 7200.0, "cpu") is None
    assert gpu_hours("NVIDIA H100 80GB HBM3 x 2", 1800.0, "cuda") == pytest.approx(1.0)


def test_model_names_of_seeds_and_scales():
    assert parse_model_name("minilm6_limited-x0.25-seed2") == ("minilm6_limited", 2, 0.25)
    assert parse_model_name("nokd6-x2") == ("nokd6", None, 2.0)
    assert parse_model_name("tinybert12") == ("tinybert12", None, 1.0)
