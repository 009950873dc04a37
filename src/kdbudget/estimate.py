"""GPU-hours of a whole config, from a throughput benchmark, before anything runs.

    python -m kdbudget.estimate config/paper.yaml --benchmark results/benchmarks/gpu_throughput.json
        [--tokens 4.6e9 | --meta results/data/meta.json] [--glue-examples-per-second 400] [--json OUT]

Pretraining (every student of every group, and teachers the pipeline pretrains):

- a ``reference`` budget: No-KD trains ``epochs`` x corpus tokens at its benchmarked tokens/s;
  the KD arms get what it spent: the same seconds (``measure: seconds``), or the same FLOPs or
  tokens at their own benchmarked rate;
- ``seconds``: the limit; ``tokens`` / ``flops``: the limit at the arm's benchmarked rate.

A strategy's rate is the benchmark row (``benchmarks/gpu_throughput.py --out``) of the same
student shape and strategy, with the compile setting the config resolves to on a GPU (the other
setting if that one is missing). GPU-hours are one GPU's seconds / 3600: with N GPUs a run takes
about 1/N of the time, the same GPU-hours if it scales linearly.

GLUE: every model x task x grid cell (batch sizes x learning rates x seeds) trains on the task's
official training set for ``glue.epochs`` at ``resources.glue.examples_per_second`` (stated for
BERT-base, scaled by the model's relative cost as the cluster sizing does:
``kdbudget.cluster.relative_cost``), or at ``--glue-examples-per-second``. The start-up of each
cell (``kdbudget.cluster.GLUE_START_MINUTES``) is shown separately.

The corpus size is read from ``results/data/meta.json`` (sequences x sequence length, padding
included, as the trainer counts) when it exists, else given with ``--tokens`` (the paper's
corpus: about 4.6e9).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kdbudget.cluster import GLUE_START_MINUTES, relative_cost
from kdbudget.config import ConfigError
from kdbudget.glue.tasks import TRAIN_EXAMPLES
from kdbudget.io import read_json, write_json
from kdbudget.plan import REFERENCE_STRATEGY, plan_models

SHAPE_KEYS = ("layers", "hidden", "heads", "intermediate")


class EstimateError(ValueError):
    """A benchmark row or the corpus size the estimate needs is missing."""


@dataclass(frozen=True)
class Rate:
    tokens_per_second: float
    flops_per_second: float
    compile: bool


@dataclass(frozen=True)
class RunEstimate:
    name: str
    group: str
    strategy: str
    budget: str
    seconds: float
    tokens_per_second: float

    @property
    def gpu_hours(self) -> float:
        return self.seconds / 3600


def rate(benchmark: dict[str, Any], shape: dict[str, Any], strategy: str, compile_on: bool) -> Rate:
    """The benchmarked rate of ``strategy`` on a student of ``shape``."""
    key = tuple(shape[k] for k in SHAPE_KEYS)
    rows = [r for r in benchmark["rows"]
            if r["strategy"] == strategy and tuple(r["student"][k] for k in SHAPE_KEYS) == key]
    if not rows:
        raise EstimateError(f"the benchmark has no row for {strategy} with a {'/'.join(map(str, key))} student "
                            "(layers/hidden/heads/intermediate)")
    preferred = [r for r in rows if r["compile"] == compile_on] or rows
    row = max(preferred, key=lambda r: r["tokens_per_second"])
    tokens_per_second = row["tokens_per_second"]
    return Rate(tokens_per_second, row["flops_per_step"] / row["tokens_per_step"] * tokens_per_second, row["compile"])


def corpus_tokens(tokens: float | None, meta: Path) -> float:
    if tokens:
        return float(tokens)
    if meta.is_file():
        data = read_json(meta)
        return float(data["sequences"] * data["seq_len"])
    raise EstimateError(f"no corpus size: {meta} does not exist; give --tokens (the paper's corpus: 4.6e9)")


def _seconds(budget: dict[str, Any], mine: Rate) -> float:
    limit = float(budget["limit"])
    if budget["mode"] == "seconds":
        return limit
    return limit / (mine.tokens_per_second if budget["mode"] == "tokens" else mine.flops_per_second)


def pretraining(config: dict[str, Any], benchmark: dict[str, Any], tokens: float) -> list[RunEstimate]:
    compile_on = config["pretrain"]["compile"] in ("auto", True)  # what the config does on a GPU
    runs = []
    for name, teacher in config["teachers"].items():
        if teacher["source"] == "pretrain":
            mine = rate(benchmark, teacher["shape"], REFERENCE_STRATEGY, compile_on)
            runs.append(RunEstimate(name, "(teacher)", REFERENCE_STRATEGY, f"{teacher['budget']['mode']} "
                                    f"{teacher['budget']['limit']:g}", _seconds(teacher["budget"], mine),
                                    mine.tokens_per_second))
    for model in plan_models(config).values():
        budget = model.budget
        mine = rate(benchmark, model.shape, model.strategy, compile_on)
        if budget["mode"] != "reference":
            seconds, label = _seconds(budget, mine), f"{budget['mode']} {budget['limit']:g}"
        else:
            reference = rate(benchmark, model.shape, REFERENCE_STRATEGY, compile_on)
            reference_tokens = budget["epochs"] * tokens
            reference_seconds = reference_tokens / reference.tokens_per_second
            spent = {"seconds": reference_seconds, "tokens": reference_tokens,
                     "flops": reference_tokens / reference.tokens_per_second * reference.flops_per_second}
            measure = budget["measure"]
            if model.strategy == REFERENCE_STRATEGY:
                seconds, label = reference_seconds, f"{budget['epochs']:g} epochs"
            else:
                seconds = _seconds({"mode": measure, "limit": spent[measure]}, mine)
                label = f"No-KD's {measure}"
        runs.append(RunEstimate(model.name, model.group, model.strategy, label, seconds, mine.tokens_per_second))
    return runs


def glue(config: dict[str, Any], examples_per_second: float | None) -> dict[str, Any]:
    """Fine-tuning seconds of every model's grid, training only, and the cells' start-up."""
    g = config["glue"]
    speed = examples_per_second or config["resources"]["glue"]["examples_per_second"]
    cells = len(g["grid"]["batch_size"]) * len(g["grid"]["lr"]) * len(g["seeds"])
    examples = sum(TRAIN_EXAMPLES[task] for task in g["tasks"])
    models = plan_models(config)
    seconds = sum(cells * examples * g["epochs"] * relative_cost(m.shape) / speed for m in models.values())
    jobs = len(models) * len(g["tasks"]) * cells
    return {"models": len(models), "tasks": len(g["tasks"]), "cells_per_task": cells, "jobs": jobs,
            "examples_per_second_bert_base": speed, "train_examples": examples, "epochs": g["epochs"],
            "seconds": seconds, "start_up_seconds": jobs * GLUE_START_MINUTES * 60}


def estimate(config: dict[str, Any], benchmark: dict[str, Any], tokens: float,
             glue_examples_per_second: float | None = None) -> dict[str, Any]:
    runs = pretraining(config, benchmark, tokens)
    fine_tuning = glue(config, glue_examples_per_second)
    pretrain_hours = sum(r.gpu_hours for r in runs)
    glue_hours = fine_tuning["seconds"] / 3600
    return {"device": benchmark.get("device"), "corpus_tokens": tokens,
            "pretraining": [asdict(r) | {"gpu_hours": r.gpu_hours} for r in runs],
            "pretraining_gpu_hours": pretrain_hours, "glue": fine_tuning, "glue_gpu_hours": glue_hours,
            "glue_start_up_gpu_hours": fine_tuning["start_up_seconds"] / 3600,
            "total_gpu_hours": pretrain_hours + glue_hours}


def render(result: dict[str, Any]) -> str:
    lines = [f"# GPU-hours on {result['device']}, corpus {result['corpus_tokens']:.3g} tokens",
             f"{'model':20} {'group':14} {'budget':18} {'tok/s':>10} {'GPU-h':>8}"]
    for r in result["pretraining"]:
        lines.append(f"{r['name']:20} {r['group']:14} {r['budget']:18} {r['tokens_per_second']:10.0f} "
                     f"{r['gpu_hours']:8.1f}")
    g = result["glue"]
    lines += [f"pretraining: {result['pretraining_gpu_hours']:.1f} GPU-h",
              f"GLUE: {g['models']} models x {g['tasks']} tasks x {g['cells_per_task']} cells, {g['epochs']:g} epochs "
              f"at {g['examples_per_second_bert_base']:g} examples/s (BERT-base): {result['glue_gpu_hours']:.1f} GPU-h "
              f"training, + {result['glue_start_up_gpu_hours']:.1f} GPU-h start-up ({g['jobs']} jobs)",
              f"total: {result['total_gpu_hours']:.1f} GPU-h (without GLUE start-up)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from kdbudget.report.__main__ import (
        load_config,  # the report's config loader (finds the schema)
    )

    parser = argparse.ArgumentParser(prog="python -m kdbudget.estimate", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the config file (e.g. config/paper.yaml)")
    parser.add_argument("--benchmark", required=True, help="gpu_throughput.json of benchmarks/gpu_throughput.py")
    parser.add_argument("--tokens", type=float, default=None, help="corpus tokens (default: read from --meta)")
    parser.add_argument("--meta", default="results/data/meta.json", help="the packed corpus's meta.json")
    parser.add_argument("--glue-examples-per-second", type=float, default=None,
                        help="fine-tuning throughput of BERT-base (default: resources.glue.examples_per_second)")
    parser.add_argument("--schema", default=None, help="the config schema (default: found beside the config)")
    parser.add_argument("--json", default=None, help="also write the estimate here")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, args.schema)
        benchmark = read_json(args.benchmark)
        result = estimate(config, benchmark, corpus_tokens(args.tokens, Path(args.meta)), args.glue_examples_per_second)
    except (ConfigError, EstimateError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(render(result))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
