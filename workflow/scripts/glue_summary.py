"""Best-of-grid per task for one model: summary.json, table.md and a copy of every cell's result."""
import json
import shutil
from pathlib import Path

from kdbudget.glue.select import render_table, summarize
from kdbudget.io import atomic_dir, read_json
from kdbudget.log import setup_logging

setup_logging(snakemake.log[0])
model = snakemake.wildcards.model
results, sources = {}, {}
for path in map(Path, snakemake.input.cells):
    task, cell = path.parent.name, path.stem
    results.setdefault(task, {})[cell] = read_json(path)
    sources[(task, cell)] = path
summary = summarize(model, results)
with atomic_dir(snakemake.output[0]) as out:
    for (task, cell), path in sources.items():
        (out / task).mkdir(exist_ok=True)
        shutil.copy2(path, out / task / f"{cell}.json")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / "table.md").write_text(render_table(summary), encoding="utf-8")
