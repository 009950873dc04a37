"""GLUE fine-tuning of pretrained students: the eight tasks, the official
file layout, metrics, fine-tuning one grid cell, best-of-grid selection.

Modules: ``tasks`` (registry), ``cells`` (grid cell names), ``loader`` (official layout; hub copy writer),
``metrics``, ``select``; fine-tuning: ``classifier`` (the transformers model: load, fresh head, save),
``encode`` (tokenized arrays, padded batches), ``batches`` (length-grouped batch order), ``loop`` (the
training steps), ``evaluate`` (predictions) and ``finetune`` (one grid cell, end to end); ``python -m
kdbudget.glue`` is the command line. The fine-tuning modules import torch and transformers; import them
from their modules (``from kdbudget.glue.finetune import finetune``).
"""

from .cells import cell_name, parse_cell
from .loader import Example, FileStats, GlueFormatError, TaskData, load_task, read_file, save_hub_glue
from .metrics import MetricError, dev_metrics, main_metric, metric_key, task_metrics
from .select import MissingCellError, majority_baseline, render_table, select_best, summarize
from .tasks import TABLE2_TASKS, TASKS, GlueTask, get_task

__all__ = [
    "TABLE2_TASKS",
    "TASKS",
    "Example",
    "FileStats",
    "GlueFormatError",
    "GlueTask",
    "MetricError",
    "MissingCellError",
    "TaskData",
    "cell_name",
    "dev_metrics",
    "get_task",
    "load_task",
    "main_metric",
    "majority_baseline",
    "metric_key",
    "parse_cell",
    "read_file",
    "render_table",
    "save_hub_glue",
    "select_best",
    "summarize",
    "task_metrics",
]
