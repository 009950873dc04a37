"""No-KD: pretraining from scratch with the masked-LM cross-entropy alone."""

from __future__ import annotations

from torch import Tensor
from transformers import BertConfig

from ..model.outputs import MLMOutput, Request
from .base import Batch, Strategy


class NoKD(Strategy):
    """L = CE(student logits, labels) at the masked positions.

    `fidelity` is accepted for a uniform interface and changes nothing: the
    released No-KD arm differs from the paper in its architecture (pre-LN,
    LR 1e-3), not in its loss; kdbudget uses the post-LN BERT for every arm.
    """

    name = "nokd"

    def __init__(
        self, student_config: BertConfig, teacher_config: BertConfig | None = None, *, fidelity: str = "paper"
    ):
        super().__init__(student_config, teacher_config, fidelity=fidelity)
        self.student_needs = Request(logits=True, mlm_loss=True)
        self.teacher_needs = None

    def compute(self, student_out: MLMOutput, teacher_out: MLMOutput | None, batch: Batch) -> dict[str, Tensor]:
        mlm = student_out.mlm_loss
        return {"loss": mlm, "mlm": mlm}
