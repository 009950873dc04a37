"""DistilBERT (Sanh et al. 2019): soft targets, MLM and a cosine loss, from a student cut out of the teacher.

Written after the released training code (transformers' research_projects/distillation: `distiller.py`,
`train.py`, `scripts/extract_distilbert.py`), not copied from it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from transformers import BertConfig

from ..model.bert import is_pre_norm
from ..model.outputs import MLMOutput, Request
from .base import Batch, Strategy, real_token_mask, require_teacher

# What "the same shape" means for a student cut out of the teacher: every matrix of a layer must fit.
_SHAPE_KEYS = (("hidden", "hidden_size"), ("heads", "num_attention_heads"),
               ("intermediate", "intermediate_size"), ("vocabulary", "vocab_size"))


def teacher_layers(student_layers: int, teacher_layers: int) -> list[int]:
    """The teacher layers a student starts from: evenly spaced from the first to the last, rounded half up.

    For 12 -> 6 this is the released `extract_distilbert.py`'s choice, 0, 2, 4, 7, 9, 11 (one in two,
    keeping both ends); for 24 -> 12 it is 0, 2, 4, 6, 8, 10, 13, 15, 17, 19, 21, 23; for equal depths,
    every layer. A one-layer student takes the teacher's first layer.
    """
    if not 1 <= student_layers <= teacher_layers:
        raise ValueError(f"distilbert: a {student_layers}-layer student cannot be cut out of a "
                         f"{teacher_layers}-layer teacher (the group's student layers must be 1 to {teacher_layers})")
    if student_layers == 1:
        return [0]
    span, steps = teacher_layers - 1, student_layers - 1
    # round(i * span / steps) with halves up, in integers (no float ties)
    return [(2 * i * span + steps) // (2 * steps) for i in range(student_layers)]


def check_shapes(student_config: BertConfig, teacher_config: BertConfig) -> None:
    """Refuse a student that cannot be cut out of the teacher, naming the config keys to change."""
    wrong = [f"{name} {getattr(student_config, attr)} != {getattr(teacher_config, attr)}"
             for name, attr in _SHAPE_KEYS if getattr(student_config, attr) != getattr(teacher_config, attr)]
    if is_pre_norm(student_config) != is_pre_norm(teacher_config):
        wrong.append("layer_norm " + " != ".join("pre" if is_pre_norm(c) else "post"
                                                 for c in (student_config, teacher_config)))
    if student_config.max_position_embeddings > teacher_config.max_position_embeddings:
        wrong.append(f"max_positions {student_config.max_position_embeddings} > "
                     f"{teacher_config.max_position_embeddings}")
    if wrong:
        raise ValueError(
            "distilbert initialises its student from the teacher's layers, so the group's student shape "
            "(config key 'groups.<group>.student': hidden, heads, intermediate, layer_norm, max_positions) must be "
            "the teacher's ('groups.<group>.teacher'; its 'teachers.<name>.shape' or config.json) with fewer or as "
            f"many layers; student vs teacher: {'; '.join(wrong)}")


class DistilBERT(Strategy):
    """L = alpha_ce L_ce + alpha_mlm L_mlm + alpha_cos L_cos.

    L_ce  = t^2 KL(softmax(z_T / t) || softmax(z_S / t)), summed over the vocabulary and averaged over the
            masked positions (the released script's ``KLDivLoss(reduction="batchmean")`` times t^2);
    L_mlm = the MLM cross-entropy at the masked positions;
    L_cos = mean over real (non-padding) tokens of 1 - cos(h_S, h_T), h the last layer's outputs (the script's
            ``CosineEmbeddingLoss`` with target 1 over the attention mask).

    The student starts as a copy of the teacher with one layer in two (`init_student`): embeddings, the
    layers of `teacher_layers`, and the MLM head. So it needs the teacher's width, heads, intermediate size,
    vocabulary and LayerNorm placement (`check_shapes`); it then needs no projection.

    Departure from the released script: its default (the README's command, without ``--restrict_ce_to_mask``)
    takes L_ce over every real token; here it is taken at the masked positions only (the script's
    ``--restrict_ce_to_mask``), where this pipeline's sparse MLM head computes logits, for student and
    teacher alike. The script's own masking (token-frequency smoothing), gradient clipping at 5 and frozen
    position embeddings are not reproduced: every arm shares this pipeline's data and optimizer.

    Options: temperature (2), alpha_ce (5), alpha_mlm (2), alpha_cos (1): the released command's values.

    fidelity="paper_code" changes nothing in the losses (the paper's released code has no DistilBERT arm);
    it only leaves teacher dropout on, as for every strategy.
    """

    name = "distilbert"

    def __init__(
        self,
        student_config: BertConfig,
        teacher_config: BertConfig | None,
        *,
        fidelity: str = "paper",
        temperature: float = 2.0,
        alpha_ce: float = 5.0,
        alpha_mlm: float = 2.0,
        alpha_cos: float = 1.0,
    ):
        super().__init__(student_config, teacher_config, fidelity=fidelity)
        teacher_config = require_teacher(self.name, teacher_config)
        check_shapes(student_config, teacher_config)
        teacher_layers(student_config.num_hidden_layers, teacher_config.num_hidden_layers)  # fails early
        if temperature <= 0:
            raise ValueError(f"distilbert: temperature must be positive, got {temperature}")
        alphas = {"alpha_ce": alpha_ce, "alpha_mlm": alpha_mlm, "alpha_cos": alpha_cos}
        if any(a < 0 for a in alphas.values()) or not any(alphas.values()):
            raise ValueError(f"distilbert: the weights must be >= 0 and not all 0, got {alphas}")
        self.temperature = float(temperature)
        self.alpha_ce, self.alpha_mlm, self.alpha_cos = float(alpha_ce), float(alpha_mlm), float(alpha_cos)
        # Logits and last hidden states of both models, every term needing them whatever its weight:
        # a zero weight must not make one run cheaper than the configuration it is compared with.
        self.student_needs = Request(logits=True, mlm_loss=True, last_hidden_state=True)
        self.teacher_needs = Request(logits=True, mlm_loss=False, last_hidden_state=True)

    def compute(self, student_out: MLMOutput, teacher_out: MLMOutput | None, batch: Batch) -> dict[str, Tensor]:
        t = self.temperature
        student_log_probs = (student_out.logits.float() / t).log_softmax(dim=-1)
        teacher_log_probs = (teacher_out.logits.float() / t).log_softmax(dim=-1)
        kl = (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(dim=-1)  # [N_mask]
        ce = kl.mean() * t * t
        real = real_token_mask(batch, student_out.last_hidden_state)
        cosine = nn.functional.cosine_similarity(student_out.last_hidden_state.float()[real],
                                                 teacher_out.last_hidden_state.float()[real], dim=-1)
        cos = (1.0 - cosine).mean()
        mlm = student_out.mlm_loss.float()
        total = self.alpha_ce * ce + self.alpha_mlm * mlm + self.alpha_cos * cos
        return {"loss": total, "ce": ce, "mlm": mlm, "cos": cos}

    @torch.no_grad()
    def init_student(self, student: nn.Module, teacher: nn.Module | None) -> dict[str, Any]:
        """Copy the teacher into the student: embeddings (the first max_positions position rows; the
        token-type embeddings too, which DistilBERT's own architecture drops and this BERT student keeps),
        the layers of :func:`teacher_layers`, a pre-LN model's final LayerNorm, and the MLM head (the
        released extraction copies the head's decoder and bias, and its transform with ``--vocab_transform``).
        Returns what the trainer records in summary.json: ``{"teacher_layers": [...]}``."""
        teacher = require_teacher_model(teacher)
        check_shapes(student.config, teacher.config)
        chosen = teacher_layers(student.config.num_hidden_layers, teacher.config.num_hidden_layers)
        source = teacher.state_dict()
        state = {}
        for key, value in student.state_dict().items():
            teacher_key = key
            if key.startswith("bert.encoder.layer."):
                index, rest = key[len("bert.encoder.layer."):].split(".", 1)
                teacher_key = f"bert.encoder.layer.{chosen[int(index)]}.{rest}"
            weight = source[teacher_key]
            if key == "bert.embeddings.position_embeddings.weight":
                weight = weight[: value.shape[0]]
            if weight.shape != value.shape:
                raise ValueError(f"distilbert: the teacher's {teacher_key} has shape {tuple(weight.shape)}, the "
                                 f"student's {key} {tuple(value.shape)}")
            state[key] = weight
        student.load_state_dict(state)  # copies, casting a bf16 teacher's weights to the student's dtype
        return {"teacher_layers": chosen}


def require_teacher_model(teacher: nn.Module | None) -> nn.Module:
    if teacher is None:
        raise ValueError("distilbert initialises its student from a teacher, and none was given")
    return teacher
