"""Speed switches of a pretraining step (``pretrain.compile``, ``compile_backend``,
``teacher_dtype``; fused AdamW and pinned host batches on CUDA; reading ahead, ``prefetch``, is
``kdbudget.train.prefetch``).

None of them changes what a step computes beyond floating-point rounding, and
each applies to every arm of a comparison alike: the student of every arm is
compiled, and every teacher is held in the same dtype.

Compilation is regional: each encoder layer runs through one compiled
function (``kdbudget.model.bert.run_layer``), which every layer of a width
reuses, so compiling costs seconds rather than the minutes a whole-model graph
takes, and embeddings, the sparse MLM head and the losses stay eager.
``torch.compile`` is lazy: it compiles at the first call, so a failure (no C
compiler, an unsupported op, a Triton problem) surfaces inside the first step.
Such a failure falls back to eager for the rest of the run with a warning
instead of ending a job that would train fine without compilation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from kdbudget.model.bert import masked_positions, run_layer

log = logging.getLogger(__name__)

COMPILE_SETTINGS = ("auto", True, False)
TEACHER_DTYPES = ("auto", "fp32", "bf16")
# Dynamo keeps at most this many compiled variants of one function (student and teacher, train and
# eval, layers with and without requested internals); past its default of 8 it would silently run
# the rest eagerly.
RECOMPILE_LIMIT = 64


def resolve_compile(setting: bool | str, device: torch.device) -> bool:
    """``auto``: compile on CUDA only (on a CPU, compiling takes longer than a short run saves)."""
    if setting not in COMPILE_SETTINGS:
        raise ValueError(f"compile must be one of {COMPILE_SETTINGS}, got {setting!r}")
    return device.type == "cuda" if setting == "auto" else bool(setting)


def resolve_teacher_dtype(setting: str, device: torch.device, amp_dtype: torch.dtype | None) -> torch.dtype:
    """The dtype the teacher's weights are held in.

    ``auto``: bf16 on CUDA when the step runs under bf16 autocast (the teacher's matrix products are
    bf16 anyway; bf16 weights skip the cast autocast would redo at every call, since the teacher's
    weights need no gradient and autocast caches casts only for those that do), else fp32.
    ``bf16`` needs bf16 autocast: outside it the fp32 attention mask and bf16 activations would meet
    in one matrix product.
    """
    if setting not in TEACHER_DTYPES:
        raise ValueError(f"teacher_dtype must be one of {TEACHER_DTYPES}, got {setting!r}")
    if setting == "auto":
        return torch.bfloat16 if device.type == "cuda" and amp_dtype == torch.bfloat16 else torch.float32
    if setting == "bf16" and amp_dtype != torch.bfloat16:
        raise ValueError(f"teacher_dtype bf16 needs bf16 autocast (precision bf16, or auto on a GPU with bf16), "
                         f"but this run computes in {amp_dtype or torch.float32}")
    return torch.bfloat16 if setting == "bf16" else torch.float32


def fused_adamw(device: torch.device) -> bool:
    """Fused AdamW (one kernel for every parameter) where the parameters live on CUDA; on a CPU
    the default implementation is kept (the suite's and the demo's numbers were measured with it)."""
    return torch.device(device).type == "cuda"


def pin(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """Host tensors in page-locked memory when they go to a GPU, else unchanged.

    From pageable memory a host-to-device copy first waits for the GPU's queue to drain, so the
    host would stop at every micro-batch; from pinned memory ``non_blocking=True`` only enqueues it.
    """
    if torch.device(device).type != "cuda":
        return batch
    return {key: value.pin_memory() for key, value in batch.items()}


def prepare(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """A host micro-batch ready to go to ``device``: with ``masked_index`` (the predicted positions, counted
    on the host, where that costs no device sync: see ``KDBertForMaskedLM.forward``), pinned for a GPU."""
    return pin({**batch, "masked_index": masked_positions(batch["labels"])}, device)


def to_device(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """A micro-batch on ``device``; a host batch is prepared first unless it already was (it has
    ``masked_index``: read ahead, ``kdbudget.train.prefetch``), and one already there is returned as it is."""
    if "masked_index" not in batch:
        batch = prepare(batch, device)
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


class CompiledLayers:
    """The encoder layers of ``models`` (KDBertForMaskedLM or None) run compiled, until a failure.

    ``active`` is False once compilation failed (``error`` says how); every model then runs eagerly.
    A model without our BERT encoder (the MobileBERT student, transformers' own blocks) runs eagerly
    and is named under ``eager`` in ``describe()``: a disadvantage to that arm under a wall-clock budget.
    """

    def __init__(self, models: Iterable[nn.Module | None], backend: str = "inductor") -> None:
        models = [model for model in models if model is not None]
        self.models = [model for model in models if hasattr(model, "bert")]
        self.eager = [type(model).__name__ for model in models if not hasattr(model, "bert")]
        if self.eager:
            log.warning("torch.compile: %s run eagerly (only our BERT's layers are compiled)", self.eager)
        self.backend = backend
        self.active = True
        self.error: str | None = None
        raise_recompile_limit(RECOMPILE_LIMIT)
        # dynamic=False: a run's shapes are fixed (micro-batch x sequence length), and static shapes
        # give the best kernels; another batch size (the last evaluation batch) is compiled anew.
        compiled = torch.compile(run_layer, backend=backend, dynamic=False)
        for model in self.models:
            model.bert.encoder.layer_call = self._guarded(compiled)

    def _guarded(self, compiled: Callable) -> Callable:
        def call(*args: Any) -> Any:
            if self.active:
                try:
                    return compiled(*args)
                except torch.OutOfMemoryError:
                    raise  # not a compilation problem: eager would run out of memory too
                except Exception as error:  # noqa: BLE001 - any compiler failure, see fall_back
                    self.fall_back(error)
            return run_layer(*args)

        return call

    def fall_back(self, error: BaseException) -> None:
        """Run every model eagerly from now on, with a warning naming the failure."""
        if not self.active:
            return
        self.active = False
        self.error = f"{type(error).__name__}: {error}".splitlines()[0][:500]
        log.warning("torch.compile (backend %s) failed, continuing without compilation: %s", self.backend,
                    self.error)
        for model in self.models:
            model.bert.encoder.layer_call = run_layer

    def describe(self) -> dict[str, Any]:
        described = {"enabled": True, "backend": self.backend, "active": self.active, "error": self.error}
        return {**described, "eager": self.eager} if self.eager else described


def raise_recompile_limit(limit: int) -> None:
    """At least ``limit`` compiled variants per function (the setting's name changed in torch 2.6)."""
    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(config, name) and getattr(config, name) < limit:
            setattr(config, name, limit)
            return
