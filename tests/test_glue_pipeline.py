"""GLUE fine-tuning through Snakemake: a two-cell grid for one task, and the paper's plan."""

import json
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, SNAKEMAKE, run_snakemake
from test_pretrain_pipeline import pretrain_config


def write_sst2(glue_dir: Path) -> Path:
    """A small SST-2-layout task the demo vocabulary covers."""
    folder = glue_dir / "SST-2"
    folder.mkdir(parents=True)
    good = ["the market is lively and the fair is wonderful", "a fine bridge and a busy happy town"]
    bad = ["the mill is dull and the river is dreadful", "a grim cold valley with a dreary road"]
    for split, n in (("train", 24), ("dev", 12)):
        rows = [f"{(good if i % 2 else bad)[i % 4 // 2]}\t{i % 2}" for i in range(n)]
        (folder / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    return glue_dir


@pytest.mark.slow
def test_two_cell_grid_end_to_end(tmp_path):
    glue_dir = write_sst2(tmp_path / "glue")
    config = pretrain_config()
    config["groups"]["small"]["strategies"] = ["nokd"]
    config["glue"] = {"source": "dir", "path": str(glue_dir), "tasks": ["sst2"],
                      "grid": {"batch_size": [8], "lr": [1.0e-3, 3.0e-4]}, "epochs": 1}
    config["resources"]["glue"] = {"threads": 1, "gpu": 0, "runtime": 5, "mem_mb": 1000}
    work = tmp_path / "work"
    run_snakemake(work, config, "results/glue/nokd2")
    cells = sorted(p.name for p in (work / "results/finetune/nokd2/sst2").glob("*.json"))
    assert cells == ["bs8_lr0.0003.json", "bs8_lr0.001.json"]
    out = work / "results/glue/nokd2"
    assert sorted(p.name for p in (out / "sst2").iterdir()) == cells
    summary = json.loads((out / "summary.json").read_text())
    entry = summary["tasks"]["sst2"]
    scores = {c: json.loads((out / "sst2" / c).read_text())["dev"]["main"] for c in cells}
    assert entry["main"] == max(scores.values())
    assert entry["main_metric"] == "accuracy" and entry["majority_baseline"] is not None
    assert "SST-2" in (out / "table.md").read_text()
    cell = json.loads((out / "sst2" / cells[0]).read_text())
    assert cell["examples_per_second"] > 0 and cell["train_examples"] == 24


def test_paper_glue_plans_eight_cells_per_task_and_model(tmp_path):
    result = subprocess.run([str(SNAKEMAKE), "glue", "-n", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                             str(tmp_path), "--configfile", str(ROOT / "config" / "paper.yaml")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = dict(line.split() for line in result.stdout.splitlines()
                  if line.split()[:1] in (["finetune_cell"], ["glue_summary"]) and len(line.split()) == 2)
    # Table 2's 12 models and the extra distilbert6, x 8 tasks x a 2 x 4 grid
    assert counts == {"finetune_cell": str(13 * 8 * 8), "glue_summary": "13"}
