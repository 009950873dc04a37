"""The optimizer and the learning-rate schedule of every training run: pretraining and GLUE fine-tuning.

- AdamW with weight decay on weight matrices and embeddings, none on biases
  and LayerNorm parameters (the paper's pretraining; BERT's fine-tuning).
- A linear warmup to the peak, then a linear decay to 0 at the end of the run
  (HF's linear schedule, "polynomial" with power 1). Its progress is in any
  unit: pretraining measures it as the fraction of the budget spent (total 1),
  fine-tuning in optimizer steps. The paper's pretraining code computes the
  same curve from elapsed hours but clamps the decay denominator at one hour,
  which makes short budgets drop discontinuously; here the curve depends on
  the fraction only, so any budget length gives the same shape.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def no_decay(name: str, param: nn.Parameter) -> bool:
    return name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name or param.dim() < 2


def build_optimizer(
    modules: Iterable[nn.Module], *, lr: float, betas: tuple[float, float], eps: float, weight_decay: float,
    fused: bool = False, foreach: bool | None = None,
) -> torch.optim.AdamW:
    """One AdamW over the trainable parameters of ``modules`` (a student and its strategy's projections, or a
    classifier).

    ``fused``: one kernel for the whole update (``kdbudget.train.speed.fused_adamw`` decides: on
    CUDA); ``foreach``: one multi-tensor operation per step of the update instead of a loop over the
    parameters (fine-tuning asks for it on a CPU, where it halves the optimizer's time for a demo-size
    model); neither: torch's default implementation. The arithmetic is AdamW's either way."""
    decay, plain, seen = [], [], set()
    for module in modules:
        for name, param in module.named_parameters():
            if not param.requires_grad or id(param) in seen:
                continue  # tied weights appear once
            seen.add(id(param))
            (plain if no_decay(name, param) else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas, eps=eps, fused=fused or None,
                             foreach=foreach)


def lr_multiplier(done: float, *, total: float, warmup: float) -> float:
    """Multiplier of the peak learning rate after ``done`` of ``total``, warming up over the first ``warmup``
    (all three in one unit: a fraction of the budget with ``total=1``, or optimizer steps).

    ``done / warmup`` during the warmup, then ``(total - done) / (total - warmup)``; 0 from ``total`` on."""
    if not total > 0:
        raise ValueError(f"total must be positive, got {total}")
    if not 0.0 <= warmup < total:
        raise ValueError(f"warmup must be in [0, {total:g}), got {warmup}")
    done = min(max(done, 0.0), total)
    if done < warmup:
        return done / warmup
    return max(0.0, (total - done) / (total - warmup))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
