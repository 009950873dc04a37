"""The fine-tuning loop: one optimizer step per planned batch.

AdamW and the linear warmup/decay schedule are pretraining's
(`kdbudget.train.optim`), over optimizer steps here; gradients are clipped
at ``max_grad_norm`` (1.0: the HF Trainer default both of the paper's code
bases ran with). The loss is computed here, not by the model: in fp32 under
autocast, MSE for one output (STS-B) and cross-entropy otherwise.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import PreTrainedModel

from kdbudget.glue.encode import Encoded
from kdbudget.log import progress
from kdbudget.train.optim import lr_multiplier, set_lr

log = logging.getLogger(__name__)


def glue_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """MSE for one output (regression), cross-entropy otherwise; in fp32."""
    if logits.shape[-1] == 1:
        return F.mse_loss(logits.float().squeeze(-1), labels.float())
    return F.cross_entropy(logits.float(), labels)


def train_epochs(model: PreTrainedModel, train: Encoded, plans: list[list[np.ndarray]],
                 optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, autocast, device: torch.device, *,
                 lr: float, warmup_steps: int, max_grad_norm: float | None, desc: str) -> list[float]:
    """Take one optimizer step per planned batch; returns each epoch's mean training loss per example."""
    model.train()
    total_steps = sum(len(plan) for plan in plans)
    step, epoch_losses = 0, []
    bar = progress(total=sum(len(index) for plan in plans for index in plan), desc=desc, unit="ex")
    for epoch, plan in enumerate(plans):
        epoch_started = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        for index in plan:
            set_lr(optimizer, lr * lr_multiplier(step, total=total_steps, warmup=warmup_steps))
            batch = train.batch(index, device)
            with autocast():
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                               token_type_ids=batch["token_type_ids"]).logits
            loss = glue_loss(logits, batch["labels"])
            scaler.scale(loss).backward()
            if max_grad_norm:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach() * len(index)
            step += 1
            bar.update(len(index))
            if step % 50 == 0:  # reading the loss waits for the GPU: not every step
                bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}",
                                refresh=False)  # the bar's own interval decides when to draw
        seen = sum(len(index) for index in plan)
        epoch_losses.append(float(loss_sum) / seen)
        log.info("%s epoch %d/%d: train loss %.4f, %.0f examples/s", desc, epoch + 1, len(plans), epoch_losses[-1],
                 seen / (time.perf_counter() - epoch_started))
    bar.close()
    return epoch_losses
