"""TinyBERT (Jiao et al. 2020), last layer only, as in the paper."""

from __future__ import annotations

from torch import Tensor
from transformers import BertConfig

from ..model.outputs import MLMOutput, Request
from .base import Batch, Strategy, projection, real_token_mask, require_teacher

# The released code zeroes scores at or below this value: the padded keys,
# which carry the -10000 additive mask.
PADDED_SCORE_THRESHOLD = -100.0


def _masked_mse(student: Tensor, teacher: Tensor, real: Tensor) -> Tensor:
    """Mean squared error over the feature entries of the real positions ([B, L, D] inputs)."""
    squared = (student.float() - teacher.float()).pow(2).sum(dim=-1)
    return (squared * real).sum() / (real.sum() * student.shape[-1])


def _released_score_mse(student: Tensor, teacher: Tensor) -> Tensor:
    """The released `att_mse`: padded-key scores set to 0, mean over every entry."""
    student, teacher = student.float(), teacher.float()
    student = student.masked_fill(student <= PADDED_SCORE_THRESHOLD, 0.0)
    teacher = teacher.masked_fill(teacher <= PADDED_SCORE_THRESHOLD, 0.0)
    return (student - teacher).pow(2).mean()


class TinyBERT(Strategy):
    """L = L_embd + L_att + L_hid (+ mlm_weight * L_CE if add_mlm).

    L_embd = MSE(E_S W_e, E_T) of the embedding outputs;
    L_att  = 1/h sum_i MSE(A_i^S, A_i^T) of the last layer's pre-softmax
             (scaled) attention scores; pairs with a padded query or key are
             excluded; needs equal head counts;
    L_hid  = MSE(H_S W_h, H_T) of the last layer's outputs.
    MSEs are means over the entries of real (non-padded) positions.

    W_e and W_h are separate. When student and teacher widths are equal they
    are the identity (no parameters: the released code's students have the
    teacher's width and use none); otherwise each is a learnable
    Linear(d_S -> d_T) with bias, initialised N(0, initializer_range).

    Options:
        add_mlm: also add the MLM loss (default False: the released code adds none).
        mlm_weight: its weight when added.

    fidelity="paper_code" (the released code):
    - the "embedding" term is an MSE of the first layers' attention scores,
      not of the embeddings (a bug in the released code);
    - attention scores at padded keys (<= -100) are set to 0 and the MSE is a
      mean over all B x H x L x L entries, padded query rows included;
    - L_hid is a mean over all positions, padding included;
    - teacher dropout on.
    """

    name = "tinybert"

    def __init__(
        self,
        student_config: BertConfig,
        teacher_config: BertConfig | None,
        *,
        fidelity: str = "paper",
        add_mlm: bool = False,
        mlm_weight: float = 1.0,
    ):
        super().__init__(student_config, teacher_config, fidelity=fidelity)
        teacher_config = require_teacher(self.name, teacher_config)
        if student_config.num_attention_heads != teacher_config.num_attention_heads:
            raise ValueError(
                "tinybert matches attention scores head by head: student and teacher need the same number "
                f"of heads ({student_config.num_attention_heads} != {teacher_config.num_attention_heads}); "
                "use minilm/minilmv2 with relation_heads for different head counts"
            )
        if not add_mlm and mlm_weight != 1.0:
            raise ValueError("mlm_weight is only used with add_mlm=True")
        self.add_mlm = bool(add_mlm)
        self.mlm_weight = float(mlm_weight)
        student_width, teacher_width = student_config.hidden_size, teacher_config.hidden_size
        init_std = student_config.initializer_range
        # The released code's "embedding" term compares first-layer attention scores
        # (so it has no W_e: an unused parameter would trouble DDP).
        embeddings = not self.paper_code
        self.emb_proj = projection(student_width, teacher_width, init_std) if embeddings else None
        self.hid_proj = projection(student_width, teacher_width, init_std)
        layers = (-1,) if embeddings else (0, -1)
        self.student_needs = Request(
            logits=self.add_mlm, mlm_loss=self.add_mlm, embeddings=embeddings, layers=layers, scores=True
        )
        self.teacher_needs = Request(logits=False, mlm_loss=False, embeddings=embeddings, layers=layers, scores=True)

    def compute(self, student_out: MLMOutput, teacher_out: MLMOutput | None, batch: Batch) -> dict[str, Tensor]:
        student_scores, teacher_scores = student_out.layer(-1).scores, teacher_out.layer(-1).scores
        student_hidden = self.hid_proj(student_out.last_hidden_state.float())
        teacher_hidden = teacher_out.last_hidden_state.float()
        if self.paper_code:
            emb = _released_score_mse(student_out.layer(0).scores, teacher_out.layer(0).scores)
            att = _released_score_mse(student_scores, teacher_scores)
            hid = (student_hidden - teacher_hidden).pow(2).mean()
        else:
            real = real_token_mask(batch, student_hidden)
            emb = _masked_mse(self.emb_proj(student_out.embeddings.float()), teacher_out.embeddings, real)
            pairs = (real[:, :, None] & real[:, None, :])[:, None]  # [B, 1, L, L]
            squared = (student_scores.float() - teacher_scores.float()).pow(2)
            att = (squared * pairs).sum() / (pairs.sum() * squared.shape[1])
            hid = _masked_mse(student_hidden, teacher_hidden, real)
        losses = {"emb": emb, "att": att, "hid": hid}
        total = emb + att + hid
        if self.add_mlm:
            losses["mlm"] = student_out.mlm_loss
            total = total + self.mlm_weight * student_out.mlm_loss
        return {"loss": total, **losses}

    def extra_flops_per_token(self, seq_len: int) -> float:
        """The two projections when widths differ: forward + backward = 3 x 2 d_S d_T each."""
        student_width, teacher_width = self.student_config.hidden_size, self.teacher_config.hidden_size
        if student_width == teacher_width:
            return 0.0
        projections = 1 if self.emb_proj is None else 2
        return projections * 3 * 2 * student_width * teacher_width
