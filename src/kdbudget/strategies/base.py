"""The strategy interface, the teacher's forward pass, and shared loss pieces.

A strategy is an `nn.Module` (it may own learnable projections, which the
trainer puts into the optimizer). It declares what it needs from the student
and the teacher as `Request`s, so that the trainer computes nothing more, and
maps the two outputs and the batch to a dict of fp32 scalars: `"loss"` (the
total to back-propagate) and each named component.

Fidelity:
- "paper" (default): the formulas of the paper's section 2, with padding
  masked out of every term.
- "paper_code": the released code's quirks (notes/reference-code.md), each
  listed in the docstring of the strategy it affects; for every strategy with
  a teacher it also leaves teacher dropout on (`teacher_forward`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from transformers import BertConfig

from ..model.outputs import MASK_VALUE, MLMOutput, Request

FIDELITIES = ("paper", "paper_code")

Batch = Mapping[str, Tensor]


class Strategy(nn.Module):
    """Base class: validated fidelity, declared needs, losses in fp32."""

    name: ClassVar[str]
    student_needs: Request
    teacher_needs: Request | None

    def __init__(self, student_config: BertConfig, teacher_config: BertConfig | None, *, fidelity: str = "paper"):
        super().__init__()
        if fidelity not in FIDELITIES:
            raise ValueError(f"fidelity must be one of {FIDELITIES}, got {fidelity!r}")
        self.fidelity = fidelity
        self.student_config = student_config
        self.teacher_config = teacher_config

    @property
    def paper_code(self) -> bool:
        return self.fidelity == "paper_code"

    def forward(self, student_out: MLMOutput, teacher_out: MLMOutput | None, batch: Batch) -> dict[str, Tensor]:
        """The loss components and their total under `"loss"`, all fp32 scalars.

        Autocast is switched off here, so a loss is computed in fp32 even when
        the models ran under bf16/fp16 autocast.
        """
        device_type = batch["input_ids"].device.type
        with torch.autocast(device_type=device_type, enabled=False):
            losses = self.compute(student_out, teacher_out, batch)
        bad = [k for k, v in losses.items() if v.dtype != torch.float32 or v.dim() != 0]
        if "loss" not in losses or bad:
            raise TypeError(f"{self.name}: losses must include 'loss' and be fp32 scalars (bad: {bad})")
        return losses

    def compute(self, student_out: MLMOutput, teacher_out: MLMOutput | None, batch: Batch) -> dict[str, Tensor]:
        raise NotImplementedError

    def init_student(self, student: nn.Module, teacher: nn.Module | None) -> dict[str, Any] | None:
        """Set the student's weights from the teacher before training; None when the strategy does not.

        The trainer calls it once, on a fresh run only (a resumed run's checkpoint holds the weights), and
        records what it returns in ``summary.json`` (``student_init``): the copy costs no budget, but it
        is something the teacher gave this arm. Default: nothing (the student keeps its random init).
        """
        return None

    def begin_step(self, fraction: float, student: nn.Module) -> None:
        """Called by the trainer before every optimizer step with the fraction of the budget spent (0..1).

        A strategy that trains in stages (mobilebert's progressive schedule) switches stage here: its
        requests, and which student parameters train. The budget and its count are the trainer's alone.
        """

    def schedule_fraction(self, fraction: float) -> float:
        """The point of the learning-rate curve (warmup, then linear decay) at budget ``fraction``: the
        fraction itself, unless the strategy restarts the curve in each of its stages."""
        return fraction

    def extra_flops_per_token(self, seq_len: int) -> float:
        """Matrix-product FLOPs per token of the loss itself (projections, relations),
        forward and backward; the models' own passes are counted in `model.flops`."""
        return 0.0


def require_teacher(name: str, teacher_config: BertConfig | None) -> BertConfig:
    if teacher_config is None:
        raise ValueError(f"strategy {name!r} needs a teacher config")
    return teacher_config


def teacher_forward(
    teacher: nn.Module, batch: Batch, needs: Request | None, fidelity: str = "paper"
) -> MLMOutput | None:
    """Run the teacher as a strategy needs it, without building a graph.

    Default: eval mode (no dropout) under `torch.inference_mode()`.
    `paper_code`: train mode, so teacher dropout stays on as in the released
    code (still no gradient). The outputs are cloned out of inference mode,
    because autograd refuses to save inference tensors for the student's
    backward pass (e.g. the target of an MSE). A batch's ``masked_index``
    (see `KDBertForMaskedLM.forward`) is passed on when logits are needed.
    """
    if needs is None:
        return None
    if fidelity not in FIDELITIES:
        raise ValueError(f"fidelity must be one of {FIDELITIES}, got {fidelity!r}")
    teacher.train(fidelity == "paper_code")
    with torch.inference_mode():
        out = teacher(
            batch["input_ids"],
            attention_mask=batch.get("attention_mask"),
            labels=batch["labels"] if needs.logits else None,
            token_type_ids=batch.get("token_type_ids"),
            request=needs,
            masked_index=batch.get("masked_index") if needs.logits else None,
        )
    return _clone_out_of_inference(out)


def _clone_out_of_inference(value):
    if isinstance(value, Tensor):
        return value.clone()
    if isinstance(value, tuple):
        return tuple(_clone_out_of_inference(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _clone_out_of_inference(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return type(value)(**{f.name: _clone_out_of_inference(getattr(value, f.name)) for f in fields(value)})
    return value


# ---------------------------------------------------------------------------
# Shared loss pieces (inputs are cast to fp32 here).


def real_token_mask(batch: Batch, like: Tensor) -> Tensor:
    """[B, L] bool, True at real tokens (all True without an attention mask)."""
    mask = batch.get("attention_mask")
    if mask is None:
        return torch.ones(like.shape[:2], dtype=torch.bool, device=like.device)
    return mask.bool()


def merge_heads(x: Tensor) -> Tensor:
    """[B, H, L, d] -> [B, L, H*d]"""
    return x.transpose(1, 2).flatten(2)


def relation_log_probs(left: Tensor, right: Tensor, heads: int, key_mask: Tensor | None) -> Tensor:
    """MiniLM relation: log softmax(X_r Y_r^T / sqrt(d_r)) per relation head.

    left, right: [B, L, D], each split into `heads` relation heads of size
    d_r = D / heads (X = Y for the self-relations Q-Q, K-K, V-V; X = Q, Y = K
    for attention). key_mask: [B, L] bool (True = real), or None for no
    masking. Returns [B, heads, L, L] log-probabilities over keys.
    """
    batch, seq_len, width = left.shape
    if width % heads:
        raise ValueError(f"width {width} is not a multiple of {heads} relation heads")

    def split(x: Tensor) -> Tensor:
        return x.float().reshape(batch, seq_len, heads, width // heads).transpose(1, 2)

    logits = torch.matmul(split(left), split(right).transpose(-1, -2)) / math.sqrt(width // heads)
    if key_mask is not None:
        logits = logits + (~key_mask)[:, None, None, :] * MASK_VALUE
    return logits.log_softmax(dim=-1)


def row_kl(teacher_log_probs: Tensor, student_log_probs: Tensor, key_mask: Tensor | None) -> Tensor:
    """KL(teacher || student) of each row of [B, H, L, L] distributions -> [B, H, L].

    Terms at masked keys (probability 0 for the teacher) are dropped exactly.
    """
    terms = teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)
    if key_mask is not None:
        terms = terms.masked_fill(~key_mask[:, None, None, :], 0.0)
    return terms.sum(dim=-1)


def mean_row_kl(teacher_log_probs: Tensor, student_log_probs: Tensor, real: Tensor, masked: bool) -> Tensor:
    """KL averaged over heads and positions, the paper's 1/(A_h |x|) sum_a sum_t.

    masked=True: padded keys and padded query rows are excluded and the sum is
    divided by heads x real tokens. masked=False (the released code): every
    row counts, divided by B x heads x L.
    """
    kl = row_kl(teacher_log_probs, student_log_probs, real if masked else None)
    heads = kl.shape[1]
    if not masked:
        return kl.sum() / kl.numel()
    return (kl * real[:, None, :]).sum() / (heads * real.sum())


def relation_kl(student: tuple[Tensor, Tensor], teacher: tuple[Tensor, Tensor], heads: int, real: Tensor,
                masked: bool) -> Tensor:
    """MiniLM's relation loss: KL(teacher relation || student relation), each
    softmax(X Y^T / sqrt(d_r)) over ``heads`` relation heads of (X, Y) [B, L, D]
    pairs, averaged as :func:`mean_row_kl` (padded keys masked when ``masked``)."""
    key_mask = real if masked else None
    teacher_log_probs = relation_log_probs(*teacher, heads, key_mask)
    student_log_probs = relation_log_probs(*student, heads, key_mask)
    return mean_row_kl(teacher_log_probs, student_log_probs, real, masked)


def projection(student_width: int, teacher_width: int, init_std: float) -> nn.Module:
    """W bridging widths: identity (no parameters) when equal, else a learnable
    Linear(student -> teacher) with BERT's init (N(0, std), zero bias), as TinyBERT's `fit_dense`."""
    if student_width == teacher_width:
        return nn.Identity()
    layer = nn.Linear(student_width, teacher_width)
    nn.init.normal_(layer.weight, std=init_std)
    nn.init.zeros_(layer.bias)
    return layer
