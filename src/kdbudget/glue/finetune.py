"""Fine-tune one pretrained model directory on one GLUE task with one grid cell.

The parts, one module each: the model (`classifier`: transformers' sequence
classifier with a fresh, seeded head), tokenization (`encode`), batch order
(`batches`), the loop (`loop`: AdamW and the linear schedule shared with
pretraining), evaluation (`evaluate`) and metrics (`metrics`). This module
checks the arguments, wires them together and writes the result.

- One optimizer setting for every model, passed in: AdamW (no weight decay on
  biases and LayerNorm), learning rate warmed up linearly over the first
  ``warmup`` fraction of the steps, then decayed linearly to 0.
- bf16 autocast on a GPU (fp16 with loss scaling on older ones).
- Determinism: the head's init, dropout and batch order follow ``seed``; on a
  CPU, equal inputs give equal results.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdbudget.data.tokenizer import load_tokenizer
from kdbudget.glue.batches import epoch_plans
from kdbudget.glue.cells import cell_name
from kdbudget.glue.classifier import encoder_config, load_classifier, save_classifier
from kdbudget.glue.encode import encode
from kdbudget.glue.evaluate import predict
from kdbudget.glue.loader import DEFAULT_MAX_MALFORMED, load_task
from kdbudget.glue.loop import train_epochs
from kdbudget.glue.metrics import dev_metrics, nan_to_none
from kdbudget.glue.select import majority_baseline
from kdbudget.glue.tasks import GlueTask, get_task
from kdbudget.train.optim import build_optimizer
from kdbudget.train.runtime import (
    autocast_context,
    autocast_dtype,
    cpu_kernels,
    device_name,
    pick_device,
    set_threads,
    versions,
)
from kdbudget.train.speed import fused_adamw

log = logging.getLogger(__name__)


def _check_arguments(batch_size: int, lr: float, epochs: float, warmup: float, max_seq_len: int,
                     max_positions: int | None = None) -> None:
    if batch_size < 1 or not epochs > 0 or not lr > 0:
        raise ValueError(f"need batch_size >= 1, epochs > 0, lr > 0 (got {batch_size}, {epochs}, {lr})")
    if not 0.0 <= warmup < 1.0:
        raise ValueError(f"warmup is a fraction of the steps in [0, 1), got {warmup}")
    if max_positions is not None and max_seq_len > max_positions:
        raise ValueError(f"max_seq_len {max_seq_len} exceeds the model's {max_positions} positions")


def warmup_steps_of(warmup: float, total_steps: int) -> int:
    """Warmup steps for a fraction ``warmup`` of ``total_steps``: rounded up, and at least one step after the
    warmup (a one-step run with warmup would otherwise take its only step at learning rate 0)."""
    return min(math.ceil(warmup * total_steps), total_steps - 1)


def finetune(
    model_dir: str | Path,
    glue_dir: str | Path,
    task: str | GlueTask,
    *,
    batch_size: int,
    lr: float,
    epochs: float = 5,
    seed: int = 42,
    max_seq_len: int = 128,
    warmup: float = 0.06,
    weight_decay: float = 0.01,
    eps: float = 1e-6,
    betas: tuple[float, float] = (0.9, 0.999),
    max_grad_norm: float | None = 1.0,
    eval_batch_size: int = 128,
    precision: str = "auto",
    threads: int | None = None,
    device: str = "auto",
    gpus: int = 0,
    keep_weights_dir: str | Path | None = None,
    max_malformed_fraction: float = DEFAULT_MAX_MALFORMED,
) -> dict[str, Any]:
    """Fine-tune ``model_dir`` on ``task`` from ``glue_dir`` and score it on the dev set(s).

    ``warmup`` is a fraction of all optimizer steps; ``epochs`` may be
    fractional (the last epoch is cut short). The fine-tuned model is saved
    (`save_pretrained`: a `BertForSequenceClassification`, or a
    `RobertaPreLayerNormForSequenceClassification` for a pre-LN model) only to
    ``keep_weights_dir``. ``gpus`` is how many GPUs the job asked for: with
    any, ``device: auto`` refuses to fall back to the CPU. Returns a JSON-ready dict:

    task, model (the directory), model_name, batch_size, lr, seed, epochs,
    max_seq_len, optimizer (betas, eps, weight_decay, max_grad_norm,
    schedule, warmup, warmup_steps);
    dev: every metric (`metrics.metric_key` names; null when undefined) and
    main; dev_examples per split; majority_baseline (same keys, plus the
    prediction); train_loss (mean over the last epoch's examples) and
    epoch_losses; train_examples, train_steps, examples_per_second (training
    only), train_seconds, eval_seconds, seconds (the whole call); malformed
    (skipped lines per file); device, precision, parameters, versions; and
    weights when kept.
    """
    started = time.perf_counter()
    task = get_task(task)
    model_dir = Path(model_dir)
    _check_arguments(batch_size, lr, epochs, warmup, max_seq_len)
    set_threads(threads)
    device_ = pick_device(device, gpus)  # a job that asked for GPUs must see one
    hardware = device_name(device_)

    data = load_task(glue_dir, task, max_malformed_fraction=max_malformed_fraction)
    tokenizer = load_tokenizer(model_dir)
    config = encoder_config(model_dir)  # our view: a pre-LN model's positions without RoBERTa's offset
    _check_arguments(batch_size, lr, epochs, warmup, max_seq_len, config.max_position_embeddings)
    if len(tokenizer) > config.vocab_size:
        raise ValueError(f"{model_dir}: the tokenizer has {len(tokenizer)} tokens, the model "
                         f"{config.vocab_size} embeddings")
    train = encode(tokenizer, data.train, task, max_seq_len)
    dev = {split: encode(tokenizer, examples, task, max_seq_len) for split, examples in data.dev.items()}

    model = load_classifier(model_dir, task, seed).to(device_)
    fused = fused_adamw(device_)
    optimizer = build_optimizer([model], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=fused,
                                foreach=not fused)
    amp_dtype = autocast_dtype(device_, precision)
    autocast = autocast_context(device_, amp_dtype)
    scaler = torch.amp.GradScaler(device_.type, enabled=amp_dtype == torch.float16)
    rng = np.random.default_rng(seed)
    plans = epoch_plans(train.lengths, batch_size, epochs, rng)
    total_steps = sum(len(plan) for plan in plans)
    warmup_steps = warmup_steps_of(warmup, total_steps)
    log.info("%s on %s (%s): %d train examples, %d steps (%d warmup), batch %d, lr %g, %s on %s", model_dir.name,
             task.title, glue_dir, len(train), total_steps, warmup_steps, batch_size, lr,
             amp_dtype or "fp32", hardware)

    desc = f"{task.name} {cell_name(batch_size, lr, seed)}"  # the cell as kdbudget.glue.cells spells it
    train_started = time.perf_counter()
    epoch_losses = train_epochs(model, train, plans, optimizer, scaler, autocast, device_, lr=lr,
                                warmup_steps=warmup_steps, max_grad_norm=max_grad_norm, desc=desc)
    train_seconds = time.perf_counter() - train_started
    if not math.isfinite(epoch_losses[-1]):
        log.warning("%s: the training loss is not finite (%s)", desc, epoch_losses[-1])

    eval_started = time.perf_counter()
    predictions = {split: predict(model, encoded, eval_batch_size, device_, autocast) for split, encoded in dev.items()}
    metrics = dev_metrics(task, {split: (predictions[split], dev[split].labels) for split in dev})
    eval_seconds = time.perf_counter() - eval_started
    baseline = majority_baseline(task, train.labels.tolist(), {split: d.labels.tolist() for split, d in dev.items()})

    result = {
        "task": task.name, "model": str(model_dir), "model_name": model_dir.name, "batch_size": batch_size,
        "lr": lr, "seed": seed, "epochs": epochs, "max_seq_len": max_seq_len,
        "optimizer": {"name": "AdamW", "betas": list(betas), "eps": eps, "weight_decay": weight_decay,
                      "max_grad_norm": max_grad_norm, "schedule": "linear", "warmup": warmup,
                      "warmup_steps": warmup_steps},
        "dev": nan_to_none(metrics),
        # One label (or value) for every dev example: a collapsed run, flagged by the summary, not averaged away.
        "constant_prediction": any(len(np.unique(p)) <= 1 for p in predictions.values()),
        "dev_examples": {split: len(d) for split, d in dev.items()},
        "majority_baseline": baseline,
        "train_loss": epoch_losses[-1] if math.isfinite(epoch_losses[-1]) else None,
        "epoch_losses": [x if math.isfinite(x) else None for x in epoch_losses],
        "train_examples": len(train), "train_steps": total_steps,
        "examples_per_second": sum(len(index) for plan in plans for index in plan) / train_seconds,
        "train_seconds": train_seconds, "eval_seconds": eval_seconds, "seconds": time.perf_counter() - started,
        "malformed": data.malformed, "device": hardware, "cpu_kernels": cpu_kernels(),
        "precision": str(amp_dtype or torch.float32),
        "parameters": sum(p.numel() for p in model.parameters()), "versions": versions(),
    }
    if keep_weights_dir is not None:
        save_classifier(model, model_dir, keep_weights_dir, result)
        result["weights"] = str(keep_weights_dir)
    log.info("%s: dev %s (majority %s), %.0f examples/s, %.0f s", desc,
             result["dev"], baseline["main"], result["examples_per_second"], result["seconds"])
    return result
