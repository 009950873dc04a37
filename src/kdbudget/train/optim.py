"""AdamW as the paper's pretraining uses it: weight decay on weight matrices
and embeddings, none on biases and LayerNorm parameters."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def no_decay(name: str, param: nn.Parameter) -> bool:
    return name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name or param.dim() < 2


def build_optimizer(
    modules: Iterable[nn.Module], *, lr: float, betas: tuple[float, float], eps: float, weight_decay: float,
    fused: bool = False,
) -> torch.optim.AdamW:
    """One AdamW over the trainable parameters of ``modules`` (student, strategy projections).

    ``fused``: one kernel for the whole update (``kdbudget.train.speed.fused_adamw`` decides: on
    CUDA); otherwise torch's default implementation. The arithmetic is AdamW's either way."""
    decay, plain, seen = [], [], set()
    for module in modules:
        for name, param in module.named_parameters():
            if not param.requires_grad or id(param) in seen:
                continue  # tied weights appear once
            seen.add(id(param))
            (plain if no_decay(name, param) else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas, eps=eps, fused=fused or None)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
