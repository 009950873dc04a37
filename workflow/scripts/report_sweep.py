"""The compute sweep's table (md, csv) and plot (PNG, PDF) from the run's summaries (rules/report.smk)."""
import _kdbudget_path  # noqa: F401  (first: the repository's kdbudget, whatever environment runs this)

from pathlib import Path

from kdbudget.log import setup_logging
from kdbudget.report.layout import layout_from_data
from kdbudget.report.render import write_sweeps
from kdbudget.report.results import load_model_dirs
from kdbudget.report.table import build_table

setup_logging(snakemake.log[0])
layout = layout_from_data(snakemake.params.layout)
results = load_model_dirs(snakemake.params.models, snakemake.input.pretrain, snakemake.input.glue)
out = snakemake.output
blocks = build_table(layout, results, tasks=snakemake.params.tasks)
if not write_sweeps(blocks, Path(out.md).parent, Path(out.png).parent, snakemake.params.amortise_over):
    raise SystemExit("no group has more than one budget scale: nothing to sweep")
