"""The analytic FLOP count: by hand, against PyTorch's FLOP counter, and against the paper's numbers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from kdbudget.model import KDBertForMaskedLM, Request, bert_config
from kdbudget.model.flops import (
    forward_flops_per_token,
    request_forward_flops_per_token,
    train_flops_per_token,
    train_step_flops,
)
from kdbudget.strategies import build_strategy, teacher_forward

ROOT = Path(__file__).resolve().parents[1]

VOCAB, LENGTH, BATCH, MASKED = 99, 16, 3, 2
STUDENT = bert_config(2, 32, 4, 37, VOCAB, max_positions=64)
TEACHER = bert_config(3, 48, 6, 64, VOCAB, max_positions=64)
TEACHER_SAME_HEADS = bert_config(3, 48, 4, 64, VOCAB, max_positions=64)


def test_tiny_nokd_step_by_hand() -> None:
    # One token through one layer (h = 32, i = 37, L = 16), multiply-add = 2 FLOPs:
    qkv = 3 * 2 * 32 * 32  # 6144
    out_proj = 2 * 32 * 32  # 2048
    ffn = 2 * 32 * 37 + 2 * 37 * 32  # 4736
    attention = 2 * 16 * 32 + 2 * 16 * 32  # Q K^T and probs V: 2048
    per_token_layer = qkv + out_proj + ffn + attention
    assert per_token_layer == 14976
    encoder_forward = 2 * per_token_layer * BATCH * LENGTH  # 2 layers, 48 tokens: 1_437_696
    head_forward = (2 * 32 * 32 + 2 * 32 * 99) * BATCH * MASKED  # 6 masked tokens: 50_304
    by_hand = 3 * (encoder_forward + head_forward)
    assert by_hand == 4_464_000
    assert train_step_flops(STUDENT, None, "nokd", BATCH, LENGTH, MASKED) == by_hand


def _paper_student(group: str):
    """The student shape config/paper.yaml configures for ``group`` (not a copy of it)."""
    shape = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text(encoding="utf-8"))["groups"][group]["student"]
    return bert_config(shape["layers"], shape["hidden"], shape["heads"], shape["intermediate"], 30522)


def test_paper_scale_matches_the_reference_numbers() -> None:
    """The reference numbers worked out from the released code: ~284 / ~954 MFLOP per token to train the
    paper's 6L/768 / 12L/1024 student, ~182 / ~626 for a BERT-base / BERT-large teacher forward, ideal KD/No-KD
    cost ratios 1.64 and 1.66 (sequence 128, 20 masked tokens, vocabulary 30522)."""
    six, twelve = _paper_student("unlimited6"), _paper_student("unlimited12")
    base = bert_config(12, 768, 12, 3072, 30522)
    large = bert_config(24, 1024, 16, 4096, 30522)
    assert (twelve.num_hidden_layers, twelve.hidden_size, twelve.num_attention_heads) == (12, 1024, 16)
    # By hand, per token: layer 8*768^2 + 4*768*3072 + 4*128*768 = 14_548_992,
    # head (2*768^2 + 2*768*30522) * 20/128 = 7_509_600.
    assert train_flops_per_token(six, 128, 20) == 3 * (6 * 14_548_992 + 7_509_600)
    assert forward_flops_per_token(base, 128, 20) == 12 * 14_548_992 + 7_509_600
    # 12L/1024: layer 8*1024^2 + 4*1024*4096 + 4*128*1024 = 25_690_112,
    # head (2*1024^2 + 2*1024*30522) * 20/128 = 10_094_720.
    assert train_flops_per_token(twelve, 128, 20) == 3 * (12 * 25_690_112 + 10_094_720)
    assert forward_flops_per_token(large, 128, 20) == 24 * 25_690_112 + 10_094_720
    assert train_flops_per_token(six, 128, 20) / 1e6 == pytest.approx(284, abs=1)
    assert train_flops_per_token(twelve, 128, 20) / 1e6 == pytest.approx(954, abs=1.5)
    assert forward_flops_per_token(base, 128, 20) / 1e6 == pytest.approx(182, abs=1)
    assert forward_flops_per_token(large, 128, 20) / 1e6 == pytest.approx(626, abs=1)

    def ratio(student, teacher):
        kd = train_step_flops(student, teacher, "vanillakd", 1, 128, 20)
        return kd / train_step_flops(student, None, "nokd", 1, 128, 20)

    assert ratio(six, base) == pytest.approx(1.64, abs=0.005)
    assert ratio(twelve, large) == pytest.approx(1.66, abs=0.005)


def test_strategies_count_only_the_heads_they_need() -> None:
    nokd = train_step_flops(STUDENT, None, "nokd", BATCH, LENGTH, MASKED)
    student_head = 3 * (2 * 32 * 32 + 2 * 32 * 99) * BATCH * MASKED
    teacher_encoder = 3 * (8 * 48**2 + 4 * 48 * 64 + 4 * LENGTH * 48) * BATCH * LENGTH
    teacher_head = (2 * 48**2 + 2 * 48 * 99) * BATCH * MASKED
    vanillakd = train_step_flops(STUDENT, TEACHER, "vanillakd", BATCH, LENGTH, MASKED)
    assert vanillakd == nokd + teacher_encoder + teacher_head
    projections = 2 * 3 * 2 * 32 * 48 * BATCH * LENGTH  # W_e and W_h, forward and backward
    tinybert = train_step_flops(STUDENT, TEACHER_SAME_HEADS, "tinybert", BATCH, LENGTH, MASKED)
    assert tinybert == nokd - student_head + teacher_encoder + projections
    with_mlm = train_step_flops(STUDENT, TEACHER_SAME_HEADS, "tinybert", BATCH, LENGTH, MASKED, add_mlm=True)
    assert with_mlm == tinybert + student_head


def explicit_attention(query, key, value, attn_mask=None, dropout_p=0.0):
    """SDPA written out, so that its products are visible to the FLOP counter (the fused CPU kernel is not)."""
    scores = query @ key.transpose(-1, -2) / math.sqrt(query.shape[-1])
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    return scores.softmax(-1) @ value


def count_step(name: str, teacher_config, monkeypatch, **options) -> float:
    """FLOPs of a real training step (teacher, student, loss, backward) counted by PyTorch."""
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", explicit_attention)
    torch.manual_seed(0)
    student = KDBertForMaskedLM(STUDENT)
    teacher = KDBertForMaskedLM(teacher_config) if teacher_config is not None else None
    strategy = build_strategy(name, STUDENT, teacher_config, **options)
    batch = {
        "input_ids": torch.randint(1, VOCAB, (BATCH, LENGTH)),
        "attention_mask": torch.ones(BATCH, LENGTH, dtype=torch.long),
        "labels": torch.full((BATCH, LENGTH), -100),
    }
    batch["attention_mask"][2, 12:] = 0
    batch["labels"][:, [3, 9]] = 7  # MASKED = 2 per sequence
    with FlopCounterMode(display=False) as counter:
        teacher_out = teacher_forward(teacher, batch, strategy.teacher_needs)
        student_out = student(**batch, request=strategy.student_needs)
        strategy(student_out, teacher_out, batch)["loss"].backward()
    return counter.get_total_flops()


@pytest.mark.parametrize(
    "name,teacher_config,options",
    [
        ("nokd", None, {}),
        ("vanillakd", TEACHER, {}),
        ("tinybert", TEACHER_SAME_HEADS, {}),
        ("minilm", TEACHER_SAME_HEADS, {}),
        ("minilm", TEACHER, {"relation_heads": 2}),
        ("minilmv2", TEACHER, {"relation_heads": 2}),
        ("minilmv2", TEACHER, {"relation_heads": 2, "fidelity": "paper_code"}),
        ("tinybert", TEACHER_SAME_HEADS, {"fidelity": "paper_code", "add_mlm": True}),
    ],
)
def test_formula_equals_pytorch_flop_counter(name, teacher_config, options, monkeypatch) -> None:
    counted = count_step(name, teacher_config, monkeypatch, **options)
    predicted = train_step_flops(STUDENT, teacher_config, name, BATCH, LENGTH, MASKED, **options)
    assert math.isclose(counted, predicted, rel_tol=1e-12), (counted, predicted)


@pytest.mark.parametrize(
    "flags,projections,scores",
    [({"values": True}, 1, False), ({"scores": True}, 2, True), ({"probs": True, "values": True}, 3, True)],
)
def test_a_pass_that_stops_early_counts_what_it_computes(flags, projections, scores, monkeypatch) -> None:
    """Layer 0 in full, then only the requested internals of layer 1 (of 2)."""
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", explicit_attention)
    model = KDBertForMaskedLM(STUDENT).eval()
    request = Request(logits=False, mlm_loss=False, last_hidden_state=False, layers=(1,), **flags)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randint(1, VOCAB, (BATCH, LENGTH)), request=request)
    layer0 = 14976  # per token, as counted by hand above
    partial = projections * 2 * 32 * 32 + (2 * LENGTH * 32 if scores else 0)
    assert counter.get_total_flops() == (layer0 + partial) * BATCH * LENGTH
    assert request_forward_flops_per_token(STUDENT, LENGTH, MASKED, request) == layer0 + partial
