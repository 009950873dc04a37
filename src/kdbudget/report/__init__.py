"""Table 2, its comparison with the paper, and the plots, from a run's small summaries.

Reads only ``results/pretrain/{model}/summary.json``, ``metrics.jsonl`` and
``results/glue/{model}/summary.json``: no weights, and never torch.

Modules: ``table`` (layout, rows, Avg and Delta, Markdown/LaTeX/CSV/HTML),
``paper`` (the paper's Table 2 as shipped data, its own discrepancies, the
side-by-side comparison), ``plots`` (matplotlib figures), ``render`` (writes
every file). ``python -m kdbudget.report`` renders a results folder without
Snakemake.
"""

from .table import (
    TASKS,
    Block,
    GroupLayout,
    MissingResultsError,
    ModelResults,
    Row,
    build_table,
    layout_from_config,
    load_model_results,
    load_results,
)

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
