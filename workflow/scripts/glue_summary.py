"""Best-of-grid per task for one model: summary.json, table.md and a copy of every cell's result."""
import _kdbudget_path  # noqa: F401  (first: the repository's kdbudget, whatever environment runs this)

import shutil
from pathlib import Path

from kdbudget.glue.select import render_table, summarize
from kdbudget.io import atomic_dir, read_json, write_json
from kdbudget.log import setup_logging

setup_logging(snakemake.log[0])
model = snakemake.wildcards.model
cells = [Path(path) for path in snakemake.input.cells]  # results/finetune/{model}/{task}/{cell}.json
results = {}
for path in cells:
    results.setdefault(path.parent.name, {})[path.stem] = read_json(path)
summary = summarize(model, results)
with atomic_dir(snakemake.output[0]) as out:
    for path in cells:
        (out / path.parent.name).mkdir(exist_ok=True)
        shutil.copy2(path, out / path.parent.name / path.name)
    write_json(out / "summary.json", summary)
    (out / "table.md").write_text(render_table(summary), encoding="utf-8")
