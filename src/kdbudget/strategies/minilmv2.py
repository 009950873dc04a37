"""MiniLM-v2 (Wang et al. 2021): multi-head self-attention relation distillation."""

from __future__ import annotations

from torch import Tensor
from transformers import BertConfig

from ..model.outputs import MLMOutput, Request
from .base import Batch, Strategy, merge_heads, real_token_mask, relation_kl, require_teacher
from .minilm import resolve_relation_heads

RELATIONS = ("queries", "keys", "values")


class MiniLMv2(Strategy):
    """L = L_QQ + L_KK + L_VV on the last layer, each KL(teacher || student) of
    the self-relations softmax(X_r X_r^T / sqrt(d_r)) for X = Q, K, V split
    into `relation_heads` heads, averaged over relation heads and positions.

    This is what the released launch scripts select for "MiniLM". Because the
    relations are L x L whatever the width and head count, student and teacher
    may differ in both; `relation_heads` (default: the teacher's head count)
    must divide both widths. Masking as in `minilm`. The layers keep the fused
    attention kernel, and both passes stop at the last layer's Q, K, V
    projections (nothing after them reaches the loss).

    fidelity="paper_code": no masking (padded keys and rows included), sums
    divided by B x heads x L; teacher dropout on.
    """

    name = "minilmv2"

    def __init__(
        self,
        student_config: BertConfig,
        teacher_config: BertConfig | None,
        *,
        fidelity: str = "paper",
        relation_heads: int | None = None,
    ):
        super().__init__(student_config, teacher_config, fidelity=fidelity)
        teacher_config = require_teacher(self.name, teacher_config)
        self.relation_heads = resolve_relation_heads(relation_heads, student_config, teacher_config)
        needs = Request(
            logits=False,
            mlm_loss=False,
            last_hidden_state=False,
            layers=(-1,),
            queries=True,
            keys=True,
            values=True,
        )
        self.student_needs = needs
        self.teacher_needs = needs

    def compute(self, student_out: MLMOutput, teacher_out: MLMOutput | None, batch: Batch) -> dict[str, Tensor]:
        student, teacher = student_out.layer(-1), teacher_out.layer(-1)
        real = real_token_mask(batch, student.values)
        masked = not self.paper_code
        losses = {}
        for relation in RELATIONS:
            student_x = merge_heads(getattr(student, relation))
            teacher_x = merge_heads(getattr(teacher, relation))
            losses[f"{relation[0]}_rel"] = relation_kl((student_x, student_x), (teacher_x, teacher_x),
                                                       self.relation_heads, real, masked)
        return {"loss": sum(losses.values()), **losses}

    def extra_flops_per_token(self, seq_len: int) -> float:
        """Three relation matrices: 2 L d per token and model, x3 on the student (backward)."""
        student, teacher = self.student_config.hidden_size, self.teacher_config.hidden_size
        return len(RELATIONS) * (3 * 2 * seq_len * student + 2 * seq_len * teacher)
