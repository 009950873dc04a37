"""One optimizer step of pretraining: the code the trainer runs and the GPU
benchmark times (``benchmarks/gpu_throughput.py``), so the numbers it prints
are the trainer's.

A step is ``accumulation`` micro-batches, each a forward pass of the student
(and the teacher, as far as the strategy asks), the strategy's loss and a
backward pass, then one AdamW update (with the fp16 loss scaler where it is
on), averaged over data-parallel processes. Nothing in it waits for the
device (bf16 and fp32; fp16's loss scaler reads its inf check on the host):
host batches are pinned and their predicted positions counted on the host
(``kdbudget.train.speed.to_device``), and the caller's clock
(``kdbudget.train.clock``) waits, once per step.

With compiled layers, a step that fails while they are still active (a
compiler failure that surfaces in the backward pass, which the forward's
own fallback cannot see) is taken again eagerly from the same micro-batches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import nn

from kdbudget.strategies import Strategy, teacher_forward
from kdbudget.train.distributed import World, average_gradients
from kdbudget.train.speed import CompiledLayers, to_device

log = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]


@dataclass
class StepParts:
    """What a step touches: the models, the optimizer and how they run."""

    student: nn.Module
    teacher: nn.Module | None
    strategy: Strategy
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    autocast: Callable[[], AbstractContextManager]
    device: torch.device
    world: World
    compiled: CompiledLayers | None = None  # None: eager

    def __post_init__(self) -> None:
        self.trained = [p for module in (self.student, self.strategy) for p in module.parameters() if p.requires_grad]


def train_step(parts: StepParts, micro_batches: Iterable[Batch], accumulation: int) -> dict[str, torch.Tensor]:
    """Take one optimizer step over ``accumulation`` micro-batches (this process's slices, on the
    host, or already on the device where the trainer read them ahead: ``kdbudget.train.prefetch``);
    returns each loss component averaged over them, as device tensors (no sync)."""
    if parts.compiled is None or not parts.compiled.active:
        return _step(parts, iter(micro_batches), accumulation)
    batches = list(micro_batches)  # host tensors already read: kept for an eager retry
    try:
        return _step(parts, iter(batches), accumulation)
    except torch.OutOfMemoryError:
        raise
    except Exception as error:
        if not parts.compiled.active:
            raise  # the forward already fell back: this failure is not the compiler's
        parts.compiled.fall_back(error)
        parts.optimizer.zero_grad(set_to_none=True)  # drop what the failed attempt accumulated
        log.warning("retrying the step without compilation")
        return _step(parts, iter(batches), accumulation)


def _step(parts: StepParts, micro_batches: Iterator[Batch], accumulation: int) -> dict[str, torch.Tensor]:
    components: dict[str, torch.Tensor] = {}
    for _ in range(accumulation):
        batch = to_device(next(micro_batches), parts.device)
        with parts.autocast():
            student_out = parts.student(batch["input_ids"], attention_mask=batch["attention_mask"],
                                        labels=batch["labels"], request=parts.strategy.student_needs,
                                        masked_index=batch["masked_index"])
            teacher_out = teacher_forward(parts.teacher, batch, parts.strategy.teacher_needs, parts.strategy.fidelity)
        losses = parts.strategy(student_out, teacher_out, batch)
        parts.scaler.scale(losses["loss"] / accumulation).backward()
        for key, value in losses.items():
            components[key] = components.get(key, 0.0) + value.detach() / accumulation
    if parts.scaler.is_enabled():
        parts.scaler.unscale_(parts.optimizer)  # average true gradients, so an inf reaches every process
    average_gradients(parts.trained, parts.world)
    parts.scaler.step(parts.optimizer)
    parts.scaler.update()
    parts.optimizer.zero_grad(set_to_none=True)
    return components
