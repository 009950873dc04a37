"""GLUE metrics, computed by the reference implementations GLUE scores come
from: scikit-learn (accuracy, F1, Matthews correlation) and SciPy (Pearson,
Spearman).

Invalid inputs raise before they reach them: empty or unequal lengths, labels
out of range, and gold labels that make a metric meaningless (no positive
label for F1, a constant gold column for a correlation). Degenerate
*predictions* are scored as the references score them, never with a made-up
number:

- Matthews correlation of constant predictions is 0.0 (scikit-learn's
  definition, used for every published CoLA score; a majority classifier
  scores 0); F1 with nothing predicted positive is 0.0;
- Pearson and Spearman of constant or non-finite predictions are undefined
  and returned as NaN (SciPy returns NaN too, with a warning; here the
  warning is ours and names the cause). NaN is written as null in result
  files; selection ranks it below every score (see `select.py`).

scikit-learn and SciPy are imported when a metric is computed: this package
is imported whenever the workflow is parsed, and they take over a second.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np

from kdbudget.glue.tasks import GlueTask, get_task

log = logging.getLogger(__name__)


class MetricError(ValueError):
    """A metric cannot be computed from these inputs."""


def _pair(predictions: Sequence, labels: Sequence, dtype) -> tuple[np.ndarray, np.ndarray]:
    p, y = np.asarray(predictions, dtype=dtype), np.asarray(labels, dtype=dtype)
    if p.ndim != 1 or y.ndim != 1:
        raise MetricError(f"predictions and labels must be 1-d (got shapes {p.shape}, {y.shape})")
    if len(p) != len(y):
        raise MetricError(f"{len(p)} predictions for {len(y)} labels")
    if len(y) == 0:
        raise MetricError("no examples to score")
    return p, y


def _classes(predictions: Sequence, labels: Sequence) -> tuple[np.ndarray, np.ndarray]:
    p, y = _pair(predictions, labels, np.float64)
    if not (np.array_equal(p, np.round(p)) and np.array_equal(y, np.round(y))):
        raise MetricError("class predictions and labels must be integers")
    if p.min() < 0 or y.min() < 0:
        raise MetricError("class indices must be non-negative")
    return p.astype(np.int64), y.astype(np.int64)


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    from sklearn.metrics import accuracy_score

    p, y = _classes(predictions, labels)
    return float(accuracy_score(y, p))


def f1(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """F1 of the positive class 1 (scikit-learn's binary F1). 0.0 when nothing is predicted positive."""
    from sklearn.metrics import f1_score

    p, y = _classes(predictions, labels)
    if p.max() > 1 or y.max() > 1:
        raise MetricError("F1 is defined here for binary labels 0/1")
    if not (y == 1).any():
        raise MetricError("F1 of class 1 is undefined: no gold label is 1")
    return float(f1_score(y, p, labels=[0, 1], pos_label=1, average="binary", zero_division=0.0))


def matthews_corrcoef(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Matthews correlation (scikit-learn's, multi-class form); 0.0 for constant predictions."""
    from sklearn.metrics import matthews_corrcoef as sk_matthews_corrcoef

    p, y = _classes(predictions, labels)
    if (y == y[0]).all():
        raise MetricError("Matthews correlation is undefined: every gold label is the same")
    return float(sk_matthews_corrcoef(y, p))


def _check_scores(name: str, p: np.ndarray, y: np.ndarray) -> bool:
    """Raise on unusable gold scores; False (with a warning) when the predictions make ``name`` undefined."""
    if not np.isfinite(y).all():
        raise MetricError(f"{name}: gold scores must be finite")
    if np.ptp(y) == 0:
        raise MetricError(f"{name} is undefined: every gold score is the same")
    if not np.isfinite(p).all():
        log.warning("%s is undefined (NaN): %d predictions are not finite", name, int((~np.isfinite(p)).sum()))
        return False
    if np.ptp(p) == 0:
        log.warning("%s is undefined (NaN): every prediction is %r", name, float(p[0]))
        return False
    return True


def pearson(predictions: Sequence[float], labels: Sequence[float]) -> float:
    """Pearson correlation (SciPy's); NaN when the predictions are constant or not finite."""
    from scipy.stats import pearsonr

    p, y = _pair(predictions, labels, np.float64)
    return float(pearsonr(p, y).statistic) if _check_scores("Pearson correlation", p, y) else math.nan


def spearman(predictions: Sequence[float], labels: Sequence[float]) -> float:
    """Spearman rank correlation (SciPy's: ties get their average rank); NaN when the predictions are constant
    or not finite."""
    from scipy.stats import spearmanr

    p, y = _pair(predictions, labels, np.float64)
    return float(spearmanr(p, y).statistic) if _check_scores("Spearman correlation", p, y) else math.nan


METRICS = {"accuracy": accuracy, "f1": f1, "mcc": matthews_corrcoef, "pearson": pearson, "spearman": spearman}


def task_metrics(task: str | GlueTask, predictions: Sequence, labels: Sequence) -> dict[str, float]:
    """All of the task's metrics on one evaluation set (class indices, or scores for STS-B)."""
    task = get_task(task)
    if task.labels is not None:
        p, y = _classes(predictions, labels)
        if max(p.max(), y.max()) >= task.num_labels:
            raise MetricError(f"{task.name}: class index out of range for {task.num_labels} labels")
    return {name: METRICS[name](predictions, labels) for name in task.metrics}


def metric_key(task: str | GlueTask, split: str, metric: str) -> str:
    """The name of a metric in a result: plain for a one-dev-set task, ``{split}_{metric}`` for MNLI."""
    task = get_task(task)
    return metric if len(task.dev_files) == 1 else f"{split}_{metric}"


def main_metric(task: str | GlueTask) -> str:
    """The key of the task's main metric (Table 2): mcc, f1, pearson, matched_accuracy or accuracy."""
    task = get_task(task)
    return metric_key(task, task.main_split, task.metrics[0])


def dev_metrics(task: str | GlueTask, by_split: Mapping[str, tuple[Sequence, Sequence]]) -> dict[str, float]:
    """Metrics of every dev split, keyed by `metric_key`, plus ``main``."""
    task = get_task(task)
    missing = [s for s in task.dev_splits if s not in by_split]
    if missing:
        raise MetricError(f"{task.name}: no predictions for dev split(s) {missing}")
    out: dict[str, float] = {}
    for split in task.dev_splits:
        predictions, labels = by_split[split]
        for name, value in task_metrics(task, predictions, labels).items():
            out[metric_key(task, split, name)] = value
    out["main"] = out[main_metric(task)]
    return out


def nan_to_none(metrics: Mapping[str, float | None]) -> dict[str, float | None]:
    """Undefined (NaN) values as None, so that result files hold valid JSON (null)."""
    return {k: None if v is None or (isinstance(v, float) and math.isnan(v)) else v for k, v in metrics.items()}
