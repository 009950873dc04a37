"""The report over fewer GLUE tasks than Table 2's seven (a laptop study's ``glue.tasks``): the columns, Avg and its
label, the CSV, the sweep's crossover, the skipped paper comparison, the plots, the entry point and the workflow.

Config: glue.tasks [sst2, qnli, rte] (listed out of Table 2's order). Hand-computed 3-task Avgs (x100) from
test_report's SCORES (qnli, sst2, rte): nokd6 80 + 90 + 60 = 230 -> 76.67; vanillakd6 79 + 88 + 58 = 225 -> 75.00,
Delta -5/3 = -1.67; minilm6 82 + 91 + 65 = 238 -> 79.33, Delta +8/3 = +2.67; tinybert6 81 + 90.5 + 62.5 = 234 ->
78.00, Delta +4/3 = +1.33; nokd6_limited 85 + 90 + 70 = 245 -> 81.67; minilm6_limited 86 + 92 + 72 = 250 -> 83.33,
Delta +5/3 = +1.67. (Over all seven, nokd6's Avg would be 71.43: test_report.)
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
from test_report import REBUILD, SCHEMA, SCORES, report_config, write_fixture_results
from test_report_sweep import write_sweep

from kdbudget.config import validate_config
from kdbudget.report.__main__ import main as report_main
from kdbudget.report.formats import render_csv, render_html, render_latex, render_markdown
from kdbudget.report.layout import layout_from_config
from kdbudget.report.paper import render_comparison
from kdbudget.report.plots import plot_compute_quality, plot_glue_delta
from kdbudget.report.results import load_results
from kdbudget.report.sweep import NOT_WITHIN, crossovers, render_sweep_csv, render_sweep_markdown, sweeps
from kdbudget.report.table import TASKS, avg_label, build_table, report_tasks

THREE = ["sst2", "qnli", "rte"]  # as a config lists them; the table orders them as Table 2 does
COLUMNS = ("qnli", "sst2", "rte")


def three_task_config() -> dict:
    config = report_config()
    config["glue"]["tasks"] = THREE
    return config


def keep_only(results: Path, tasks: list[str]) -> None:
    """Rewrite every GLUE summary as a run over ``tasks`` writes it: no entry for the other tasks."""
    for path in (results / "glue").glob("*/summary.json"):
        summary = json.loads(path.read_text())
        summary["tasks"] = {t: e for t, e in summary["tasks"].items() if t in tasks}
        path.write_text(json.dumps(summary))


@pytest.fixture
def three_task_blocks(tmp_path):
    write_fixture_results(tmp_path)
    keep_only(tmp_path, THREE)
    layout = layout_from_config(validate_config(three_task_config(), SCHEMA))
    return build_table(layout, load_results(layout, tmp_path), tasks=THREE)


def test_report_tasks_keeps_table2_tasks_in_table2_order():
    assert report_tasks(["stsb", "rte", "cola", "sst2"]) == ("sst2", "rte", "cola")
    assert report_tasks(["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte"]) == TASKS
    with pytest.raises(ValueError, match="glue.tasks"):
        report_tasks(["stsb"])
    assert avg_label(TASKS) == "Avg" and avg_label(COLUMNS) == "Avg (3 tasks)" and avg_label(("rte",)) == "Avg (1 task)"


def test_three_task_rows_average_exactly_those_tasks(three_task_blocks):
    unlimited, limited = three_task_blocks
    assert all(b.tasks == COLUMNS for b in three_task_blocks)
    rows = {r.model: r for r in unlimited.rows + limited.rows}
    assert set(rows["nokd6"].scores) == set(COLUMNS) and not rows["nokd6"].missing
    expected = {"nokd6": 230 / 3, "vanillakd6": 75.0, "minilm6": 238 / 3, "tinybert6": 78.0,
                "nokd6_limited": 245 / 3, "minilm6_limited": 250 / 3}
    for model, avg in expected.items():
        assert rows[model].avg == pytest.approx(avg), model
    assert rows["vanillakd6"].delta == pytest.approx(-5 / 3)
    assert rows["minilm6"].delta == pytest.approx(8 / 3)
    assert rows["tinybert6"].delta == pytest.approx(4 / 3)
    assert rows["minilm6_limited"].delta == pytest.approx(5 / 3)


def test_markdown_html_and_latex_label_the_three_task_avg(three_task_blocks):
    md = render_markdown(three_task_blocks)
    assert md.startswith("| Model | Total Token Throughput | QNLI (Acc) | SST-2 (Acc) | RTE (Acc) | Avg (3 tasks) "
                         "| Δ | Budget |")
    assert "| No-KD₆ | 4.6B | 80.0 | 90.0 | 60.0 | 76.7 | – |" in md
    assert "| Vanilla-KD₆ | 2.6B | 79.0 | 88.0 | 58.0 | 75.0 | -1.7 |" in md
    assert "| MiniLM₆ | 2.5B | 82.0 | 91.0 | 65.0 | 79.3 | +2.7 |" in md
    header = md.splitlines()[0]
    assert not any(name in header for name in ("MNLI", "MRPC", "QQP", "CoLA", "STS-B"))
    assert "mean of the seven task columns" not in md
    assert "Avg (3 tasks): mean of the 3 task columns shown (QNLI, SST-2, RTE)" in md
    html = render_html(three_task_blocks)
    assert "<th>Avg (3 tasks)</th>" in html and "<th>MNLI (Acc)</th>" not in html
    tabular = render_latex(three_task_blocks).split(r"\caption")[0]
    assert " & Total Token & QNLI & SST-2 & RTE & Avg & $\\Delta$" in tabular
    assert " & Throughput & (Acc) & (Acc) & (Acc) & (3 tasks) & " in tabular and "MNLI" not in tabular


def test_csv_holds_only_the_three_task_columns(three_task_blocks):
    rows = list(csv.DictReader(io.StringIO(render_csv(three_task_blocks))))
    fields = list(rows[0])
    assert fields[7:11] == ["qnli", "sst2", "rte", "avg"]
    assert not {"mnli", "mrpc", "qqp", "cola", "stsb", "mnli_std", "cola_std"} & set(fields)
    assert {"qnli_std", "sst2_std", "rte_std"} <= set(fields) and fields[-1] == "avg_tasks"
    by_model = {r["model"]: r for r in rows}
    assert by_model["minilm6"]["avg"] == "79.3333" and by_model["minilm6"]["delta"] == "2.6667"
    assert by_model["nokd6"]["rte"] == "60.0000" and {r["avg_tasks"] for r in rows} == {"qnli sst2 rte"}


def test_paper_comparison_is_skipped_with_its_note(three_task_blocks):
    doc = render_comparison(three_task_blocks)
    md = doc["md"]
    assert "Comparison skipped: this run's Table 2 has 3 of the paper's 7 task columns (QNLI, SST-2, RTE" in md
    assert "Add MNLI, MRPC, QQP, CoLA to glue.tasks" in md
    assert "| reproduced |" not in md and "reported" not in md.split("## ")[0].split("Comparison skipped")[1]
    assert "## Discrepancies in the paper's Table 2" in md  # the paper's own arithmetic does not need the run
    assert "Comparison skipped" in doc["html"]


def test_glue_delta_plot_shows_only_the_configured_tasks(three_task_blocks):
    fig = plot_glue_delta(three_task_blocks)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["QNLI", "SST-2", "RTE", "Avg (3 tasks)"]


def test_sweep_crossover_uses_the_three_task_avg(tmp_path):
    """Three scales (FLOPs 1e12, 2e12, 4e12). No-KD's 3-task Avgs: (40 + 50 + 60) / 3 = 50, (50 + 54 + 58) / 3 = 54,
    56; MiniLM's: (42 + 52 + 62) / 3 = 52, 55, 57. The tasks outside glue.tasks score 0 (No-KD) and 90 (MiniLM) in
    the summaries: an Avg over them would cross nowhere near. 52 is halfway from 50 to 54, so No-KD needs
    10 ** 12.15 = sqrt(2) * 1e12 FLOPs (1.41x MiniLM's); 55 -> 2 sqrt(2) * 1e12; 57 is beyond No-KD's 56."""
    results = tmp_path / "results"
    layout = write_sweep(results)
    three = {"nokd": {"0.5": (40, 50, 60), "1": (50, 54, 58), "2": (56, 56, 56)},
             "minilm": {"0.5": (42, 52, 62), "1": (55, 55, 55), "2": (57, 57, 57)}}
    for strategy, by_scale in three.items():
        for scale, scores in by_scale.items():
            path = results / "glue" / (f"{strategy}6" + ("" if scale == "1" else f"-x{scale}")) / "summary.json"
            summary = json.loads(path.read_text())
            for task in summary["tasks"]:
                score = dict(zip(COLUMNS, scores, strict=True)).get(task, 0 if strategy == "nokd" else 90) / 100
                summary["tasks"][task].update(main=score, score=score)
            path.write_text(json.dumps(summary))
    blocks = build_table(layout, load_results(layout, results), tasks=THREE)
    (sweep,) = sweeps(blocks)
    assert sweep.tasks == COLUMNS
    found = {c.scale: c for c in crossovers(sweep)}
    assert found[0.5].avg == pytest.approx(52.0) and found[0.5].no_kd_flops == pytest.approx(math.sqrt(2) * 1e12)
    assert found[1.0].no_kd_flops == pytest.approx(2 * math.sqrt(2) * 1e12) and found[2.0].no_kd_flops is None
    md = render_sweep_markdown([sweep])
    assert "| Strategy | Budget scale | FLOPs spent | Avg (3 tasks) |" in md
    assert "| MiniLM₆ | x0.5 | 1.00e+12 | 52.0 | 1.41e+12 | 1.41x |" in md
    assert f"| MiniLM₆ | x2 | 4.00e+12 | 57.0 | {NOT_WITHIN} |" in md
    rows = list(csv.DictReader(io.StringIO(render_sweep_csv([sweep]))))
    assert {r["avg_tasks"] for r in rows} == {"qnli sst2 rte"} and float(rows[0]["avg"]) == pytest.approx(52.0)
    fig = plot_compute_quality([sweep])
    assert fig.axes[0].get_ylabel() == "GLUE Avg (3 tasks) (x100)"


def test_entry_point_renders_a_three_task_config(tmp_path, capsys):
    import yaml

    results = tmp_path / "results"
    write_fixture_results(results)
    keep_only(results, THREE)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(three_task_config()))
    assert report_main(["--results", str(results), "--config", str(config), "--schema", str(SCHEMA),
                        "--no-plots"]) == 0
    tables = results / "tables"
    assert "| Avg (3 tasks) | Δ |" in (tables / "table2.md").read_text()
    assert "Comparison skipped" in (tables / "table2_vs_paper.md").read_text()
    assert "| MiniLM₆ | 2.5B | 82.0 | 91.0 | 65.0 | 79.3 | +2.7 |" in capsys.readouterr().out


@pytest.mark.slow
def test_workflow_report_rules_on_a_three_task_config(tmp_path):
    """The report rules (table2, plots) of a 3-task config, from cached summaries: no training job runs."""
    from conftest import run_snakemake

    work = tmp_path / "work"
    write_fixture_results(work / "results", weights=True)
    keep_only(work / "results", THREE)
    for name in SCORES:  # GLUE summaries are directory outputs, each with its table
        (work / "results" / "glue" / name / "table.md").write_text("fixture\n")
    for weights in (work / "results" / "pretrain").glob("*/model.safetensors"):
        weights.unlink()
    built = run_snakemake(work, three_task_config(), *REBUILD)
    assert "finetune_cell" not in built.stdout + built.stderr and "pretrain_model" not in built.stdout + built.stderr
    tables = work / "results" / "tables"
    md = (tables / "table2.md").read_text()
    assert "| RTE (Acc) | Avg (3 tasks) | Δ |" in md
    assert "| Vanilla-KD₆ | 2.6B | 79.0 | 88.0 | 58.0 | 75.0 | -1.7 |" in md
    assert next(csv.reader(io.StringIO((tables / "table2.csv").read_text())))[7:10] == list(COLUMNS)
    assert "Comparison skipped" in (tables / "table2_vs_paper.md").read_text()
    assert (work / "results" / "plots" / "glue_delta.png").stat().st_size > 10_000
