"""Tokens per second of one training step, kdbudget's model vs. stock transformers.

For each strategy and shape, one step = teacher forward (if any), student
forward, loss, backward, AdamW step. "ours" is `KDBertForMaskedLM` driven by
the strategy's declared needs (sparse MLM head, SDPA except where scores are
needed, early stop). "stock" is `transformers.BertForMaskedLM` for student
and teacher, with the same weights: full-vocabulary logits, SDPA, or eager
attention in every layer when attention maps are needed (output_attentions),
forward hooks for Q/K/V; its outputs are fed to the same strategy loss so
that only the model side differs. The two are timed alternately, step by
step, so that load from other processes hits both alike. The student,
teacher and optimizer of each side are built once per shape; each strategy
is warmed up with one step per side.

Reported per side: the median tokens/s of the timed steps and their range
(min-max); the ratio is the median of the per-pair ratios (ours vs. the
stock step right after it), with its interquartile range. Each step also
records how busy the rest of the machine was (other processes' CPU time and
the hypervisor's steal time from /proc/stat, as a fraction of all cores),
so that slow steps can be told apart from slow code; `--trace FILE` writes
every step as JSON.

    python benchmarks/step_throughput.py                  # both shapes, all strategies (~2 min, 2 cores)
    python benchmarks/step_throughput.py --shapes paper6 --strategies nokd vanillakd --steps 15
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass

import torch
from transformers import BertConfig, BertForMaskedLM
from transformers.utils import logging as hf_logging

from kdbudget.model import KDBertForMaskedLM, LayerInternals, MLMOutput, bert_config, masked_positions
from kdbudget.model.flops import train_step_flops
from kdbudget.strategies import REGISTRY, build_strategy, teacher_forward

# (layers, hidden, heads, intermediate), vocabulary, default batch size
SHAPES = {
    # the paper's 6-layer student and its BERT-base teacher
    "paper6": {"student": (6, 768, 12, 3072), "teacher": (12, 768, 12, 3072), "vocab": 30522, "batch": 4},
    # the embedded demo (config/config.yaml): 6L/64 students of a 12L/64 teacher, an 8192-token vocabulary at most
    "demo": {"student": (6, 64, 4, 256), "teacher": (12, 64, 4, 256), "vocab": 8192, "batch": 32},
}
SEQ_LEN, MASKED = 128, 20


def make_batch(batch_size: int, vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Full 128-token sequences (as packed data mostly are), 20 masked positions each."""
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab, (batch_size, SEQ_LEN), generator=g)
    labels = torch.full_like(input_ids, -100)
    for row in range(batch_size):
        positions = torch.randperm(SEQ_LEN - 2, generator=g)[:MASKED] + 1
        labels[row, positions] = input_ids[row, positions]
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}


# --- stock transformers ------------------------------------------------------


class StockModel:
    """transformers' BertForMaskedLM run as a stock user would for a strategy."""

    def __init__(self, ours: KDBertForMaskedLM, eager: bool):
        self.model = BertForMaskedLM(BertConfig.from_dict(ours.config.to_dict()))
        self.model.set_attn_implementation("eager" if eager else "sdpa")
        self.model.load_state_dict(ours.state_dict())
        self.eager = eager
        self.captured: dict[str, torch.Tensor] = {}
        last = self.model.bert.encoder.layer[-1].attention.self
        for name in ("query", "key", "value"):
            getattr(last, name).register_forward_hook(lambda m, i, o, name=name: self.captured.__setitem__(name, o))

    def __call__(self, batch, is_teacher: bool = False) -> MLMOutput:
        """Full-vocabulary forward, adapted to our output type for the shared strategy loss."""
        labels = batch["labels"]
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         labels=None if is_teacher else labels,
                         output_hidden_states=True, output_attentions=self.eager)
        config = self.model.config
        heads, size = config.num_attention_heads, config.hidden_size // config.num_attention_heads

        def split(x):
            return x.view(*x.shape[:2], heads, size).transpose(1, 2)

        last = config.num_hidden_layers - 1
        layers = {
            last: LayerInternals(
                # HF returns probabilities only; their log stands in for the scores (same softmax).
                scores=out.attentions[-1].clamp_min(1e-30).log() if self.eager else None,
                queries=split(self.captured["query"]),
                keys=split(self.captured["key"]),
                values=split(self.captured["value"]),
            )
        }
        return MLMOutput(
            last_hidden_state=out.hidden_states[-1],
            num_layers=config.num_hidden_layers,
            logits=out.logits[labels != -100],
            mlm_loss=None if is_teacher else out.loss.float(),
            embeddings=out.hidden_states[0],
            layers=layers,
        )


# --- timing ------------------------------------------------------------------


class Arm:
    """One side of the comparison: a student, its teacher and one AdamW, reused across strategies
    (so the optimizer state and the allocator are warmed up once per shape)."""

    def __init__(self, student, teacher, stock: bool):
        self.student, self.teacher, self.stock = student, teacher, stock
        module = student.model if stock else student
        self.optimizer = make_optimizer(module.parameters())

    def use(self, strategy) -> None:
        self.strategy = strategy
        extra = list(strategy.parameters())  # projections, when widths differ
        if extra:
            self.optimizer.add_param_group({"params": extra})
        if self.stock:  # HF exposes attention maps only with eager attention in every layer
            eager = strategy.student_needs.needs_explicit_attention
            for model in (self.student, self.teacher):
                if model is not None:
                    model.eager = eager
                    model.model.set_attn_implementation("eager" if eager else "sdpa")

    def step(self, batch) -> None:
        strategy = self.strategy
        self.optimizer.zero_grad(set_to_none=True)
        if self.stock:
            teacher_out = None
            if strategy.teacher_needs is not None:
                self.teacher.model.eval()
                with torch.no_grad():
                    teacher_out = self.teacher(batch, is_teacher=True)
            student_out = self.student(batch)
        else:
            # as the trainer's step: the sparse head gathers by the host-made index (kdbudget.train.speed)
            batch = {**batch, "masked_index": masked_positions(batch["labels"])}
            teacher_out = teacher_forward(self.teacher, batch, strategy.teacher_needs)
            student_out = self.student(**batch, request=strategy.student_needs)
        strategy(student_out, teacher_out, batch)["loss"].backward()
        self.optimizer.step()


def make_optimizer(params) -> torch.optim.Optimizer:
    try:
        return torch.optim.AdamW(params, lr=1e-4, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, lr=1e-4, foreach=True)


def machine_ticks() -> tuple[int, int]:
    """(busy, steal) clock ticks of all CPUs since boot, from /proc/stat ((0, 0) where it is missing)."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq, steal


QUIET = 0.1  # a step during which the rest of the machine used less than this share of the cores
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class StepSample:
    """One timed step: its wall time, our CPU time, and what the rest of the machine did meanwhile."""

    seconds: float
    cpu_seconds: float  # this process, all threads
    others: float  # other processes' CPU time / (wall x cores): 0 idle, 1 every core busy
    steal: float  # the hypervisor's steal time / (wall x cores)


def timed(step) -> StepSample:
    busy0, steal0 = machine_ticks()
    cpu0, started = time.process_time(), time.perf_counter()
    step()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu0
    busy1, steal1 = machine_ticks()
    cores = os.cpu_count() or 1
    others = max(0.0, (busy1 - busy0) / TICK - cpu) / (seconds * cores)
    return StepSample(seconds, cpu, others, (steal1 - steal0) / TICK / (seconds * cores))


def quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def measure_shape(shape: dict, batch_size: int, names: list[str], steps: int):
    """Yields (strategy, {"ours": [StepSample], "stock": [StepSample]}, FLOPs per step) per strategy."""
    torch.manual_seed(0)
    student_config = bert_config(*shape["student"], shape["vocab"])
    teacher_config = bert_config(*shape["teacher"], shape["vocab"])
    student = KDBertForMaskedLM(student_config).train()
    teacher = KDBertForMaskedLM(teacher_config).requires_grad_(False)
    stock_student = StockModel(student, eager=False)
    stock_student.model.train()
    stock_teacher = StockModel(teacher, eager=False)
    stock_teacher.model.requires_grad_(False)
    arms = {"ours": Arm(student, teacher, stock=False), "stock": Arm(stock_student, stock_teacher, stock=True)}
    batch = make_batch(batch_size, shape["vocab"])
    for name in names:
        strategy = build_strategy(name, student_config, teacher_config)
        stock_strategy = build_strategy(name, student_config, teacher_config)
        stock_strategy.load_state_dict(strategy.state_dict())
        arms["ours"].use(strategy)
        arms["stock"].use(stock_strategy)
        for arm in arms.values():  # warm-up: the allocator's new sizes, optimizer state
            arm.step(batch)
        samples: dict[str, list[StepSample]] = {"ours": [], "stock": []}
        for _ in range(steps):
            for label, arm in arms.items():  # alternate, so that outside load hits both
                samples[label].append(timed(lambda arm=arm: arm.step(batch)))
        yield name, samples, train_step_flops(student_config, teacher_config, strategy, batch_size, SEQ_LEN, MASKED)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["paper6,demo"], help="of: " + ", ".join(SHAPES))
    parser.add_argument("--strategies", nargs="+", default=[",".join(REGISTRY)], help="strategy names")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model and strategy")
    parser.add_argument("--batch-size", type=int, default=None, help="override every shape's batch size")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--trace", default=None, help="write every timed step here (JSON)")
    args = parser.parse_args()
    hf_logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = [s for item in args.shapes for s in item.split(",") if s]  # "a,b" and "a b" alike
    strategies = [s for item in args.strategies for s in item.split(",") if s]

    print(f"# CPU: {cpu_name()}, {os.cpu_count()} logical cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), load average {os.getloadavg()[0]:.2f}")
    print(f"# sequence {SEQ_LEN}, {MASKED} masked per sequence, fp32, AdamW; {args.steps} alternating steps per side: "
          "median tok/s [min-max]; ratio = median of the paired ratios [IQR]; others = rest of the machine's "
          "CPU use during our steps (median, share of all cores)")
    print(f"# quiet = median tok/s of ours / stock over the steps with others < {QUIET} (their count)")
    print(f"{'shape':8} {'strategy':10} {'batch':>5} {'ours tok/s':>20} {'stock tok/s':>20} {'ratio':>17} "
          f"{'ours GFLOP/s':>13} {'others':>7} {'quiet':>16}")
    started = time.perf_counter()
    trace = []
    for shape_name in shapes:
        shape = SHAPES[shape_name]
        batch_size = args.batch_size or shape["batch"]
        tokens = batch_size * SEQ_LEN
        for name, samples, flops in measure_shape(shape, batch_size, strategies, args.steps):
            ours = [tokens / s.seconds for s in samples["ours"]]
            stock = [tokens / s.seconds for s in samples["stock"]]
            ratios = [o / s for o, s in zip(ours, stock, strict=True)]
            low, high = quartiles(ratios)
            others = statistics.median(s.others for side in samples.values() for s in side)
            quiet = {side: [tokens / s.seconds for s in samples[side] if s.others < QUIET] for side in samples}
            quiet_cell = (f"{statistics.median(quiet['ours']):.0f}/{statistics.median(quiet['stock']):.0f} "
                          f"({len(quiet['ours'])}/{len(quiet['stock'])})" if all(quiet.values()) else "-")

            def cell(values: list[float]) -> str:
                return f"{statistics.median(values):.0f} [{min(values):.0f}-{max(values):.0f}]"

            print(f"{shape_name:8} {name:10} {batch_size:5d} {cell(ours):>20} {cell(stock):>20} "
                  f"{statistics.median(ratios):5.2f} [{low:.2f}-{high:.2f}] "
                  f"{flops * statistics.median(ours) / tokens / 1e9:13.1f} {others:7.2f} {quiet_cell:>16}", flush=True)
            trace.append({"shape": shape_name, "strategy": name, "batch": batch_size,
                          "threads": torch.get_num_threads(),
                          "flops_per_step": flops, **{side: [vars(s) for s in samples[side]] for side in samples}})
    print(f"# {time.perf_counter() - started:.0f} s, load average at the end {os.getloadavg()[0]:.2f}")
    if args.trace:
        with open(args.trace, "w", encoding="utf-8") as handle:
            json.dump(trace, handle, indent=1)


if __name__ == "__main__":
    main()
