"""Vanilla-KD (Hinton et al. 2015): match the teacher's MLM predictions."""

from __future__ import annotations

from torch import Tensor
from transformers import BertConfig

from ..model.outputs import MLMOutput, Request
from .base import Batch, Strategy, require_teacher


class VanillaKD(Strategy):
    """L = L_CE + L_pred, with L_pred = CE(z_T / t, z_S / t) at the masked positions.

    L_pred = mean over masked positions of -sum_v softmax(z_T/t)_v log softmax(z_S/t)_v
    (a soft cross-entropy: it equals the teacher's entropy, not 0, when the
    student matches the teacher; its gradient is that of the KL).

    Options:
        temperature: t (default 1, as the released code).
        t2_scaling: multiply L_pred by t^2 (Hinton et al.'s correction that keeps
            the soft-target gradients' scale independent of t); default off,
            as the paper's formula. Irrelevant at t = 1.

    fidelity="paper_code": L_pred is a mean over N_mask x |V| entries, i.e.
    divided by the vocabulary size, as in the released code (so it contributes
    almost nothing); teacher dropout on.
    """

    name = "vanillakd"

    def __init__(
        self,
        student_config: BertConfig,
        teacher_config: BertConfig | None,
        *,
        fidelity: str = "paper",
        temperature: float = 1.0,
        t2_scaling: bool = False,
    ):
        super().__init__(student_config, teacher_config, fidelity=fidelity)
        teacher_config = require_teacher(self.name, teacher_config)
        if student_config.vocab_size != teacher_config.vocab_size:
            raise ValueError("vanillakd needs the same vocabulary for student and teacher")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)
        self.t2_scaling = bool(t2_scaling)
        self.student_needs = Request(logits=True, mlm_loss=True)
        self.teacher_needs = Request(logits=True, mlm_loss=False)

    def compute(self, student_out: MLMOutput, teacher_out: MLMOutput | None, batch: Batch) -> dict[str, Tensor]:
        t = self.temperature
        student_log_probs = (student_out.logits.float() / t).log_softmax(dim=-1)
        teacher_probs = (teacher_out.logits.float() / t).softmax(dim=-1)
        entries = -(teacher_probs * student_log_probs)  # [N_mask, V]
        kd_pred = entries.mean() if self.paper_code else entries.sum(dim=-1).mean()
        if self.t2_scaling:
            kd_pred = kd_pred * t * t
        mlm = student_out.mlm_loss
        return {"loss": mlm + kd_pred, "mlm": mlm, "kd_pred": kd_pred}
