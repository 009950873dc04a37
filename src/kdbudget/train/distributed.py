"""Data parallelism for one pretraining job (torchrun, one process per GPU).

Every process reads the same global micro-batch from the stream and trains on
its own slice, so N processes with accumulation A see exactly the sequences
one process sees with accumulation N x A: the same global batch, the same
weights up to float rounding. Gradients are averaged once per optimizer step
in one flat all-reduce (no sync on the other micro-steps). Everything a
budget decision depends on (step time, stop signals, checkpoint due) is
agreed across processes, so the budget is spent once for the job, and only
rank 0 writes metrics, checkpoints and outputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group torchrun describes in the environment (if any)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), device
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return world, device


def close_world(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def average_gradients(parameters, world: World) -> None:
    """Average the gradients of ``parameters`` over the processes in one all-reduce."""
    if not world.distributed:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def agree_max(values: list[float], world: World, device: torch.device) -> list[float]:
    """The element-wise maximum over processes (step time, stop signal, checkpoint due)."""
    if not world.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.tolist()


def agree_mean(values: dict[str, torch.Tensor], world: World) -> dict[str, torch.Tensor]:
    """Loss components averaged over processes (for logging)."""
    if not world.distributed or not values:
        return values
    keys = sorted(values)
    stacked = torch.stack([values[k].float() for k in keys])
    dist.all_reduce(stacked)
    return dict(zip(keys, stacked / world.size, strict=True))


def gather_objects(obj, world: World) -> list:
    if not world.distributed:
        return [obj]
    out = [None] * world.size
    dist.all_gather_object(out, obj)
    return out
