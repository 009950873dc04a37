"""Command line: fine-tune one grid cell, summarise a model's grid, or write the hub copy of GLUE.

    python -m kdbudget.glue finetune --model DIR --glue DIR --task T --batch-size B --lr LR --out result.json
    python -m kdbudget.glue summarize --model NAME --results R.json ... --out summary.json [--table summary.md]
    python -m kdbudget.glue download --out DIR        (needs the network)
"""

from __future__ import annotations

import argparse
import logging
from collections import defaultdict
from pathlib import Path

from kdbudget.io import atomic_path, read_json, write_json
from kdbudget.log import setup_logging

log = logging.getLogger("kdbudget.glue")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kdbudget.glue", description=__doc__.splitlines()[0])
    parser.add_argument("--log", help="log file (default: stderr)")
    commands = parser.add_subparsers(dest="command", required=True)

    ft = commands.add_parser("finetune", help="fine-tune a model directory on one task with one grid cell")
    ft.add_argument("--model", required=True, help="pretrained model directory (with tokenizer)")
    ft.add_argument("--glue", required=True, help="GLUE data in the official layout")
    ft.add_argument("--task", required=True)
    ft.add_argument("--batch-size", type=int, required=True)
    ft.add_argument("--lr", type=float, required=True)
    ft.add_argument("--epochs", type=float, default=5, help="may be fractional")
    ft.add_argument("--seed", type=int, default=42)
    ft.add_argument("--max-seq-len", type=int, default=128)
    ft.add_argument("--warmup", type=float, default=0.06, help="fraction of the steps")
    ft.add_argument("--weight-decay", type=float, default=0.01)
    ft.add_argument("--eps", type=float, default=1e-6)
    ft.add_argument("--max-grad-norm", type=float, default=1.0, help="0 turns clipping off")
    ft.add_argument("--eval-batch-size", type=int, default=128)
    ft.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    ft.add_argument("--threads", type=int)
    ft.add_argument("--device", default="auto")
    ft.add_argument("--keep-weights", help="save the fine-tuned model here")
    ft.add_argument("--out", required=True, help="result JSON (written atomically)")

    sm = commands.add_parser("summarize", help="best-of-grid summary of one model's results")
    sm.add_argument("--model", required=True, help="the model's name in the summary")
    sm.add_argument("--results", nargs="+", required=True, help="finetune result JSON files")
    sm.add_argument("--batch-sizes", type=int, nargs="*", help="the grid (with --lrs): missing cells are errors")
    sm.add_argument("--lrs", type=float, nargs="*")
    sm.add_argument("--allow-missing", action="store_true")
    sm.add_argument("--out", required=True, help="summary JSON")
    sm.add_argument("--table", help="markdown table")

    dl = commands.add_parser("download", help="write nyu-mll/glue from the hub in the official layout")
    dl.add_argument("--out", required=True)
    dl.add_argument("--tasks", nargs="*")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log)
    try:
        if args.command == "finetune":
            from kdbudget.glue.finetune import finetune

            result = finetune(args.model, args.glue, args.task, batch_size=args.batch_size, lr=args.lr,
                              epochs=args.epochs, seed=args.seed, max_seq_len=args.max_seq_len, warmup=args.warmup,
                              weight_decay=args.weight_decay, eps=args.eps, max_grad_norm=args.max_grad_norm or None,
                              eval_batch_size=args.eval_batch_size, precision=args.precision, threads=args.threads,
                              device=args.device, keep_weights_dir=args.keep_weights)
            write_json(args.out, result)
        elif args.command == "summarize":
            from kdbudget.glue.select import render_table, summarize

            by_task: dict[str, list[dict]] = defaultdict(list)
            for path in args.results:
                result = read_json(path)
                by_task[result["task"]].append(result)
            grid = None
            if args.batch_sizes or args.lrs:
                if not (args.batch_sizes and args.lrs):
                    raise SystemExit("give both --batch-sizes and --lrs")
                grid = [(b, lr) for b in args.batch_sizes for lr in args.lrs]
            summary = summarize(args.model, by_task, expected=grid, allow_missing=args.allow_missing)
            write_json(args.out, summary)
            if args.table:
                with atomic_path(args.table) as tmp:
                    Path(tmp).write_text(render_table(summary), encoding="utf-8")
        else:
            from kdbudget.glue.loader import save_hub_glue

            save_hub_glue(args.out, tuple(args.tasks) if args.tasks else None)
    except Exception:
        log.exception("%s failed", args.command)
        raise
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
