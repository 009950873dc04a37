"""Table 2, the paper's table, the plots and the report, from fixture summaries (no training)."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import ROOT, base_config, run_snakemake

from kdbudget.config import validate_config
from kdbudget.report.formats import format_tokens, render_csv, render_latex, render_markdown
from kdbudget.report.layout import layout_from_config
from kdbudget.report.paper import check_paper_table, exact_avg, load_paper_table, round1
from kdbudget.report.results import load_model_dirs, load_results
from kdbudget.report.table import TASKS, MissingResultsError, build_table

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SHAPE = {"layers": 6, "hidden": 32, "heads": 4, "intermediate": 64}

# GLUE main scores (fractions) per model, in TASKS order: qnli, sst2, mnli, mrpc, qqp, rte, cola.
# Hand-computed (x100): nokd6 sums to 500 -> Avg 500/7 = 71.43; vanillakd6 495 -> 70.71, Delta -5/7 = -0.71;
# minilm6 505 -> 72.14, Delta +5/7 = +0.71; tinybert6 503.5 -> 71.93, Delta +3.5/7 = +0.50;
# nokd6_limited 560 -> 80.00; minilm6_limited 574 -> 82.00, Delta +2.00.
SCORES = {
    "nokd6": [0.80, 0.90, 0.70, 0.85, 0.75, 0.60, 0.40],
    "vanillakd6": [0.79, 0.88, 0.69, 0.85, 0.74, 0.58, 0.42],
    "minilm6": [0.82, 0.91, 0.72, 0.86, 0.76, 0.65, 0.33],
    "tinybert6": [0.81, 0.905, 0.71, 0.86, 0.75, 0.625, 0.375],
    "nokd6_limited": [0.85, 0.90, 0.80, 0.90, 0.85, 0.70, 0.60],
    "minilm6_limited": [0.86, 0.92, 0.82, 0.91, 0.86, 0.72, 0.65],
}
TOKENS = {"nokd6": 4_600_000_000, "vanillakd6": 2_600_000_000, "minilm6": 2_550_000_000, "tinybert6": 2_640_000_000,
          "nokd6_limited": 893_000, "minilm6_limited": 512_345}
LIMITED_FLOPS = 2.5e9


def report_config() -> dict:
    return base_config(
        teachers={"t12": {"source": "pretrain", "shape": {**SHAPE, "layers": 12},
                          "budget": {"mode": "tokens", "limit": 10000}}},
        groups={
            "unlimited6": {"title": "6-Layer: Unlimited Pretraining Tokens within Fixed Compute Budget",
                           "student": SHAPE, "teacher": "t12",
                           "strategies": ["nokd", "vanillakd", "minilm", "tinybert"],
                           "budget": {"mode": "reference", "measure": "flops", "epochs": 1}},
            "limited6": {"title": "6-Layer: Limited Pretraining Tokens within Fixed (Increased) Compute Budget",
                         "suffix": "_limited", "student": SHAPE, "teacher": "t12", "strategies": ["nokd", "minilm"],
                         "budget": {"mode": "flops", "limit": LIMITED_FLOPS}},
        },
        glue={"tasks": ["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte"]},
    )


def write_model(results: Path, name: str, strategy: str, *, scores=None, tokens: int, flops: float,
                budget: dict, weights: bool = False) -> None:
    """A model's summaries as the pipeline writes them (the fields the report reads, and a few more)."""
    pretrain = results / "pretrain" / name
    pretrain.mkdir(parents=True, exist_ok=True)
    seconds = tokens / (2000.0 if strategy == "nokd" else 1100.0)
    summary = {"name": name, "strategy": strategy, "tokens": tokens, "flops": flops, "seconds": seconds,
               "tokens_per_second": tokens / seconds, "epochs": 1.0, "steps": 10, "budget": budget,
               "spent": {"seconds": seconds, "flops": flops, "tokens": tokens, "steps": 10},
               "device": "test", "validation": {"mlm_loss": 5.0}}
    (pretrain / "summary.json").write_text(json.dumps(summary))
    rows = [{"step": s, "seconds": seconds * s / 10, "tokens": tokens * s / 10, "flops": flops * s / 10,
             "loss": (8.0 if strategy == "nokd" else 0.01) / s, "tokens_per_second": tokens / seconds}
            for s in range(1, 11)]
    (pretrain / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if weights:
        for file in ("model.safetensors", "config.json"):
            (pretrain / file).write_text("{}")
    if scores is not None:
        glue = results / "glue" / name
        glue.mkdir(parents=True, exist_ok=True)
        tasks = {t: {"task": t, "main_metric": "accuracy", "main": s, "metrics": {"main": s}}
                 for t, s in zip(TASKS, scores, strict=True)}
        tasks["stsb"] = {"task": "stsb", "main_metric": "pearson", "main": 0.5, "metrics": {"main": 0.5}}
        (glue / "summary.json").write_text(json.dumps({"model": name, "tasks": tasks}))


def write_fixture_results(results: Path, *, skip: tuple[str, ...] = (), weights: bool = False) -> None:
    """Consistent budgets: KD runs of unlimited6 get the FLOPs nokd6 spent; limited6 shares LIMITED_FLOPS."""
    reference_flops = TOKENS["nokd6"] * 3.0e3
    for i, (name, scores) in enumerate(SCORES.items()):
        if name in skip:
            continue
        strategy = name.split("6")[0]
        if name.endswith("_limited"):
            flops = LIMITED_FLOPS * (1 + 1e-4 * i)
            budget = {"unit": "flops", "limit": LIMITED_FLOPS, "mode": "flops", "spent": flops}
        elif strategy == "nokd":
            flops = reference_flops
            budget = {"unit": "tokens", "limit": TOKENS[name], "mode": "reference", "role": "reference",
                      "measure": "flops", "spent": TOKENS[name]}
        else:
            flops = reference_flops * (1 + 1e-4 * i)
            budget = {"unit": "flops", "limit": reference_flops, "mode": "reference", "role": "follower",
                      "measure": "flops", "reference": "nokd6", "spent": flops}
        write_model(results, name, strategy, scores=scores, tokens=TOKENS[name], flops=flops, budget=budget,
                    weights=weights)


@pytest.fixture
def layout():
    return layout_from_config(validate_config(report_config(), SCHEMA))


# --- Avg, Delta and the renderings ---------------------------------------------


def test_avg_and_delta_match_hand_computed_values(tmp_path, layout):
    write_fixture_results(tmp_path)
    blocks = build_table(layout, load_results(layout, tmp_path))
    assert [b.group for b in blocks] == ["unlimited6", "limited6"]
    assert [r.model for r in blocks[0].rows] == ["nokd6", "vanillakd6", "minilm6", "tinybert6"]
    rows = {r.model: r for b in blocks for r in b.rows}
    expected = {"nokd6": (500 / 7, None), "vanillakd6": (495 / 7, -5 / 7), "minilm6": (505 / 7, 5 / 7),
                "tinybert6": (503.5 / 7, 0.5), "nokd6_limited": (80.0, None), "minilm6_limited": (82.0, 2.0)}
    for name, (avg, delta) in expected.items():
        assert rows[name].avg == pytest.approx(avg, abs=1e-9)
        assert (rows[name].delta is None) == (delta is None)
        if delta is not None:
            assert rows[name].delta == pytest.approx(delta, abs=1e-9)
    assert rows["minilm6"].scores["cola"] == pytest.approx(33.0)

    md = render_markdown(blocks)
    assert "| No-KD₆ | 4.6B | 80.0 | 90.0 | 70.0 | 85.0 | 75.0 | 60.0 | 40.0 | 71.4 | – |" in md
    assert "| Vanilla-KD₆ | 2.6B | 79.0 | 88.0 | 69.0 | 85.0 | 74.0 | 58.0 | 42.0 | 70.7 | -0.7 |" in md
    assert "| TinyBERT₆ | 2.6B | 81.0 | 90.5 | 71.0 | 86.0 | 75.0 | 62.5 | 37.5 | 71.9 | +0.5 |" in md
    assert "| MiniLM₆ | 512K | 86.0 | 92.0 | 82.0 | 91.0 | 86.0 | 72.0 | 65.0 | 82.0 | +2.0 |" in md
    assert md.index("*6-Layer: Unlimited") < md.index("*6-Layer: Limited")
    assert "STS-B" not in md and "MRPC (F1)" in md and "CoLA (MCC)" in md

    tex = render_latex(blocks)
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\multicolumn{11}{l}" in tex
    assert r"Vanilla-KD$_{6}$ & 2.6B & 79.0 & 88.0 & 69.0 & 85.0 & 74.0 & 58.0 & 42.0 & 70.7 & $-$0.7 \\" in tex
    lines = render_csv(blocks).splitlines()
    assert lines[0].startswith("group,group_title,model,strategy,layers,tokens,throughput,qnli,")
    minilm = dict(zip(lines[0].split(","), lines[3].split(","), strict=False))  # later cells may hold commas
    assert minilm["model"] == "minilm6" and minilm["avg"] == "72.1429" and minilm["delta"] == "0.7143"
    assert minilm["label"] == "MiniLM"


@pytest.mark.parametrize("n, text", [(4.6e9, "4.6B"), (27.9e9, "27.9B"), (892_928, "893K"), (630_784, "631K"),
                                     (999_960, "1.0M"), (1_234_567, "1.2M"), (512, "512")])
def test_token_counts_print_as_the_paper(n, text):
    assert format_tokens(n) == text


# --- missing results --------------------------------------------------------------


def test_missing_model_is_an_error_naming_it(tmp_path, layout):
    write_fixture_results(tmp_path, skip=("tinybert6",))
    (tmp_path / "glue" / "minilm6_limited" / "summary.json").unlink()
    with pytest.raises(MissingResultsError) as err:
        build_table(layout, load_results(layout, tmp_path))
    message = str(err.value)
    assert "tinybert6: pretraining summary" in message and "minilm6_limited: GLUE summary" in message
    assert "nokd6:" not in message and "--allow-missing" in message


def test_missing_model_with_the_flag_is_a_marked_gap(tmp_path, layout):
    write_fixture_results(tmp_path, skip=("nokd6_limited",))
    summary = tmp_path / "glue" / "tinybert6" / "summary.json"
    data = json.loads(summary.read_text())
    data["tasks"]["cola"]["main"] = None  # an undefined score: no Avg over six tasks
    summary.write_text(json.dumps(data))
    blocks = build_table(layout, load_results(layout, tmp_path), allow_missing=True)
    rows = {r.model: r for b in blocks for r in b.rows}
    assert rows["tinybert6"].avg is None and rows["tinybert6"].delta is None
    assert rows["tinybert6"].scores["qnli"] == pytest.approx(81.0)
    assert rows["minilm6_limited"].avg == pytest.approx(82.0) and rows["minilm6_limited"].delta is None
    assert rows["nokd6_limited"].tokens is None
    md = render_markdown(blocks)
    assert "| TinyBERT₆ | 2.6B | 81.0 | 90.5 | 71.0 | 86.0 | 75.0 | 62.5 | n/a | n/a | n/a |" in md
    assert "- tinybert6: GLUE CoLA score" in md and "- nokd6_limited: pretraining summary" in md


def test_a_group_without_no_kd_has_no_delta(tmp_path):
    from kdbudget.report.layout import GroupLayout, ModelLayout

    write_fixture_results(tmp_path)
    layout = [GroupLayout("kd_only", "KD only", (ModelLayout("minilm6", "minilm", 6),))]
    (block,) = build_table(layout, load_results(layout, tmp_path))
    assert block.rows[0].avg == pytest.approx(505 / 7) and block.rows[0].delta is None
    assert "| 86.0 | 76.0 | 65.0 | 33.0 | 72.1 | – |" in render_markdown([block])


def test_a_summary_of_another_model_is_refused(tmp_path, layout):
    write_fixture_results(tmp_path)
    (tmp_path / "glue" / "minilm6" / "summary.json").write_text(
        (tmp_path / "glue" / "nokd6" / "summary.json").read_text())
    with pytest.raises(ValueError, match="'nokd6' where 'minilm6' was expected"):
        load_results(layout, tmp_path)


def test_the_report_rules_loader_reads_the_same_as_the_results_folder(tmp_path, layout):
    """The rules pass each model's directories (in any place); they must load what the folder layout loads."""
    write_fixture_results(tmp_path)
    names = ["minilm6", "nokd6"]
    by_dirs = load_model_dirs(names, [tmp_path / "pretrain" / n for n in names], [tmp_path / "glue" / n for n in names])
    by_folder = load_results(layout, tmp_path)
    assert list(by_dirs) == names
    for name in names:
        assert by_dirs[name].pretrain == by_folder[name].pretrain
        assert by_dirs[name].glue == by_folder[name].glue
        assert by_dirs[name].pretrain["name"] == name
    with pytest.raises(ValueError, match="'nokd6' where 'minilm6' was expected"):  # swapped order is caught
        load_model_dirs(names, [tmp_path / "pretrain" / n for n in reversed(names)],
                        [tmp_path / "glue" / n for n in names])


# --- the paper's Table 2 ------------------------------------------------------------


def test_paper_table_is_shipped_complete():
    rows = load_paper_table()
    assert [r.model for r in rows] == [f"{s}{n}{x}" for n, x in ((6, ""), (12, ""), (6, "_limited"))
                                       for s in ("nokd", "vanillakd", "minilm", "tinybert")]
    assert [r.throughput for r in rows] == ["4.6B", "2.6B", "2.6B", "2.6B"] * 2 + ["27.9B", "15.4B", "15.6B", "15.6B"]
    tinybert12 = rows[7]
    assert [str(tinybert12.scores[t]) for t in TASKS] == ["89.5", "91.4", "82.0", "90.8", "90.6", "65.5", "41.1"]
    assert (tinybert12.avg, tinybert12.delta) == (Decimal("78.7"), Decimal("0.6"))
    assert [r.delta is None for r in rows] == [True, False, False, False] * 3


def test_paper_avg_and_delta_recomputed_from_its_task_columns():
    rows = {r.model: r for r in load_paper_table()}
    # Every printed Avg is its task columns' mean, rounded.
    for row in rows.values():
        assert round1(exact_avg(row)) == row.avg, row.model
    assert exact_avg(rows["nokd6"]) == Fraction(5409, 70)  # (86.5+89.8+79.2+87.3+90.1+60.7+47.3) / 7
    # Exactly three printed Deltas disagree with the task columns beyond rounding.
    found = {(d.model, d.column): (d.printed, d.recomputed_rounded) for d in check_paper_table(rows.values())}
    assert found == {
        ("vanillakd6", "delta"): (Decimal("-0.4"), Decimal("-0.3")),    # -0.329; = 76.9 - 77.3 of the rounded Avgs
        ("minilm12", "delta"): (Decimal("1.4"), Decimal("2.4")),        # +2.414; the rounded Avgs give +2.4 too
        ("minilm6_limited", "delta"): (Decimal("1.8"), Decimal("1.7")),  # +1.714; = 80.3 - 78.5
    }


def test_comparison_with_the_paper(tmp_path, layout):
    write_fixture_results(tmp_path)
    from kdbudget.report.paper import render_comparison

    md = render_comparison(build_table(layout, load_results(layout, tmp_path)))["md"]
    assert "| No-KD₆ (nokd6) | reproduced | 4.6B | 80.0 |" in md
    assert "|  | reported | 4.6B | 86.5 | 89.8 | 79.2 | 87.3 | 90.1 | 60.7 | 47.3 | 77.3 | – |" in md
    assert "|  | difference | x1 | -6.5 | +0.2 | -9.2 | -2.3 | -15.1 | -0.7 | -7.3 | -5.9 | – |" in md
    assert "| MiniLM₆ (minilm6_limited) | reproduced | 512K |" in md  # both have it
    assert "vanillakd6_limited" not in md.split("## Discrepancies")[0]  # only models both have
    discrepancies = md.split("## Discrepancies in the paper's Table 2")[1]
    assert "3 printed value(s) disagree" in discrepancies
    assert "| MiniLM₁₂ (minilm12) | Δ | +1.4 | +2.4 |" in discrepancies


def test_a_row_the_paper_does_not_have_shows_n_a_for_its_numbers(tmp_path):
    """An extra strategy in a block of the paper's (DistilBERT in the 6-layer group) is kept, its
    reported numbers n/a; the other rows are compared as before."""
    from kdbudget.report.paper import render_comparison

    config = report_config()
    config["groups"]["unlimited6"]["strategies"].append("distilbert")
    layout = layout_from_config(validate_config(config, SCHEMA))
    write_fixture_results(tmp_path)
    reference_flops = TOKENS["nokd6"] * 3.0e3
    write_model(tmp_path, "distilbert6", "distilbert", scores=[0.8, 0.9, 0.7, 0.85, 0.75, 0.6, 0.4],
                tokens=2_500_000_000, flops=reference_flops,
                budget={"unit": "flops", "limit": reference_flops, "mode": "reference", "role": "follower",
                        "measure": "flops", "reference": "nokd6", "spent": reference_flops})
    blocks = build_table(layout, load_results(layout, tmp_path))
    assert [r.model for r in blocks[0].rows][-1] == "distilbert6"
    md = render_comparison(blocks)["md"]
    # The scores are nokd6's: Avg 500/7 = 71.4, Delta 0.
    assert ("| DistilBERT₆ (distilbert6) | reproduced | 2.5B | 80.0 | 90.0 | 70.0 | 85.0 | 75.0 | 60.0 | 40.0 "
            "| 71.4 |") in md
    assert "|  | reported (not in the paper) | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |" in md
    assert "|  | difference | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |" in md
    assert "| No-KD₆ (nokd6) | reproduced | 4.6B | 80.0 |" in md  # the block's other rows as before
    assert "|  | reported | 4.6B | 86.5 | 89.8 | 79.2 | 87.3 | 90.1 | 60.7 | 47.3 | 77.3 | – |" in md


# --- plots, the command line, the workflow --------------------------------------------


def test_reporting_never_imports_torch():
    code = ("import sys, kdbudget.report, kdbudget.report.__main__, kdbudget.report.plots, kdbudget.report.paper, "
            "kdbudget.report.sweep, kdbudget.report.stats, kdbudget.report.ledger, kdbudget.report.formats; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_cli_writes_tables_and_non_empty_plots(tmp_path):
    config = tmp_path / "config" / "config.yaml"
    config.parent.mkdir()
    import yaml

    config.write_text(yaml.safe_dump(report_config(), sort_keys=False))
    write_fixture_results(tmp_path / "results")
    cmd = [sys.executable, "-m", "kdbudget.report", "--results", str(tmp_path / "results"), "--config", str(config),
           "--schema", str(SCHEMA), "--docs", str(tmp_path / "docs")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "| Vanilla-KD₆ | 2.6B |" in done.stdout
    tables = tmp_path / "results" / "tables"
    for name in ("table2.md", "table2.tex", "table2.csv", "table2.html", "table2_vs_paper.md"):
        assert (tables / name).stat().st_size > 0
    for plot in ("throughput", "loss_curves", "glue_delta", "budget"):
        png = tmp_path / "results" / "plots" / f"{plot}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert (png.with_suffix(".pdf")).read_bytes()[:5] == b"%PDF-"
    assert (tmp_path / "docs" / "demo_table2.md").read_text() == (tables / "table2.md").read_text()
    assert (tmp_path / "docs" / "demo_throughput.png").stat().st_size > 10_000

    (tmp_path / "results" / "glue" / "minilm6" / "summary.json").unlink()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "minilm6: GLUE summary" in done.stderr
    done = subprocess.run(cmd + ["--allow-missing", "--no-plots", "--docs", ""], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "n/a" in (tables / "table2.md").read_text()


REBUILD = ("table", "--allowed-rules", "table2", "plots", "sweep", "table", "--forcerun", "table2", "plots")


@pytest.mark.slow
def test_rebuild_from_cached_summaries_runs_no_training_and_the_report_builds(tmp_path):
    work = tmp_path / "work"
    write_fixture_results(work / "results", weights=True)
    for name in SCORES:  # GLUE summaries are directory outputs, each with its table
        (work / "results" / "glue" / name / "table.md").write_text("fixture\n")
    config = report_config()
    # Without the restriction, missing weights would send Snakemake back to pretraining.
    for weights in (work / "results" / "pretrain").glob("*/model.safetensors"):
        weights.unlink()
    planned = run_snakemake(work, config, "table", extra=("-n",))
    assert "pretrain_model" in planned.stdout
    built = run_snakemake(work, config, *REBUILD)
    log = built.stdout + built.stderr
    for rule in ("pretrain_model", "pretrain_teacher", "finetune_cell", "glue_summary", "data_meta"):
        assert rule not in log, rule
    md = work / "results" / "tables" / "table2.md"
    assert "| Vanilla-KD₆ | 2.6B | 79.0 |" in md.read_text()
    for plot in ("throughput", "loss_curves", "glue_delta", "budget"):
        assert (work / "results" / "plots" / f"{plot}.png").stat().st_size > 10_000
    md.unlink()
    again = run_snakemake(work, config, *REBUILD)
    assert md.is_file() and "pretrain_model" not in again.stdout + again.stderr
    assert not list((work / "results" / "pretrain").glob("*/model.safetensors"))

    run_snakemake(work, config, extra=("--report", "report.html"))  # the default target: all
    html = (work / "report.html").read_text()
    assert (work / "report.html").stat().st_size > 50_000 and "Total Token Throughput" in html


def test_table_and_plots_read_what_real_training_runs_wrote(tmp_path, packed_data):
    """Table 2 and the plots from summaries and metrics written by real (tiny) pretraining runs, a
    No-KD reference and a KD follower: the numbers shown are the runs' own, field by field. (GLUE
    summaries are fixtures: fine-tuning is tested elsewhere.)"""
    import csv
    import io
    import shutil

    import torch
    from conftest import tiny_spec
    from transformers import BertConfig, BertForMaskedLM

    from kdbudget.report.plots import plot_budget, plot_loss_curves, plot_throughput
    from kdbudget.train.spec import RunSpec
    from kdbudget.train.trainer import pretrain

    tiny = {"layers": 2, "hidden": 32, "heads": 4, "intermediate": 64}
    config = base_config(teachers={"t4": {"source": "pretrain", "shape": {**tiny, "layers": 4},
                                          "budget": {"mode": "tokens", "limit": 10000}}},
                         groups={"small": {"title": "Small", "student": tiny, "teacher": "t4",
                                           "strategies": ["nokd", "vanillakd"],
                                           "budget": {"mode": "reference", "measure": "flops", "epochs": 0.3}}})
    layout = layout_from_config(validate_config(config, SCHEMA))
    models = [(m.name, m.strategy) for g in layout for m in g.models]
    assert [s for _, s in models] == ["nokd", "vanillakd"]
    (reference, _), (follower, _) = models

    results = tmp_path / "results"
    vocab = json.loads((packed_data / "meta.json").read_text())["vocab_size"]
    torch.manual_seed(0)
    teacher = tmp_path / "teacher"
    BertForMaskedLM(BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                               intermediate_size=64)).save_pretrained(teacher)
    for item in (packed_data / "tokenizer").iterdir():
        shutil.copy(item, teacher / item.name)
    budgets = {reference: {"mode": "reference", "is_reference": True, "epochs": 0.3, "measure": "flops"},
               follower: {"mode": "reference", "measure": "flops",
                          "reference_summary": str(results / "pretrain" / reference / "summary.json")}}
    for name, strategy in models:
        pretrain(RunSpec.from_dict({**tiny_spec(tmp_path, packed_data, name=name, strategy=strategy,
                                                teacher_dir=str(teacher) if strategy != "nokd" else None),
                                    "budget": budgets[name], "out_dir": str(results / "pretrain" / name)}))
        glue = results / "glue" / name
        glue.mkdir(parents=True)
        tasks = {t: {"task": t, "main_metric": "accuracy", "main": 0.5 + 0.01 * i} for i, t in enumerate(TASKS)}
        (glue / "summary.json").write_text(json.dumps({"model": name, "tasks": tasks}))

    summaries = {name: json.loads((results / "pretrain" / name / "summary.json").read_text()) for name, _ in models}
    metrics = {name: [json.loads(line)
                      for line in (results / "pretrain" / name / "metrics.jsonl").read_text().splitlines()]
               for name, _ in models}
    loaded = load_results(layout, results)
    blocks = build_table(layout, loaded)
    rows = list(csv.DictReader(io.StringIO(render_csv(blocks))))
    assert [r["model"] for r in rows] == [reference, follower]
    assert [int(r["tokens"]) for r in rows] == [summaries[n]["tokens"] for n in (reference, follower)]

    throughput = plot_throughput(blocks, loaded)
    speed_ax, tokens_ax = throughput.axes[:2]
    by_hand = [summaries[n]["spent"]["tokens"] / summaries[n]["spent"]["seconds"] for n in (reference, follower)]
    assert [p.get_height() for p in speed_ax.patches] == pytest.approx(by_hand, rel=1e-9)
    assert [p.get_height() for p in tokens_ax.patches] == [summaries[n]["spent"]["tokens"]
                                                           for n in (reference, follower)]

    budget_ax = plot_budget(blocks, loaded).axes[0]
    flops = [summaries[n]["spent"]["flops"] for n in (reference, follower)]
    assert [p.get_height() for p in budget_ax.patches] == pytest.approx(flops, rel=1e-9)
    assert budget_ax.lines[0].get_ydata()[0] == pytest.approx(flops[0])  # the group's budget: No-KD's spend
    assert summaries[follower]["budget"]["limit"] == pytest.approx(flops[0])

    time_ax, flops_ax = plot_loss_curves(blocks, loaded).axes[:2]
    for line, name in zip(time_ax.lines, (reference, follower), strict=True):
        assert list(line.get_xdata()) == pytest.approx([r["seconds"] for r in metrics[name]])
        assert list(line.get_ydata()) == pytest.approx([r["loss"] for r in metrics[name]])
    for line, name in zip(flops_ax.lines, (reference, follower), strict=True):
        assert list(line.get_xdata()) == pytest.approx([r["flops"] for r in metrics[name]])
    assert len(time_ax.lines) == len(flops_ax.lines) == 2
