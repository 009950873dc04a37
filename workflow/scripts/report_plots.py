"""The plots (PNG and PDF) from the run's summaries (rules/report.smk)."""
import _kdbudget_path  # noqa: F401  (first: the repository's kdbudget, whatever environment runs this)

from pathlib import Path

from kdbudget.log import setup_logging
from kdbudget.report.layout import layout_from_data
from kdbudget.report.render import write_plots
from kdbudget.report.results import load_model_dirs
from kdbudget.report.table import build_table

setup_logging(snakemake.log[0])
layout = layout_from_data(snakemake.params.layout)
results = load_model_dirs(snakemake.params.models, snakemake.input.pretrain, snakemake.input.glue)
blocks = build_table(layout, results, tasks=snakemake.params.tasks)
write_plots(blocks, results, Path(snakemake.output.throughput).parent)
