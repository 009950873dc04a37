"""Compute sweeps: a group run at several budget scales, as GLUE Avg against the compute spent.

- **Points.** Per strategy and scale, one point: the FLOPs the row's runs
  spent (their mean over pretraining seeds) and the row's Avg with its
  standard deviation (Table 2's row, see ``table``).
- **Crossover.** For each KD point: the compute at which No-KD reaches the
  same Avg, by linear interpolation of No-KD's Avg in log10(FLOPs) between
  the two neighbouring sweep points (the first crossing from the smallest
  budget up, should No-KD's curve not be monotone). An Avg that No-KD's
  curve does not reach between its smallest and largest budget is "not
  within the sweep": no extrapolation.
- **Ratio.** No-KD's compute for that Avg over the KD run's compute: above 1,
  distillation got there with less compute.
- **Teacher's cost (second view).** Each KD run is charged its own FLOPs
  plus its teacher's pretraining FLOPs (``teacher_cost.flops``) divided by
  ``report.amortise_over`` (n students sharing one teacher); No-KD is charged
  its own FLOPs. A teacher of unknown FLOPs leaves the charged view n/a.
- **Tasks.** Avg is Table 2's (``table``): over fewer than seven tasks (the
  config's ``glue.tasks``) it is headed "Avg (3 tasks)" and the CSV gains a
  last column ``avg_tasks``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from kdbudget.plan import REFERENCE_STRATEGY
from kdbudget.report.stats import mean
from kdbudget.report.table import TASKS, Block, Row, avg_label

NOT_WITHIN = "not within the sweep"
SWEEP_FILES = {"md": "sweep.md", "csv": "sweep.csv"}


@dataclass(frozen=True)
class SweepPoint:
    strategy: str
    label: str
    scale: float
    flops: float | None  # spent in pretraining (mean over the row's runs)
    avg: float | None
    avg_std: float | None
    teacher_flops: float | None  # the teacher's own pretraining cost (KD runs)
    gpu_hours: float | None = None  # measured on GPUs (mean over the row's runs); None on CPUs

    @property
    def distils(self) -> bool:
        return self.strategy != REFERENCE_STRATEGY

    def charged(self, amortise_over: int) -> float | None:
        """The FLOPs charged to this run: its own, plus a KD run's share of its teacher's pretraining."""
        if self.flops is None:
            return None
        if not self.distils:
            return self.flops
        return None if self.teacher_flops is None else self.flops + self.teacher_flops / amortise_over


@dataclass(frozen=True)
class Sweep:
    group: str
    title: str
    points: dict[str, list[SweepPoint]]  # per strategy, by ascending scale
    tasks: tuple[str, ...] = TASKS  # the tasks each point's Avg averages

    @property
    def reference(self) -> list[SweepPoint]:
        return self.points.get(REFERENCE_STRATEGY, [])


def _point(row: Row, scale: float) -> SweepPoint:
    flops = [r.flops for r in row.runs]
    return SweepPoint(row.strategy, row.label, scale, None if not flops or None in flops else mean(flops),
                      row.avg, row.avg_std, row.ledger.teacher_cost_flops, row.ledger.gpu_hours)


def sweeps(blocks: Sequence[Block]) -> list[Sweep]:
    """One sweep per group with more than one budget scale (Table 2 has a block per scale)."""
    by_group: dict[str, list[Block]] = {}
    for block in blocks:
        by_group.setdefault(block.group, []).append(block)
    found = []
    for group, group_blocks in by_group.items():
        if len({b.scale for b in group_blocks}) < 2:
            continue
        points: dict[str, list[SweepPoint]] = {}
        for block in sorted(group_blocks, key=lambda b: b.scale):
            for row in block.rows:
                points.setdefault(row.strategy, []).append(_point(row, block.scale))
        found.append(Sweep(group, group_blocks[0].group_title or group, points, group_blocks[0].tasks))
    return found


def crossover(curve: Sequence[tuple[float, float]], target: float) -> float | None:
    """The compute at which ``curve`` (compute, Avg) first reaches ``target``, interpolated in log compute;
    None when it does not within the curve's range."""
    ordered = sorted(curve)
    for (c0, a0), (c1, a1) in zip(ordered, ordered[1:], strict=False):
        if a0 == target or a1 == target:  # a sweep point itself: no rounding through the logarithms
            return c0 if a0 == target else c1
        if min(a0, a1) <= target <= max(a0, a1):
            fraction = (target - a0) / (a1 - a0)
            return 10 ** (math.log10(c0) + fraction * (math.log10(c1) - math.log10(c0)))
    if ordered and ordered[-1][1] == target:
        return ordered[-1][0]
    return None


@dataclass(frozen=True)
class Crossover:
    strategy: str
    label: str
    scale: float
    flops: float | None
    avg: float | None
    no_kd_flops: float | None  # No-KD's compute for the same Avg (None: not within the sweep)
    charged: float | None  # with the teacher's amortised cost
    gpu_hours: float | None = None

    @property
    def ratio(self) -> float | None:
        return None if self.no_kd_flops is None or not self.flops else self.no_kd_flops / self.flops

    @property
    def charged_ratio(self) -> float | None:
        return None if self.no_kd_flops is None or not self.charged else self.no_kd_flops / self.charged


def crossovers(sweep: Sweep, amortise_over: int = 1) -> list[Crossover]:
    """Per KD strategy and scale: where No-KD reaches its Avg, against its own and its charged compute."""
    curve = [(p.flops, p.avg) for p in sweep.reference if p.flops and p.avg is not None]
    found = []
    for strategy, points in sweep.points.items():
        if strategy == REFERENCE_STRATEGY:
            continue
        for p in points:
            match = crossover(curve, p.avg) if p.avg is not None and len(curve) >= 2 else None
            found.append(Crossover(strategy, p.label, p.scale, p.flops, p.avg, match, p.charged(amortise_over),
                                   p.gpu_hours))
    return found


# --- text --------------------------------------------------------------------------------


def _flops(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2e}"


def _ratio(x: float | None, known: bool) -> str:
    if not known:
        return NOT_WITHIN
    return "n/a" if x is None else f"{x:.2f}x"


def render_sweep_markdown(found: Sequence[Sweep], amortise_over: int = 1) -> str:
    """Per sweep, per KD strategy and scale: No-KD's compute for the same Avg, and the two ratios."""
    teacher = f"its teacher's pretraining FLOPs / {amortise_over}" if amortise_over > 1 else \
        "its teacher's whole pretraining FLOPs"
    lines = []
    for sweep in found:
        lines += [f"### {sweep.title}", "",
                  f"| Strategy | Budget scale | FLOPs spent | {avg_label(sweep.tasks)} | No-KD FLOPs for that Avg "
                  "| No-KD / KD FLOPs "
                  f"| FLOPs charged (+ teacher / {amortise_over}) | No-KD / charged |",
                  "| :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for c in crossovers(sweep, amortise_over):
            known = c.no_kd_flops is not None
            lines.append(f"| {c.label} | x{c.scale:g} | {_flops(c.flops)} | "
                         f"{'n/a' if c.avg is None else f'{c.avg:.1f}'} | "
                         f"{_flops(c.no_kd_flops) if known else NOT_WITHIN} | {_ratio(c.ratio, known)} | "
                         f"{_flops(c.charged)} | {_ratio(c.charged_ratio, known)} |")
        lines.append("")
    lines.append("No-KD's FLOPs for a KD run's Avg: interpolated linearly in log(FLOPs) between the sweep's No-KD "
                 "points; \"not within the sweep\" where No-KD's curve does not reach that Avg between its smallest "
                 "and largest budget. A ratio above 1: the KD run reached its Avg with less compute than No-KD. "
                 f"Charged: the KD run's FLOPs plus {teacher} (report.amortise_over).")
    return "\n".join(lines) + "\n"


def _number(x: float | None) -> str:
    return "" if x is None else repr(float(x))


SWEEP_COLUMNS = ["group", "strategy", "label", "budget_scale", "flops", "avg", "no_kd_flops", "ratio",
                 "amortise_over", "charged_flops", "charged_ratio", "gpu_hours"]


def render_sweep_csv(found: Sequence[Sweep], amortise_over: int = 1) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    partial = any(sweep.tasks != TASKS for sweep in found)  # Avg over fewer than seven tasks: say which
    writer.writerow(SWEEP_COLUMNS + ["avg_tasks"] * partial)
    for sweep in found:
        for c in crossovers(sweep, amortise_over):
            writer.writerow([sweep.group, c.strategy, c.label, f"{c.scale:g}",
                             *map(_number, (c.flops, c.avg, c.no_kd_flops, c.ratio)), amortise_over,
                             *map(_number, (c.charged, c.charged_ratio, c.gpu_hours)),
                             *[" ".join(sweep.tasks)] * partial])
    return out.getvalue()
