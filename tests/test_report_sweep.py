"""Compute sweeps: the crossover interpolation, "not within the sweep", the teacher's amortised cost, the files.

Fixture summaries follow the pipeline's naming contract ({base}-x{scale}); every expected number is computed by
hand in the comments."""

from __future__ import annotations

import math

import pytest
from conftest import ROOT, base_config
from test_report_seeds import layout_of, write_run

from kdbudget.config import ConfigError, validate_config
from kdbudget.report.layout import GroupLayout, ModelLayout, layout_from_data, layout_to_data
from kdbudget.report.render import write_plots, write_sweeps
from kdbudget.report.results import load_results
from kdbudget.report.sweep import NOT_WITHIN, SweepPoint, crossover, crossovers, render_sweep_markdown, sweeps
from kdbudget.report.table import build_table

NOKD = [(1e12, 50.0), (2e12, 54.0), (4e12, 56.0)]


def test_crossover_interpolates_in_log_compute():
    # 52 is halfway from 50 to 54: halfway from log 1e12 to log 2e12, i.e. sqrt(2) * 1e12
    assert crossover(NOKD, 52.0) == pytest.approx(math.sqrt(2) * 1e12)
    # 55 is halfway from 54 to 56: 2 * sqrt(2) * 1e12; 55.5 three quarters: 2e12 * 2 ** 0.75
    assert crossover(NOKD, 55.0) == pytest.approx(2 * math.sqrt(2) * 1e12)
    assert crossover(list(reversed(NOKD)), 55.5) == pytest.approx(2e12 * 2**0.75)
    assert crossover(NOKD, 54.0) == 2e12 and crossover(NOKD, 56.0) == 4e12


def test_an_avg_outside_the_no_kd_curve_is_not_within_the_sweep():
    assert crossover(NOKD, 57.0) is None and crossover(NOKD, 49.9) is None
    # not monotone: the first crossing from the smallest budget up
    assert crossover([(1e12, 50.0), (2e12, 60.0), (4e12, 55.0)], 55.0) == pytest.approx(math.sqrt(2) * 1e12)


def test_amortised_teacher_cost_arithmetic():
    point = SweepPoint("minilm", "MiniLM₆", 1.0, flops=2e12, avg=55.0, avg_std=None, teacher_flops=8e12)
    assert point.charged(1) == 10e12 and point.charged(4) == 4e12  # 2e12 + 8e12 / 4
    assert SweepPoint("nokd", "No-KD₆", 1.0, 2e12, 54.0, None, 8e12).charged(4) == 2e12  # no teacher to pay for
    assert SweepPoint("minilm", "MiniLM₆", 1.0, 2e12, 55.0, None, None).charged(4) is None  # unknown teacher cost


def write_sweep(results):
    flops = {"0.5": 1e12, "1": 2e12, "2": 4e12}
    avgs = {"nokd": {"0.5": 0.50, "1": 0.54, "2": 0.56}, "minilm": {"0.5": 0.52, "1": 0.55, "2": 0.57}}
    names = {}
    for strategy, by_scale in avgs.items():
        for scale, score in by_scale.items():
            name = f"{strategy}6" + ("" if scale == "1" else f"-x{scale}")
            names[name] = strategy
            cost = {} if strategy == "nokd" else {"teacher": {"layers": 12}, "teacher_cost": {
                "flops": 8e12, "gpu_hours": None, "source": "measured", "reference": "results/teachers/t12"}}
            write_run(results, name, strategy, score, seed=42, flops=flops[scale], budget_scale=float(scale), **cost)
    return layout_of(names)


def test_sweep_table_and_plot_from_a_group_at_three_scales(tmp_path):
    layout = write_sweep(tmp_path / "results")
    blocks = build_table(layout, load_results(layout, tmp_path / "results"))
    assert [b.scale for b in blocks] == [0.5, 1.0, 2.0]
    assert [b.title for b in blocks] == ["6-Layer (budget x0.5)", "6-Layer (budget x1)", "6-Layer (budget x2)"]
    assert blocks[0].rows[1].delta == pytest.approx(2.0)  # against No-KD at the same scale: 52 - 50
    (sweep,) = sweeps(blocks)
    found = {c.scale: c for c in crossovers(sweep, amortise_over=4)}
    # x0.5: Avg 52 -> No-KD needs sqrt(2)e12 FLOPs, 1.41x MiniLM's 1e12; charged 1e12 + 8e12/4 = 3e12 -> 0.47x
    assert found[0.5].no_kd_flops == pytest.approx(math.sqrt(2) * 1e12)
    assert found[0.5].ratio == pytest.approx(math.sqrt(2)) and found[0.5].charged == pytest.approx(3e12)
    assert found[0.5].charged_ratio == pytest.approx(math.sqrt(2) / 3)
    # x1: Avg 55 -> 2 sqrt(2)e12, 1.41x of 2e12; charged 4e12 -> 0.71x; x2: Avg 57 beyond No-KD's 56
    assert found[1.0].charged_ratio == pytest.approx(2 * math.sqrt(2) / 4)
    assert found[2.0].no_kd_flops is None
    md = render_sweep_markdown([sweep], amortise_over=4)
    assert "| MiniLM₆ | x0.5 | 1.00e+12 | 52.0 | 1.41e+12 | 1.41x | 3.00e+12 | 0.47x |" in md
    assert f"| MiniLM₆ | x2 | 4.00e+12 | 57.0 | {NOT_WITHIN} | {NOT_WITHIN} | 6.00e+12 | {NOT_WITHIN} |" in md
    written = write_sweeps(blocks, tmp_path / "tables", tmp_path / "plots", amortise_over=4)
    assert {p.name for p in written} == {"sweep.md", "sweep.csv", "compute_quality.png", "compute_quality.pdf"}
    assert all(p.stat().st_size > 0 for p in written)


def test_no_sweep_files_without_several_scales(tmp_path):
    write_run(tmp_path, "nokd6", "nokd", 0.5, seed=42)
    layout = layout_of({"nokd6": "nokd"})
    blocks = build_table(layout, load_results(layout, tmp_path))
    assert sweeps(blocks) == [] and write_sweeps(blocks, tmp_path / "tables", tmp_path / "plots") == []


def test_plots_of_seeded_rows_at_several_scales(tmp_path):
    layout = write_sweep(tmp_path / "results")
    for seed in (1, 2):  # a second scale-1 group of seeded runs: each row's runs are plotted
        write_run(tmp_path / "results", f"nokd6-seed{seed}", "nokd", 0.5, seed=seed, base="nokd6", budget_scale=1)
    seeded = GroupLayout("seeded", "Seeded", tuple(ModelLayout(f"nokd6-seed{k}", "nokd", 6) for k in (1, 2)))
    layout = layout_from_data(layout_to_data(layout)) + [seeded]  # the layout survives Snakemake's params
    results = load_results(layout, tmp_path / "results")
    blocks = build_table(layout, results)
    assert [len(b.rows[0].runs) for b in blocks] == [1, 1, 1, 2]
    written = write_plots(blocks, results, tmp_path / "plots")
    assert len(written) == 8 and all(p.stat().st_size > 0 for p in written)


def test_amortise_over_is_validated_with_its_key():
    schema = ROOT / "workflow" / "schemas" / "config.schema.yaml"
    assert validate_config(base_config(), schema)["report"] == {"amortise_over": 1}
    assert validate_config(base_config(report={"amortise_over": 5}), schema)["report"]["amortise_over"] == 5
    with pytest.raises(ConfigError, match="'report.amortise_over'"):
        validate_config(base_config(report={"amortise_over": 0}), schema)
