"""MobileBERT's knowledge transfer (Sun et al. 2020), jointly or progressively, within one run's budget."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from transformers import BertConfig

from ..model.outputs import MLMOutput, Request
from .base import Batch, Strategy, projection, real_token_mask, require_teacher

SCHEDULES = ("joint", "progressive")


def layer_map(student_layers: int, teacher_layers: int) -> tuple[int, ...]:
    """Teacher layer (0-based) for each student layer: student layer m (1-based) reads teacher layer
    ceil(m N / M), TinyBERT's uniform map, so the last layers meet and a deeper student shares teacher layers."""
    return tuple(math.ceil(m * teacher_layers / student_layers) - 1 for m in range(1, student_layers + 1))


def _masked_mse(student: Tensor, teacher: Tensor, real: Tensor) -> Tensor:
    """Mean squared error over the feature entries of the real positions ([B, L, D] inputs)."""
    squared = (student.float() - teacher.float()).pow(2).sum(dim=-1)
    return (squared * real).sum() / (real.sum() * student.shape[-1])


def _attention_kl(student_probs: Tensor, teacher_probs: Tensor, real: Tensor) -> Tensor:
    """KL(teacher || student) of each real query row's attention distribution, averaged over heads and real rows.

    Inputs [B, H, L, L] probabilities; padded keys carry probability 0 for both and drop out exactly. With other
    head counts each side is first averaged over its heads (one distribution per row). The student's probabilities
    are floored at the smallest normal float so that one that underflowed costs a large, finite penalty.
    """
    student_probs, teacher_probs = student_probs.float(), teacher_probs.float()
    if student_probs.shape[1] != teacher_probs.shape[1]:
        student_probs, teacher_probs = student_probs.mean(1, keepdim=True), teacher_probs.mean(1, keepdim=True)
    tiny = torch.finfo(torch.float32).tiny
    terms = teacher_probs * (teacher_probs.clamp_min(tiny).log() - student_probs.clamp_min(tiny).log())
    terms = terms.masked_fill(~real[:, None, None, :], 0.0)
    rows = terms.sum(-1)  # [B, H, L]
    return (rows * real[:, None, :]).sum() / (rows.shape[1] * real.sum())


def _soft_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """KL(softmax(z_T / T) || softmax(z_S / T)), mean over the masked positions (rows)."""
    teacher_log_probs = (teacher_logits.float() / temperature).log_softmax(-1)
    student_log_probs = (student_logits.float() / temperature).log_softmax(-1)
    return (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(-1).mean()


def _blocks(student: nn.Module) -> tuple[nn.Module, nn.ModuleList]:
    """The embeddings and the layer list of our BERT or of the MobileBERT student."""
    base = student.bert if hasattr(student, "bert") else student.hf.mobilebert
    return base.embeddings, base.encoder.layer


class MobileBERT(Strategy):
    """MobileBERT's knowledge transfer: layer-wise feature-map and attention transfer, then pretraining distillation.

    For each student layer l and its teacher layer g(l) (`layer_map`: uniform, g(l) = ceil(l N / M)):
    L_FMT(l) = MSE(H^S_l W_l, H^T_g(l)), over the feature entries of real positions (H: the layer outputs);
    L_AT(l)  = KL(A^T_g(l) || A^S_l), each real query row's attention distribution, averaged over heads and rows;
    L_PD     = mlm_weight L_MLM + (1 - mlm_weight) L_KD, L_KD = KL(p_T || p_S) of the MLM distributions at
               temperature T at the masked positions.

    schedule="joint" (MobileBERT's "auxiliary knowledge transfer"): every step minimises
        mean_l L_FMT(l) + mean_l L_AT(l) + L_PD, with every parameter trained.
    schedule="progressive": the run's budget is split into M + 1 equal shares of its budget fraction (whatever
    the unit: seconds, FLOPs or tokens), with no change to how the budget is counted:
        stage l < M (fraction in [l/(M+1), (l+1)/(M+1))): L_FMT(l) + L_AT(l); only layer l and W_l are trained
            (and the embeddings in stage 0); lower layers are frozen (no gradient, so AdamW leaves them
            unchanged), higher layers and the MLM head get no gradient;
        stage M (the last share): L_PD with every parameter trained.
      The learning-rate curve (warmup, linear decay) restarts in each stage (`schedule_fraction`), as each of
      MobileBERT's stages was its own training run. Frozen layers still run forward; the FLOP count keeps the
      full 3x of the student's forward in every stage (kdbudget.model.flops), an over-count for the stages
      whose backward stops at layer l: under a FLOPs budget this arm gets at most, never more than, what the
      others get.

    How this departs from MobileBERT: its teacher (IB-BERT) has the student's depth and inter-block width, so its
    transfer is layer to layer with no projection. Ours are ordinary BERTs of other depth and width: the uniform
    layer map pairs layers, a learned Linear(d_S -> d_T) per student layer (identity when the widths are equal;
    BERT init) compares feature maps in the teacher's space, and when head counts differ the attention
    distributions are averaged over heads on each side before the KL. MobileBERT copies the teacher's embeddings
    and classifier into the student and freezes them during progressive transfer; widths differ here, so the
    embeddings are trained in stage 0 and the MLM head in the last stage. No NSP term (our data has one segment).
    Layer-wise losses are means over layers (MobileBERT sums them), so their weight does not grow with depth.

    Options:
        schedule: "joint" (default) or "progressive".
        mlm_weight: alpha of L_PD (MobileBERT: 0.5).
        temperature: T of L_KD (1.0).

    fidelity="paper_code": the paper's released code has no MobileBERT; only teacher dropout is on.
    """

    name = "mobilebert"

    def __init__(
        self,
        student_config: BertConfig,
        teacher_config: BertConfig | None,
        *,
        fidelity: str = "paper",
        schedule: str = "joint",
        mlm_weight: float = 0.5,
        temperature: float = 1.0,
    ):
        super().__init__(student_config, teacher_config, fidelity=fidelity)
        teacher_config = require_teacher(self.name, teacher_config)
        if schedule not in SCHEDULES:
            raise ValueError(f"mobilebert: schedule must be one of {SCHEDULES}, got {schedule!r}")
        if not 0.0 <= mlm_weight <= 1.0:
            raise ValueError(f"mobilebert: mlm_weight must be in [0, 1], got {mlm_weight}")
        if not temperature > 0:
            raise ValueError(f"mobilebert: temperature must be positive, got {temperature}")
        self.schedule, self.mlm_weight, self.temperature = schedule, float(mlm_weight), float(temperature)
        self.num_layers = student_config.num_hidden_layers
        self.teacher_layers = layer_map(self.num_layers, teacher_config.num_hidden_layers)
        init_std = student_config.initializer_range
        self.proj = nn.ModuleList(projection(student_config.hidden_size, teacher_config.hidden_size, init_std)
                                  for _ in range(self.num_layers))
        self.stages = self.num_layers + 1 if schedule == "progressive" else 1
        self.stage: int | None = None  # set by begin_step; the requests below are the first stage's
        self._frozen_for: int | None = None  # the stage whose freezing the student carries
        self._set_requests(0)

    # --- the stage schedule --------------------------------------------------

    def stage_at(self, fraction: float) -> int:
        """The stage at a budget fraction: 0 for joint; progressive: l for [l/(M+1), (l+1)/(M+1)), M at the end."""
        return min(int(min(max(fraction, 0.0), 1.0) * self.stages), self.stages - 1)

    def schedule_fraction(self, fraction: float) -> float:
        """Where the learning-rate curve stands: the fraction of the current stage's share that is spent."""
        fraction = min(max(fraction, 0.0), 1.0)
        return min(1.0, fraction * self.stages - self.stage_at(fraction))

    @property
    def distilling(self) -> bool:
        """True in the stage that trains L_PD (joint: always)."""
        return self.schedule == "joint" or self.stage == self.num_layers

    def layers_trained(self, stage: int) -> tuple[int, ...]:
        """The student layers whose layer-wise losses count in ``stage`` (progressive stage M: none)."""
        if self.schedule == "joint":
            return tuple(range(self.num_layers))
        return (stage,) if stage < self.num_layers else ()

    def _set_requests(self, stage: int) -> None:
        self.stage = stage
        layers = self.layers_trained(stage)
        pd = self.schedule == "joint" or stage == self.num_layers
        internals = {"layers": layers, "probs": bool(layers), "hidden_states": bool(layers)}
        self.student_needs = Request(logits=pd, mlm_loss=pd, last_hidden_state=False, **internals)
        self.teacher_needs = Request(logits=pd, mlm_loss=False, last_hidden_state=False, **{
            **internals, "layers": tuple(sorted({self.teacher_layers[i] for i in layers}))})

    def begin_step(self, fraction: float, student: nn.Module) -> None:
        """Switch to the stage of ``fraction``: its requests and (progressive) which student parameters train."""
        stage = self.stage_at(fraction)
        self._set_requests(stage)
        if self.schedule == "joint" or self._frozen_for == stage:
            return
        distilling = stage == self.num_layers
        student.requires_grad_(distilling)
        if not distilling:
            embeddings, layers = _blocks(student)
            layers[stage].requires_grad_(True)
            embeddings.requires_grad_(stage == 0)
        self._frozen_for = stage

    # --- the losses ----------------------------------------------------------

    def compute(self, student_out: MLMOutput, teacher_out: MLMOutput | None, batch: Batch) -> dict[str, Tensor]:
        losses: dict[str, Tensor] = {}
        total = None
        layers = self.layers_trained(self.stage)
        if layers:
            real = real_token_mask(batch, student_out.hidden_states[0])
            fmt, att = [], []
            for index in layers:
                target = self.teacher_layers[index]
                student_hidden = self.proj[index](student_out.hidden_states[index + 1].float())
                fmt.append(_masked_mse(student_hidden, teacher_out.hidden_states[target + 1], real))
                att.append(_attention_kl(student_out.layer(index).probs, teacher_out.layer(target).probs, real))
            losses["fmt"], losses["att"] = torch.stack(fmt).mean(), torch.stack(att).mean()
            total = losses["fmt"] + losses["att"]
        if self.distilling:
            losses["mlm"] = student_out.mlm_loss
            losses["kd"] = _soft_kl(student_out.logits, teacher_out.logits, self.temperature)
            pd = self.mlm_weight * losses["mlm"] + (1.0 - self.mlm_weight) * losses["kd"]
            total = pd if total is None else total + pd
        return {"loss": total, **losses}

    def extra_flops_per_token(self, seq_len: int) -> float:
        """The projections of the layers trained in the current stage: forward + backward = 3 x 2 d_S d_T each."""
        student_width, teacher_width = self.student_config.hidden_size, self.teacher_config.hidden_size
        if student_width == teacher_width:
            return 0.0
        return len(self.layers_trained(self.stage)) * 3 * 2 * student_width * teacher_width
