"""Table 2 (md, tex, csv, html) and table2_vs_paper from the run's summaries (rules/report.smk)."""
import _kdbudget_path  # noqa: F401  (first: the repository's kdbudget, whatever environment runs this)

from pathlib import Path

from kdbudget.log import setup_logging
from kdbudget.report.layout import layout_from_data
from kdbudget.report.render import write_tables
from kdbudget.report.results import load_model_results
from kdbudget.report.table import build_table

setup_logging(snakemake.log[0])
layout = layout_from_data(snakemake.params.layout)
results = {
    name: load_model_results(name, pretrain=Path(pretrain) / "summary.json", glue=Path(glue) / "summary.json")
    for name, pretrain, glue in zip(snakemake.params.models, snakemake.input.pretrain, snakemake.input.glue,
                                    strict=True)
}
write_tables(build_table(layout, results, tasks=snakemake.params.tasks), Path(snakemake.output.md).parent)
