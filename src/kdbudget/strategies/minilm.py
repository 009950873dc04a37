"""MiniLM (Wang et al. 2020): transfer the last layer's self-attention."""

from __future__ import annotations

from torch import Tensor
from transformers import BertConfig

from ..model.outputs import MLMOutput, Request
from .base import Batch, Strategy, mean_row_kl, merge_heads, real_token_mask, relation_kl, require_teacher


def resolve_relation_heads(relation_heads: int | None, student: BertConfig, teacher: BertConfig) -> int:
    """The number of relation heads (default: the teacher's attention heads, as the released code)."""
    heads = teacher.num_attention_heads if relation_heads is None else int(relation_heads)
    for role, config in (("student", student), ("teacher", teacher)):
        if heads <= 0 or config.hidden_size % heads:
            raise ValueError(f"relation_heads={heads} must divide the {role} hidden size {config.hidden_size}")
    return heads


class MiniLM(Strategy):
    """L = L_AT + L_VR on the last layer, both KL(teacher || student).

    L_AT = 1/(A_h |x|) sum_a sum_t KL(A^T_{a,t} || A^S_{a,t}) of the attention
           distributions;
    L_VR = the same for the value relations VR = softmax(V_r V_r^T / sqrt(d_r)),
           with V split into `relation_heads` heads of size d_r = hidden / relation_heads.
    Padded keys are masked out of every distribution and padded query rows
    are left out of the average (|x| counts real tokens, pooled over the batch).

    Options:
        relation_heads: heads of the value relation (default: the teacher's
            head count). The student and teacher may have different head
            counts and widths: the value relation only needs `relation_heads`
            to divide both widths. When their attention head counts differ,
            the attention term cannot pair heads, so it is taken over the
            query-key relation softmax(Q_r K_r^T / sqrt(d_r)) with the same
            relation heads (which equals the attention distribution when
            relation_heads is the head count).

    Neither model computes logits, and both passes stop once the last layer's
    attention internals exist: the last layer's feed-forward block would not
    reach the loss (it gets no gradient, in the released code too).

    fidelity="paper_code" (the released code): no masking in the KL terms,
    each summed over all rows and divided by B x heads x L (the attention
    distributions still carry the model's -10000 padding mask); teacher
    dropout on.
    """

    name = "minilm"

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
        # Pair the models' own attention heads when the counts match; else a Q-K relation.
        self.attention_from_scores = student_config.num_attention_heads == teacher_config.num_attention_heads
        own = self.attention_from_scores
        needs = Request(
            logits=False,
            mlm_loss=False,
            last_hidden_state=False,  # the passes stop after the last layer's attention internals
            layers=(-1,),
            scores=own,
            queries=not own,
            keys=not own,
            values=True,
        )
        self.student_needs = needs
        self.teacher_needs = needs

    def compute(self, student_out: MLMOutput, teacher_out: MLMOutput | None, batch: Batch) -> dict[str, Tensor]:
        student, teacher = student_out.layer(-1), teacher_out.layer(-1)
        real = real_token_mask(batch, student.values)
        masked = not self.paper_code
        heads = self.relation_heads
        if self.attention_from_scores:
            att = mean_row_kl(teacher.scores.float().log_softmax(dim=-1), student.scores.float().log_softmax(dim=-1),
                              real, masked)
        else:
            att = relation_kl((merge_heads(student.queries), merge_heads(student.keys)),
                              (merge_heads(teacher.queries), merge_heads(teacher.keys)), heads, real, masked)
        student_values, teacher_values = merge_heads(student.values), merge_heads(teacher.values)
        val_rel = relation_kl((student_values, student_values), (teacher_values, teacher_values), heads, real, masked)
        return {"loss": att + val_rel, "att": att, "val_rel": val_rel}

    def extra_flops_per_token(self, seq_len: int) -> float:
        """Relation matrices: 2 L d per token and model, x3 on the student (backward)."""
        relations = 1 if self.attention_from_scores else 2
        student, teacher = self.student_config.hidden_size, self.teacher_config.hidden_size
        return relations * (3 * 2 * seq_len * student + 2 * seq_len * teacher)
