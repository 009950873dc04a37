"""Fine-tune one pretrained model on one GLUE task with one grid cell."""
import _kdbudget_path  # noqa: F401  (first: the repository's kdbudget, whatever environment runs this)

from pathlib import Path

from kdbudget.glue.finetune import finetune
from kdbudget.io import write_json
from kdbudget.log import setup_logging

setup_logging(snakemake.log[0])
settings, cell = snakemake.params.settings, snakemake.params.cell
result = finetune(
    Path(snakemake.input.model), snakemake.input.glue, snakemake.wildcards.task,
    **cell, **settings, threads=snakemake.threads,  # cell: batch_size, lr, seed (kdbudget.glue.cells.grid_cells)
    gpus=int(snakemake.params.gpus or 0),
    keep_weights_dir=snakemake.params.keep_weights,
)
write_json(snakemake.output[0], result)
