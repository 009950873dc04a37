"""Table 2, its comparison with the paper, and the plots, from a run's small summaries.

Reads only ``results/pretrain/{model}/summary.json``, ``metrics.jsonl`` and
``results/glue/{model}/summary.json``: no weights, and never torch.

Modules, one job each: ``layout`` (which models, in which block), ``results``
(loading the summaries), ``table`` (building the rows: Avg and Delta),
``formats`` (Markdown/LaTeX/CSV/HTML text of the rows), ``paper`` (the paper's
Table 2 as shipped data, its own discrepancies, the side-by-side comparison),
``plots`` (matplotlib figures), ``render`` (writes every file). ``python -m
kdbudget.report`` renders a results folder without Snakemake.
"""

from .layout import GroupLayout, layout_from_config
from .results import ModelResults, load_model_results, load_results
from .table import TASKS, Block, MissingResultsError, Row, build_table

__all__ = [
    "TASKS",
    "Block",
    "GroupLayout",
    "MissingResultsError",
    "ModelResults",
    "Row",
    "build_table",
    "layout_from_config",
    "load_model_results",
    "load_results",
]
