"""Summary statistics of repeated runs: mean, sample standard deviation and 95% t-intervals of a difference.

- **Standard deviation** is the sample one (divisor n - 1); undefined for a
  single value.
- **Paired t-interval** (pretraining seeds): the differences d_k between two
  arms trained with the same seed k; mean(d) +- t_{0.975, n-1} sd(d) / sqrt(n).
  Pairing removes what the seed does to both arms alike (data order, masking,
  initialisation).
- **Welch t-interval** (GLUE seeds only, one pretraining run per arm): the two
  arms' per-seed values as independent samples of unequal variance, with
  Welch-Satterthwaite degrees of freedom. Fine-tuning seeds are not paired:
  the same seed gives different models a different classifier and order of
  updates only in name.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import t as student_t

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    method: str  # "paired-t" or "welch-t"
    n: int  # pairs (paired) or the smaller sample (Welch)

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values)


def std(values: Sequence[float]) -> float | None:
    """The sample standard deviation (n - 1); None for fewer than two values."""
    return statistics.stdev(values) if len(values) >= 2 else None


def t_quantile(df: float, level: float = LEVEL) -> float:
    return float(student_t.ppf(0.5 + level / 2, df))


def paired_t_interval(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Interval | None:
    """The interval of mean(a - b) from pairs (a[k], b[k]); None for fewer than two pairs."""
    if len(a) != len(b):
        raise ValueError(f"paired samples of different sizes: {len(a)} and {len(b)}")
    if len(a) < 2:
        return None
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    centre, half = mean(diffs), t_quantile(len(diffs) - 1, level) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return Interval(centre - half, centre + half, "paired-t", len(diffs))


def welch_t_interval(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Interval | None:
    """The interval of mean(a) - mean(b) for independent samples; None unless both have two values or more."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    centre, se = mean(a) - mean(b), math.sqrt(va + vb)
    if se == 0:  # both samples constant: the difference is known exactly
        return Interval(centre, centre, "welch-t", min(len(a), len(b)))
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = t_quantile(df, level) * se
    return Interval(centre - half, centre + half, "welch-t", min(len(a), len(b)))
