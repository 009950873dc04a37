"""The mobilebert strategy and the MobileBERT student: losses against formulas written out here, the progressive
stage schedule, the student shape in the config, its FLOPs by hand, its files in transformers, a run of the trainer.

References loop over sequences, real tokens, heads and layers instead of masking as the strategy does; they use
neither the strategy's helpers nor the model.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import make_teacher, tiny_spec
from torch.utils.flop_counter import FlopCounterMode

from kdbudget.config import ConfigError, validate_config
from kdbudget.model import KDBertForMaskedLM, LayerInternals, MLMOutput, Request, bert_config
from kdbudget.model.flops import request_forward_flops_per_token, train_step_flops
from kdbudget.model.mobilebert import KDMobileBertForMaskedLM, check_request, mobilebert_config
from kdbudget.plan import check_teachers, plan_models
from kdbudget.strategies import build_strategy, teacher_forward
from kdbudget.strategies.mobilebert import layer_map
from kdbudget.train.spec import RunSpec
from kdbudget.train.trainer import pretrain

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
VOCAB, LENGTH = 99, 16
LENGTHS = (16, 11, 6)  # real tokens per sequence; padding at the end

# Inter-block width 24, bottleneck 8 (2 heads of 4), FFN 20, 2 stacked FFNs, embeddings 8.
STUDENT = mobilebert_config(2, 24, 2, 20, VOCAB, 64, bottleneck=8, embedding_size=8, ffn_stack=2)
TEACHER = bert_config(3, 32, 4, 48, VOCAB, max_positions=64)  # other heads: attention averaged over heads
TEACHER_SAME_HEADS = bert_config(3, 32, 2, 48, VOCAB, max_positions=64)
# Student layer m (1-based) -> teacher layer ceil(m * 3 / 2): 2, 3; as 0-based indices:
MAP = {0: 1, 1: 2}


def make_batch(lengths=LENGTHS, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = (torch.arange(LENGTH)[None, :] < torch.tensor(lengths)[:, None]).long()
    input_ids = torch.randint(1, VOCAB, (len(lengths), LENGTH), generator=g) * mask
    labels = torch.full_like(input_ids, -100)
    for row, n in enumerate(lengths):
        labels[row, torch.randperm(n, generator=g)[:3]] = torch.randint(0, VOCAB, (3,), generator=g)
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def random_output(config, batch, seed: int) -> MLMOutput:
    """What a model could return: hidden states of every layer, attention probabilities (0 at padded keys)."""
    g = torch.Generator().manual_seed(seed)
    n_batch, n_masked = batch["input_ids"].shape[0], int((batch["labels"] != -100).sum())
    width, heads, depth = config.hidden_size, config.num_attention_heads, config.num_hidden_layers
    padded = (batch["attention_mask"] == 0)[:, None, None, :]
    layers = {i: LayerInternals(probs=(3 * torch.randn(n_batch, heads, LENGTH, LENGTH, generator=g))
                                .masked_fill(padded, -math.inf).softmax(-1)) for i in range(depth)}
    logits = 2 * torch.randn(n_masked, VOCAB, generator=g)
    return MLMOutput(last_hidden_state=None, num_layers=depth, logits=logits,
                     mlm_loss=F.cross_entropy(logits, batch["labels"][batch["labels"] != -100]),
                     hidden_states=tuple(torch.randn(n_batch, LENGTH, width, generator=g) for _ in range(depth + 1)),
                     layers=layers)


def kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) of two distributions (vectors), terms with p = 0 left out."""
    keep = p > 0
    return (p[keep] * (p[keep].log() - q[keep].log())).sum()


def fmt_reference(student_hidden, teacher_hidden, linear, lengths) -> torch.Tensor:
    total, entries = torch.tensor(0.0), 0
    for b, n in enumerate(lengths):
        projected = student_hidden[b, :n] @ linear.weight.T + linear.bias
        total = total + ((projected - teacher_hidden[b, :n]) ** 2).sum()
        entries += n * teacher_hidden.shape[-1]
    return total / entries


def att_reference(student_probs, teacher_probs, lengths) -> torch.Tensor:
    if student_probs.shape[1] != teacher_probs.shape[1]:  # one head-averaged distribution per row on each side
        student_probs, teacher_probs = student_probs.mean(1, keepdim=True), teacher_probs.mean(1, keepdim=True)
    heads = student_probs.shape[1]
    total, rows = torch.tensor(0.0), 0
    for b, n in enumerate(lengths):
        for h in range(heads):
            for i in range(n):
                total = total + kl(teacher_probs[b, h, i, :n], student_probs[b, h, i, :n])
        rows += n
    return total / (heads * rows)


def kd_reference(student_logits, teacher_logits, temperature) -> torch.Tensor:
    rows = [kl((t / temperature).softmax(-1), (s / temperature).softmax(-1))
            for s, t in zip(student_logits, teacher_logits, strict=True)]
    return torch.stack(rows).mean()


def close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-5) -> bool:
    return math.isclose(torch.as_tensor(a).item(), torch.as_tensor(b).item(), rel_tol=rel, abs_tol=1e-7)


# ---------------------------------------------------------------------------
# Losses


def test_layer_map_is_uniform():
    assert layer_map(2, 3) == (1, 2)
    assert layer_map(6, 12) == (1, 3, 5, 7, 9, 11)
    assert layer_map(4, 2) == (0, 0, 1, 1)  # a deeper student shares teacher layers
    assert layer_map(3, 3) == (0, 1, 2)


@pytest.mark.parametrize("teacher_config", [TEACHER, TEACHER_SAME_HEADS])
@pytest.mark.parametrize("mlm_weight,temperature", [(0.5, 1.0), (0.2, 2.0)])
def test_joint_losses_against_a_direct_formula(teacher_config, mlm_weight, temperature):
    batch = make_batch()
    student, teacher = random_output(STUDENT, batch, 1), random_output(teacher_config, batch, 2)
    strategy = build_strategy("mobilebert", STUDENT, teacher_config, mlm_weight=mlm_weight, temperature=temperature)
    losses = strategy(student, teacher, batch)

    fmt = [fmt_reference(student.hidden_states[m + 1], teacher.hidden_states[t + 1], strategy.proj[m], LENGTHS)
           for m, t in MAP.items()]
    att = [att_reference(student.layers[m].probs, teacher.layers[t].probs, LENGTHS) for m, t in MAP.items()]
    kd = kd_reference(student.logits, teacher.logits, temperature)
    assert close(losses["fmt"], sum(fmt) / 2) and close(losses["att"], sum(att) / 2)
    assert close(losses["kd"], kd) and losses["mlm"] is student.mlm_loss
    total = sum(fmt) / 2 + sum(att) / 2 + mlm_weight * student.mlm_loss + (1 - mlm_weight) * kd
    assert close(losses["loss"], total)


def test_progressive_stages_compute_their_own_terms():
    batch = make_batch()
    student, teacher = random_output(STUDENT, batch, 1), random_output(TEACHER, batch, 2)
    strategy = build_strategy("mobilebert", STUDENT, TEACHER, schedule="progressive")
    model = KDMobileBertForMaskedLM(STUDENT)
    strategy.begin_step(0.5, model)  # stage 1 of 3: student layer 1 against teacher layer 2
    losses = strategy(student, teacher, batch)
    fmt = fmt_reference(student.hidden_states[2], teacher.hidden_states[3], strategy.proj[1], LENGTHS)
    att = att_reference(student.layers[1].probs, teacher.layers[2].probs, LENGTHS)
    assert set(losses) == {"loss", "fmt", "att"}
    assert close(losses["fmt"], fmt) and close(losses["att"], att) and close(losses["loss"], fmt + att)
    strategy.begin_step(0.9, model)  # the last stage: pretraining distillation only
    losses = strategy(student, teacher, batch)
    assert set(losses) == {"loss", "mlm", "kd"}
    assert close(losses["loss"], 0.5 * student.mlm_loss + 0.5 * kd_reference(student.logits, teacher.logits, 1.0))


def test_losses_vanish_when_the_student_is_the_teacher():
    teacher = KDBertForMaskedLM(TEACHER)
    student = copy.deepcopy(teacher).eval()
    strategy = build_strategy("mobilebert", TEACHER, TEACHER)  # equal widths: identity projections
    batch = make_batch()
    losses = strategy(student(**batch, request=strategy.student_needs),
                      teacher_forward(teacher, batch, strategy.teacher_needs), batch)
    assert abs(losses["fmt"].item()) < 1e-6 and abs(losses["att"].item()) < 1e-6 and abs(losses["kd"].item()) < 1e-6
    assert not list(strategy.parameters())


@pytest.mark.parametrize("schedule", ["joint", "progressive"])
def test_paper_code_changes_no_loss(schedule):
    """The released code has no MobileBERT: paper_code only leaves teacher dropout on (teacher_forward)."""
    batch = make_batch()
    student, teacher = random_output(STUDENT, batch, 1), random_output(TEACHER, batch, 2)
    torch.manual_seed(3)
    paper = build_strategy("mobilebert", STUDENT, TEACHER, schedule=schedule)(student, teacher, batch)
    torch.manual_seed(3)  # the same projections
    code = build_strategy("mobilebert", STUDENT, TEACHER, schedule=schedule, fidelity="paper_code")(
        student, teacher, batch)
    assert set(paper) == set(code) and all(close(paper[k], code[k], rel=1e-7) for k in paper)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="schedule"):
        build_strategy("mobilebert", STUDENT, TEACHER, schedule="sometimes")
    with pytest.raises(ValueError, match="mlm_weight"):
        build_strategy("mobilebert", STUDENT, TEACHER, mlm_weight=1.5)
    with pytest.raises(ValueError, match="teacher"):
        build_strategy("mobilebert", STUDENT, None)


# ---------------------------------------------------------------------------
# The progressive schedule


def test_progressive_stages_split_the_budget_equally():
    strategy = build_strategy("mobilebert", STUDENT, TEACHER, schedule="progressive")  # 2 layers: 3 stages
    stages = {f: strategy.stage_at(f) for f in (0.0, 0.33, 0.34, 0.66, 0.67, 0.99, 1.0)}
    assert stages == {0.0: 0, 0.33: 0, 0.34: 1, 0.66: 1, 0.67: 2, 0.99: 2, 1.0: 2}
    # The learning-rate curve restarts in each stage: halfway through stage 1 is 1.5 / 3 of the budget.
    assert strategy.schedule_fraction(1.5 / 3) == pytest.approx(0.5)
    assert strategy.schedule_fraction(0.0) == 0.0 and strategy.schedule_fraction(1.0) == 1.0
    joint = build_strategy("mobilebert", STUDENT, TEACHER)
    assert {joint.stage_at(f) for f in (0.0, 0.5, 1.0)} == {0} and joint.schedule_fraction(0.4) == 0.4


def test_each_stage_trains_its_layer_and_requests_what_it_needs():
    strategy = build_strategy("mobilebert", STUDENT, TEACHER, schedule="progressive")
    model = KDMobileBertForMaskedLM(STUDENT)
    mobile = model.hf.mobilebert
    strategy.begin_step(0.1, model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"hf.mobilebert.{n}" for n, _ in mobile.embeddings.named_parameters(prefix="embeddings")} | \
        {f"hf.mobilebert.{n}" for n, _ in mobile.encoder.layer[0].named_parameters(prefix="encoder.layer.0")}
    assert strategy.student_needs.layers == (0,) and not strategy.student_needs.logits
    assert strategy.teacher_needs.layers == (1,) and not strategy.teacher_needs.logits
    strategy.begin_step(0.5, model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"hf.mobilebert.{n}" for n, _ in mobile.encoder.layer[1].named_parameters(
        prefix="encoder.layer.1")}
    assert strategy.student_needs.layers == (1,) and strategy.teacher_needs.layers == (2,)
    strategy.begin_step(0.8, model)
    assert all(p.requires_grad for p in model.parameters())
    assert strategy.student_needs.logits and strategy.teacher_needs.logits and not strategy.student_needs.layers


def test_frozen_parameters_are_unchanged_after_a_step():
    torch.manual_seed(0)
    model, teacher = KDMobileBertForMaskedLM(STUDENT).train(), KDBertForMaskedLM(TEACHER)
    strategy = build_strategy("mobilebert", STUDENT, TEACHER, schedule="progressive")
    optimizer = torch.optim.AdamW([*model.parameters(), *strategy.parameters()], lr=1e-2, weight_decay=0.1)

    def step(fraction: float) -> dict[str, torch.Tensor]:
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        strategy.begin_step(fraction, model)
        batch = make_batch()
        out = model(**batch, request=strategy.student_needs)
        strategy(out, teacher_forward(teacher, batch, strategy.teacher_needs), batch)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}

    step(0.1)  # stage 0: layer 0 and the embeddings move, and collect AdamW moments
    changed = step(0.5)  # stage 1: with those moments and weight decay, layer 0 must still not move
    assert changed and all(n.startswith("hf.mobilebert.encoder.layer.1.") for n in changed)
    changed = step(0.9)  # the last stage trains everything the MLM loss reaches
    assert any(n.startswith("hf.mobilebert.encoder.layer.0.") for n in changed)
    assert any(n.startswith("hf.cls.") for n in changed)


# ---------------------------------------------------------------------------
# The student: its FLOPs, its files, what it refuses


def test_student_flops_by_hand():
    # One token through one block (h = 24, b = 8, i = 20, 2 FFNs, L = 16):
    bottlenecks = 2 * 24 * 8 + 2 * 24 * 8  # input and shared Q/K bottleneck: 768
    qkv = 2 * 8 * 8 + 2 * 8 * 8 + 2 * 24 * 8  # Q, K from b, V from h: 640
    attention_out = 2 * 8 * 8  # 128
    ffns = 2 * (2 * 8 * 20 + 2 * 20 * 8)  # 1280
    out_bottleneck = 2 * 8 * 24  # 384
    scores_context = 2 * 16 * 8 + 2 * 16 * 8  # 512
    block = bottlenecks + qkv + attention_out + ffns + out_bottleneck + scores_context
    assert block == 3712
    embeddings = 2 * (3 * 8) * 24  # the trigram convolution: 1152
    head = (2 * 24 * 24 + 2 * 24 * 99) * 2 / 16  # 2 masked of 16 tokens: 738
    assert request_forward_flops_per_token(STUDENT, 16, 2, Request()) == embeddings + 2 * block + head == 9314
    no_head = Request(logits=False, mlm_loss=False)
    assert request_forward_flops_per_token(STUDENT, 16, 2, no_head) == embeddings + 2 * block


def explicit_attention(query, key, value, attn_mask=None, dropout_p=0.0, **kwargs):
    """SDPA as plain matrix products, so that PyTorch's counter sees them."""
    scores = query @ key.transpose(-1, -2) / math.sqrt(query.shape[-1])
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, -1e4) if attn_mask.dtype == torch.bool else scores + attn_mask
    return scores.softmax(-1) @ value


@pytest.mark.parametrize("teacher_config", [TEACHER, TEACHER_SAME_HEADS])
def test_joint_step_flops_equal_pytorch_counter(teacher_config, monkeypatch):
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", explicit_attention)
    torch.manual_seed(0)
    student, teacher = KDMobileBertForMaskedLM(STUDENT), KDBertForMaskedLM(teacher_config)
    strategy = build_strategy("mobilebert", STUDENT, teacher_config)
    batch = make_batch((16, 16, 12))
    batch["labels"][:] = -100
    batch["labels"][:, [3, 9]] = 7  # 2 masked per sequence
    with FlopCounterMode(display=False) as counter:
        out = student(**batch, request=strategy.student_needs)
        strategy(out, teacher_forward(teacher, batch, strategy.teacher_needs), batch)["loss"].backward()
    assert math.isclose(counter.get_total_flops(), train_step_flops(STUDENT, teacher_config, strategy, 3, LENGTH, 2),
                        rel_tol=1e-12)


def test_progressive_flops_never_undercount(monkeypatch):
    """Frozen layers skip their backward; the count keeps the full 3x (conservative, documented)."""
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", explicit_attention)
    student, teacher = KDMobileBertForMaskedLM(STUDENT), KDBertForMaskedLM(TEACHER)
    strategy = build_strategy("mobilebert", STUDENT, TEACHER, schedule="progressive")
    for fraction in (0.1, 0.5, 0.9):
        strategy.begin_step(fraction, student)
        batch = make_batch((16, 16, 16))
        batch["labels"][:] = -100
        batch["labels"][:, [3, 9]] = 7
        with FlopCounterMode(display=False) as counter:
            out = student(**batch, request=strategy.student_needs)
            strategy(out, teacher_forward(teacher, batch, strategy.teacher_needs), batch)["loss"].backward()
        student.zero_grad(set_to_none=True)
        predicted = train_step_flops(STUDENT, TEACHER, strategy, 3, LENGTH, 2)
        assert counter.get_total_flops() <= predicted
        if fraction == 0.9:  # everything trains in the last stage: exact
            assert math.isclose(counter.get_total_flops(), predicted, rel_tol=1e-12)


def test_student_saves_as_transformers_mobilebert(tmp_path):
    from transformers import AutoModelForMaskedLM, MobileBertForMaskedLM

    from kdbudget.model import load_pretrained, save_pretrained

    torch.manual_seed(0)
    model = KDMobileBertForMaskedLM(STUDENT).eval()
    save_pretrained(model, tmp_path / "mobile")
    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path / "mobile").eval()
    assert isinstance(loaded, MobileBertForMaskedLM)
    batch = make_batch()
    ours = model(batch["input_ids"], attention_mask=batch["attention_mask"], request=Request(mlm_loss=False))
    theirs = loaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.allclose(ours.logits, theirs, atol=1e-5)
    sparse = model(**batch)  # the head at the masked positions only, as our BERT
    assert torch.allclose(sparse.logits, theirs[batch["labels"] != -100], atol=1e-5)
    with pytest.raises(ValueError, match="MobileBERT model.*not used as a teacher"):  # our BERT loader says why
        load_pretrained(tmp_path / "mobile")


def test_student_probabilities_are_transformers_eager_ones_without_dropout():
    from transformers import MobileBertForMaskedLM

    torch.manual_seed(0)
    model = KDMobileBertForMaskedLM(STUDENT).eval()
    reference = MobileBertForMaskedLM(copy.deepcopy(STUDENT))
    reference.load_state_dict(model.hf.state_dict())
    reference.config._attn_implementation = "eager"
    batch = make_batch()
    ours = model(**batch, request=Request(hidden_states=True, layers=(0, 1), probs=True))
    theirs = reference.eval()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                              output_attentions=True, output_hidden_states=True)
    for i in (0, 1):
        assert torch.allclose(ours.layer(i).probs, theirs.attentions[i], atol=1e-6)
        assert torch.allclose(ours.hidden_states[i + 1], theirs.hidden_states[i + 1], atol=1e-5)
    assert ours.layer(0).probs[2, :, :, 6:].abs().max().item() == 0.0  # padded keys


def test_student_refuses_what_it_cannot_return():
    check_request(Request(hidden_states=True, layers=(0,), probs=True))
    with pytest.raises(ValueError, match="scores"):
        check_request(Request(layers=(0,), scores=True))
    with pytest.raises(ValueError, match="mobilebert_config|multiple"):
        mobilebert_config(2, 24, 3, 20, VOCAB, bottleneck=8, embedding_size=8, ffn_stack=2)


# ---------------------------------------------------------------------------
# The config: the student shape option


def _config(student: dict, teacher: dict | None = None) -> dict:
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    teachers = {"t": teacher} if teacher else {"t": {"source": "dir", "path": "/nowhere"}}
    return {**base, "teachers": teachers, "groups": {"g": {
        "student": student, "teacher": "t", "strategies": ["nokd", "mobilebert"],
        "budget": {"mode": "reference"}}}}


SHAPE = {"layers": 4, "hidden": 128, "heads": 2, "intermediate": 64}


def test_shape_option_fills_its_defaults_from_the_schema():
    config = validate_config(_config({**SHAPE, "mobilebert": {}}), SCHEMA)
    assert config["groups"]["g"]["student"]["mobilebert"] == {
        "bottleneck": 128, "embedding_size": 128, "ffn_stack": 4, "normalization": "no_norm"}
    assert "mobilebert" not in validate_config(_config(SHAPE), SCHEMA)["groups"]["g"]["student"]


@pytest.mark.parametrize("mobilebert,key", [
    ({"ffn_stack": 0}, "groups.g.student.mobilebert.ffn_stack"),
    ({"normalization": "batch_norm"}, "groups.g.student.mobilebert.normalization"),
    ({"bottlenek": 16}, "groups.g.student.mobilebert"),
])
def test_bad_shape_values_name_their_key(mobilebert, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(_config({**SHAPE, "mobilebert": mobilebert}), SCHEMA)


@pytest.mark.parametrize("student,key", [
    ({**SHAPE, "mobilebert": {"bottleneck": 15}}, "groups.g.student.mobilebert.bottleneck"),
    ({**SHAPE, "mobilebert": {"bottleneck": 16, "embedding_size": 129}}, "groups.g.student.mobilebert.embedding_size"),
    ({**SHAPE, "layer_norm": "pre", "mobilebert": {"bottleneck": 16}}, "groups.g.student.layer_norm"),
])
def test_inconsistent_shapes_name_their_key(student, key):
    config = validate_config(_config(student), SCHEMA)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        plan_models(config)


def test_a_mobilebert_teacher_is_refused():
    teacher = {"source": "pretrain", "shape": {**SHAPE, "mobilebert": {}}, "budget": {"mode": "tokens", "limit": 9}}
    config = validate_config(_config(SHAPE, teacher), SCHEMA)
    with pytest.raises(ConfigError, match=r"teachers\.t\.shape\.mobilebert"):
        check_teachers(config)


def test_the_plan_keeps_the_shape_option_for_the_run_spec():
    config = validate_config(_config({**SHAPE, "mobilebert": {"bottleneck": 16}}), SCHEMA)
    shape = plan_models(config)["mobilebert4"].shape
    assert shape["mobilebert"]["bottleneck"] == 16 and shape["layer_norm"] == "post"


# ---------------------------------------------------------------------------
# Through the trainer


SMALL = {"layers": 2, "hidden": 32, "heads": 2, "intermediate": 32,
         "mobilebert": {"bottleneck": 16, "embedding_size": 16, "ffn_stack": 2, "normalization": "no_norm"}}


def test_a_progressive_run_spends_its_budget_through_the_stages(tmp_path, packed_data):
    from transformers import AutoModelForMaskedLM

    meta = json.loads((packed_data / "meta.json").read_text())
    teacher_dir = make_teacher(tmp_path, packed_data, meta["vocab_size"], layers=3)
    spec = tiny_spec(tmp_path, packed_data, name="mobilebert2", strategy="mobilebert", student=SMALL,
                     teacher_dir=str(teacher_dir), strategy_options={"schedule": "progressive"},
                     budget={"mode": "tokens", "limit": 8 * 128 * 9}, optim={"warmup": 0.0})
    summary = pretrain(RunSpec.from_dict(spec))
    assert summary["steps"] == 9 and summary["tokens"] == 9 * 8 * 128
    out = tmp_path / "out" / "mobilebert2"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # 3 stages of 3 steps: layer 0, layer 1 (feature-map and attention transfer), then distillation.
    assert [("fmt" in r, "mlm" in r) for r in rows] == [(True, False)] * 6 + [(False, True)] * 3
    # The learning rate restarts in each stage (no warmup: the peak at each stage's first step).
    assert [rows[i]["lr"] for i in (0, 3, 6)] == [1e-3] * 3 and rows[2]["lr"] < rows[1]["lr"] < 1e-3
    assert rows[-1]["flops"] == pytest.approx(summary["flops"])
    # Each stage's steps count what its requests run: the distillation stage adds the heads.
    per_step = [b["flops"] - a["flops"] for a, b in zip(rows, rows[1:], strict=False)]
    assert per_step[0] == pytest.approx(per_step[3]) and per_step[6] > per_step[3]
    assert summary["validation"]["mlm_head_trained"]
    model = AutoModelForMaskedLM.from_pretrained(out)
    assert type(model).__name__ == "MobileBertForMaskedLM" and model.config.num_feedforward_networks == 2


def test_a_progressive_follower_spends_the_reference_budget(tmp_path, packed_data):
    """The stages split the budget; the total is the No-KD reference's FLOPs, within half a step."""
    meta = json.loads((packed_data / "meta.json").read_text())
    reference = pretrain(RunSpec.from_dict(tiny_spec(tmp_path, packed_data, budget={
        "mode": "reference", "is_reference": True, "epochs": 0.5, "measure": "flops"})))
    teacher_dir = make_teacher(tmp_path, packed_data, meta["vocab_size"], layers=3)
    follower = pretrain(RunSpec.from_dict(tiny_spec(
        tmp_path, packed_data, name="mobilebert2", strategy="mobilebert", student=SMALL,
        teacher_dir=str(teacher_dir), strategy_options={"schedule": "progressive"},
        budget={"mode": "reference", "measure": "flops",
                "reference_summary": str(tmp_path / "out" / "nokd2" / "summary.json")})))
    rows = [json.loads(line) for line in (tmp_path / "out" / "mobilebert2" / "metrics.jsonl").read_text().splitlines()]
    last_step = rows[-1]["flops"] - rows[-2]["flops"]
    assert abs(follower["flops"] - reference["flops"]) <= last_step / 2
    assert {"fmt" in r for r in rows} == {True, False}  # it went through the layer stages and the last one


def test_the_trainer_refuses_a_strategy_the_student_cannot_serve(tmp_path, packed_data):
    meta = json.loads((packed_data / "meta.json").read_text())
    teacher_dir = make_teacher(tmp_path, packed_data, meta["vocab_size"])
    spec = tiny_spec(tmp_path, packed_data, name="tinybert2", strategy="tinybert", student={**SMALL, "heads": 4},
                     teacher_dir=str(teacher_dir))
    with pytest.raises(ValueError, match="tinybert2: strategy 'tinybert': a MobileBERT student"):
        pretrain(RunSpec.from_dict(spec))
    assert not (tmp_path / "out" / "tinybert2").exists()


@pytest.mark.parametrize("schedule,fraction", [("joint", 0.0), ("progressive", 0.1), ("progressive", 0.9)])
def test_losses_are_fp32_under_bf16_autocast(schedule, fraction):
    student, teacher = KDMobileBertForMaskedLM(STUDENT), KDBertForMaskedLM(TEACHER)
    strategy = build_strategy("mobilebert", STUDENT, TEACHER, schedule=schedule)
    strategy.begin_step(fraction, student)
    batch = make_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = student(**batch, request=strategy.student_needs)
        losses = strategy(out, teacher_forward(teacher, batch, strategy.teacher_needs), batch)
    for key, value in losses.items():
        assert value.dtype == torch.float32 and value.dim() == 0 and torch.isfinite(value), key
    losses["loss"].backward()
