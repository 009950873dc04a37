"""Table 2 (md, tex, csv, html) and table2_vs_paper from the run's summaries (rules/report.smk)."""
import _kdbudget_path  # noqa: F401  (first: the repository's kdbudget, whatever environment runs this)

from pathlib import Path

from kdbudget.log import setup_logging
from kdbudget.report.layout import layout_from_data
from kdbudget.report.render import write_tables
from kdbudget.report.results import load_model_dirs
from kdbudget.report.table import build_table

setup_logging(snakemake.log[0])
layout = layout_from_data(snakemake.params.layout)
results = load_model_dirs(snakemake.params.models, snakemake.input.pretrain, snakemake.input.glue)
write_tables(build_table(layout, results, tasks=snakemake.params.tasks), Path(snakemake.output.md).parent)
