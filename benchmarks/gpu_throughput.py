"""Pretraining throughput of the trainer's own optimizer step on one GPU, for every strategy.

Times `kdbudget.train.step.train_step` (the function the trainer calls, with its setup: fused
AdamW on CUDA, bf16 autocast, the teacher in `pretrain.teacher_dtype`'s auto dtype, regional
`torch.compile` with its fallback, pinned host batches) at the paper's shapes, with random
weights and synthetic batches of the packed format (128 tokens, 10% shorter sequences padded,
BERT masking with 20 predictions per full sequence, made by the data stage's own masking code).
Nothing is downloaded.

    python benchmarks/gpu_throughput.py --out results/benchmarks        # everything (<= ~6 min on an H100)
    python benchmarks/gpu_throughput.py --quick                         # paper6, nokd + vanillakd, eager (~1 min)
    python benchmarks/gpu_throughput.py --tiny --device cpu --out /tmp/b # the code path on a CPU (tests)

Per (shape, compile, strategy): a step is `--batch-size` sequences (the paper's 1024) in
micro-batches of the largest power of two <= `--max-micro-batch` that fits in memory (tried
from the top, halved on out-of-memory); after `--warmup` steps (compilation happens there),
`--steps` steps are timed by the trainer's step clock (one device sync per step). Printed:
median tokens/s with the min-max range, MFU against the device's dense bf16 peak
(`kdbudget.train.hardware`), each KD arm's cost over No-KD (No-KD tokens/s / its tokens/s)
beside the ideal ratio of the analytic FLOP counts (`kdbudget.model.flops.train_step_flops`,
the teacher counted as the strategy runs it), and peak memory. `--out DIR` writes the table
(gpu_throughput.txt) and the rows (gpu_throughput.json, which `python -m kdbudget.estimate`
reads).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdbudget.data.masking import MaskingSpec, mask_batch
from kdbudget.model import IGNORE_INDEX, KDBertForMaskedLM, bert_config
from kdbudget.model.flops import train_step_flops
from kdbudget.strategies import REGISTRY, build_strategy
from kdbudget.train.clock import StepClock
from kdbudget.train.distributed import World
from kdbudget.train.hardware import mfu, peak_flops
from kdbudget.train.optim import build_optimizer
from kdbudget.train.runtime import (
    autocast_context,
    autocast_dtype,
    device_name,
    git_commit,
)
from kdbudget.train.speed import CompiledLayers, fused_adamw, resolve_teacher_dtype
from kdbudget.train.step import StepParts, train_step

SEQ_LEN = 128
PREDICTIONS = 20  # per full sequence, as the issue and the FLOP reference count (the paper's data: 19)
SHORT_FRACTION = 0.1
PAD, UNK, CLS, SEP, MASK = 0, 100, 101, 102, 103  # bert-base-uncased's special ids

# (layers, hidden, heads, intermediate) of student and teacher
SHAPES = {
    "paper6": {"student": (6, 768, 12, 3072), "teacher": (12, 768, 12, 3072), "vocab": 30522},
    "paper12": {"student": (12, 1024, 16, 4096), "teacher": (24, 1024, 16, 4096), "vocab": 30522},
}
# --tiny: the same code at sizes a CPU runs in seconds
TINY = {
    "paper6": {"student": (2, 32, 4, 64), "teacher": (3, 32, 4, 64), "vocab": 512},
    "paper12": {"student": (2, 48, 4, 96), "teacher": (4, 48, 4, 96), "vocab": 512},
}
COLUMNS = ("shape", "strategy", "compile", "micro", "tok/s", "min-max tok/s", "MFU", "KD/NoKD", "ideal", "excess",
           "peak GiB", "warm-up s")


@dataclass(frozen=True)
class Case:
    shape: str
    strategy: str
    compile: bool


def make_batches(count: int, rows: int, vocab: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Host micro-batches in the packed data's format (see `kdbudget.data.storage.PackedSplit.batch`)."""
    rng = np.random.default_rng(seed)
    spec = MaskingSpec(mask_prob=PREDICTIONS / SEQ_LEN, max_predictions=PREDICTIONS, mask_id=MASK,
                       vocab_size=vocab, special_ids=(PAD, UNK, CLS, SEP, MASK))
    batches = []
    for _ in range(count):
        lengths = np.where(rng.random(rows) < SHORT_FRACTION, rng.integers(10, SEQ_LEN, rows), SEQ_LEN)
        ids = rng.integers(MASK + 1, vocab, (rows, SEQ_LEN))
        ids[:, 0] = CLS
        ids[np.arange(rows), lengths - 1] = SEP
        ids[np.arange(SEQ_LEN)[None, :] >= lengths[:, None]] = PAD
        masked = mask_batch(ids, lengths, spec, rng)
        labels = np.full(ids.shape, IGNORE_INDEX, dtype=np.int64)
        used = masked.positions > 0
        row_of = np.broadcast_to(np.arange(rows)[:, None], used.shape)
        labels[row_of[used], masked.positions[used]] = masked.labels[used]
        attention_mask = (np.arange(SEQ_LEN)[None, :] < lengths[:, None]).astype(np.int64)
        batches.append({"input_ids": torch.from_numpy(masked.input_ids.astype(np.int64)),
                        "attention_mask": torch.from_numpy(attention_mask), "labels": torch.from_numpy(labels)})
    return batches


class SimulatedOOM(torch.OutOfMemoryError):
    """Raised by --oom-above, so that the halving runs on a CPU too."""


def measure(case: Case, shapes: dict, device: torch.device, args: argparse.Namespace, micro: int) -> dict[str, Any]:
    """One (shape, strategy, compile) at one micro-batch size; raises OutOfMemoryError if it does not fit."""
    if args.oom_above and micro > args.oom_above:
        raise SimulatedOOM(f"simulated: micro-batch {micro} > {args.oom_above}")
    shape = shapes[case.shape]
    torch.manual_seed(0)
    student_config = bert_config(*shape["student"], shape["vocab"])
    teacher_config = bert_config(*shape["teacher"], shape["vocab"])
    strategy = build_strategy(case.strategy, student_config, teacher_config)
    amp_dtype = autocast_dtype(device, args.precision)
    with torch.device(device):  # initialise on the device: BERT-large's init on the host takes seconds
        student = KDBertForMaskedLM(student_config).train()
        teacher = None
        if strategy.teacher_needs is not None:
            teacher = KDBertForMaskedLM(teacher_config).requires_grad_(False)
            teacher.to(resolve_teacher_dtype("auto", device, amp_dtype))
    strategy.to(device)
    optimizer = build_optimizer([student, strategy], lr=1e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01,
                                fused=fused_adamw(device))
    compiled = CompiledLayers([student, teacher], args.compile_backend) if case.compile else None
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    parts = StepParts(student, teacher, strategy, optimizer, scaler, autocast_context(device, amp_dtype), device,
                      World(), compiled)
    accumulation = max(1, args.batch_size // micro)
    batches = make_batches(min(accumulation, 4), micro, shape["vocab"])
    masked_per_seq = float(np.mean([(b["labels"] != IGNORE_INDEX).sum(1).float().mean() for b in batches]))
    clock = StepClock(device)

    def step() -> float:
        clock.start()
        train_step(parts, (batches[i % len(batches)] for i in range(accumulation)), accumulation)
        return clock.stop()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(args.warmup):
        step()
    warmup_seconds = time.perf_counter() - started
    seconds = [step() for _ in range(args.steps)]
    tokens = accumulation * micro * SEQ_LEN
    flops = train_step_flops(student_config, teacher_config, strategy, accumulation * micro, SEQ_LEN, masked_per_seq)
    nokd_flops = train_step_flops(student_config, None, "nokd", accumulation * micro, SEQ_LEN, masked_per_seq)
    median = statistics.median(seconds)
    peak = peak_flops(device)
    row = {
        "shape": case.shape, "strategy": case.strategy, "compile": case.compile,
        "compile_active": bool(compiled and compiled.active), "compile_error": compiled.error if compiled else None,
        "student": dict(zip(("layers", "hidden", "heads", "intermediate"), shape["student"], strict=True)),
        "teacher": (dict(zip(("layers", "hidden", "heads", "intermediate"), shape["teacher"], strict=True))
                    if teacher is not None else None),
        "vocab": shape["vocab"], "seq_len": SEQ_LEN, "masked_per_seq": masked_per_seq,
        "micro_batch": micro, "accumulation": accumulation, "tokens_per_step": tokens,
        "precision": str(amp_dtype or torch.float32),
        "teacher_dtype": str(next(teacher.parameters()).dtype) if teacher is not None else None,
        "fused_adamw": fused_adamw(device),
        "step_seconds": seconds, "tokens_per_second": tokens / median,
        "tokens_per_second_min": tokens / max(seconds), "tokens_per_second_max": tokens / min(seconds),
        "flops_per_step": flops, "mfu": mfu(flops, median, peak),
        "ideal_ratio": flops / nokd_flops, "cost_ratio": None,
        "peak_memory_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
        "warmup_seconds": warmup_seconds,
    }
    return row


def release(device: torch.device) -> None:
    """Give the last case's memory back before the next one (a GPU's: the host's needs no help)."""
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()


def run_case(case: Case, shapes: dict, device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    """The case at the largest power-of-two micro-batch <= --max-micro-batch that fits."""
    micro = args.max_micro_batch
    while True:
        torch._dynamo.reset()  # compile each case afresh (inductor's on-disk caches keep this fast)
        try:
            return measure(case, shapes, device, args, micro)
        except torch.OutOfMemoryError as error:
            print(f"#   {case.shape} {case.strategy} compile={case.compile}: micro-batch {micro} does not fit "
                  f"({str(error).splitlines()[0][:120]})", file=sys.stderr, flush=True)
            if micro == 1:
                raise
            micro //= 2
        finally:
            release(device)  # after the except clause: its traceback no longer holds the case's tensors


def fill_ratios(rows: list[dict[str, Any]]) -> None:
    """KD/No-KD cost: the No-KD row's tokens/s over this row's (same shape and compile setting)."""
    for row in rows:
        nokd = next((r for r in rows if r["strategy"] == "nokd" and r["shape"] == row["shape"]
                     and r["compile"] == row["compile"]), None)
        if nokd is not None:
            row["cost_ratio"] = nokd["tokens_per_second"] / row["tokens_per_second"]


def format_table(rows: list[dict[str, Any]]) -> str:
    def number(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = []
    for r in rows:
        excess = None if r["cost_ratio"] is None else r["cost_ratio"] / r["ideal_ratio"] - 1
        compile_ = ("on" if r["compile_active"] else "failed") if r["compile"] else "off"
        lines.append((r["shape"], r["strategy"], compile_, str(r["micro_batch"]), f"{r['tokens_per_second']:.0f}",
                      f"{r['tokens_per_second_min']:.0f}-{r['tokens_per_second_max']:.0f}",
                      number(r["mfu"] and 100 * r["mfu"], ".1f") + ("%" if r["mfu"] else ""),
                      number(r["cost_ratio"], ".2f"), f"{r['ideal_ratio']:.2f}",
                      "-" if excess is None else f"{100 * excess:+.0f}%",
                      number(r["peak_memory_bytes"] and r["peak_memory_bytes"] / 2**30, ".1f"),
                      f"{r['warmup_seconds']:.1f}"))
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(COLUMNS)]
    text = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                      for i, (c, w) in enumerate(zip(COLUMNS, widths, strict=True)))]
    for line in lines:
        text.append("  ".join(v.ljust(w) if i < 3 else v.rjust(w)
                              for i, (v, w) in enumerate(zip(line, widths, strict=True))))
    return "\n".join(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true", help="paper6, nokd and vanillakd, compile off (~1 min)")
    parser.add_argument("--tiny", action="store_true", help="tiny stand-ins of the shapes (for a CPU)")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated: " + ", ".join(SHAPES))
    parser.add_argument("--strategies", default=",".join(REGISTRY), help="comma-separated (nokd is always run first)")
    parser.add_argument("--compile", default="off,on", help="off, on or off,on")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend (aot_eager for tests)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    parser.add_argument("--batch-size", type=int, default=1024, help="sequences per optimizer step (the paper's)")
    parser.add_argument("--max-micro-batch", type=int, default=256, help="the largest micro-batch tried")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation happens here)")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per case")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of torch (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=None, help="write gpu_throughput.txt and .json here")
    parser.add_argument("--oom-above", type=int, default=0, help=argparse.SUPPRESS)  # tests: simulated OOM
    args = parser.parse_args(argv)
    if args.quick:
        args.shapes, args.strategies, args.compile = "paper6", "nokd,vanillakd", "off"
    if args.max_micro_batch & (args.max_micro_batch - 1):
        parser.error("--max-micro-batch must be a power of two")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device visible (use --device cpu --tiny to run the code path on a CPU)", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = TINY if args.tiny else SHAPES
    names = [s for s in args.strategies.split(",") if s]
    strategies = ["nokd"] + [s for s in names if s != "nokd"]  # No-KD first: every ratio needs it
    unknown = [s for s in strategies if s not in REGISTRY] + [s for s in args.shapes.split(",") if s not in shapes]
    if unknown:
        print(f"unknown shape or strategy: {unknown}", file=sys.stderr)
        return 2
    compile_settings = [{"off": False, "on": True}[c] for c in args.compile.split(",")]
    cases = [Case(shape, strategy, compiled) for shape in args.shapes.split(",") for compiled in compile_settings
             for strategy in strategies]

    name = device_name(device)
    peak = peak_flops(device)
    header = (f"# {name}, peak {'unknown' if peak is None else f'{peak / 1e12:.0f} TFLOP/s dense bf16'}; torch "
              f"{torch.__version__}, CUDA {torch.version.cuda or '-'}, Python {platform.python_version()}\n"
              f"# sequence {SEQ_LEN}, {PREDICTIONS} predictions per full sequence, {SHORT_FRACTION:.0%} short; "
              f"batch {args.batch_size}, precision {args.precision}, {args.warmup} warm-up + {args.steps} timed steps"
              f"{', tiny shapes' if args.tiny else ''}")
    print(header, flush=True)
    started = time.perf_counter()
    rows = []
    for case in cases:
        row = run_case(case, shapes, device, args)
        rows.append(row)
        print(f"#   {time.perf_counter() - started:6.0f} s  {case.shape} {case.strategy} compile={case.compile}: "
              f"{row['tokens_per_second']:.0f} tok/s, micro-batch {row['micro_batch']}", file=sys.stderr, flush=True)
    fill_ratios(rows)
    table = format_table(rows)
    elapsed = time.perf_counter() - started
    footer = (f"# {elapsed:.0f} s; KD/NoKD = No-KD tok/s / this tok/s (same shape and compile); "
              "excess = KD/NoKD / ideal - 1")
    print(table)
    print(footer, flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_throughput.txt").write_text(f"{header}\n{table}\n{footer}\n", encoding="utf-8")
        report = {"device": name, "peak_flops": peak, "torch": torch.__version__, "cuda": torch.version.cuda,
                  "git_commit": git_commit(), "host": platform.node(), "cpus": os.cpu_count(),
                  "tiny": args.tiny, "seq_len": SEQ_LEN, "batch_size": args.batch_size, "precision": args.precision,
                  "seconds": elapsed, "rows": rows}
        (args.out / "gpu_throughput.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
