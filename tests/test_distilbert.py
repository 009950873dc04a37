"""DistilBERT: its loss against a direct computation, the student cut out of the teacher, and the shape rule.

As in test_strategies.py, references loop over sequences, positions and vocabulary entries instead of
masking, and use neither the strategy's helpers nor the model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import make_teacher, tiny_spec
from safetensors.torch import load_file
from test_strategies import LENGTHS, STUDENT, TEACHER_TWICE_DEEP, VOCAB, close, make_batch, random_output

from kdbudget.model import KDBertForMaskedLM, MLMOutput, bert_config
from kdbudget.strategies import build_strategy, teacher_forward
from kdbudget.strategies.distilbert import teacher_layers
from kdbudget.train.checkpoint import load_checkpoint, save_checkpoint
from kdbudget.train.spec import RunSpec
from kdbudget.train.trainer import pretrain


def softmax(row: torch.Tensor) -> list[float]:
    exps = [math.exp(v) for v in row.tolist()]
    return [e / sum(exps) for e in exps]


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    dot = sum(x * y for x, y in zip(a.tolist(), b.tolist(), strict=True))
    return dot / (math.sqrt(sum(x * x for x in a.tolist())) * math.sqrt(sum(y * y for y in b.tolist())))


def reference(student: MLMOutput, teacher: MLMOutput, t: float, a_ce: float, a_mlm: float, a_cos: float):
    """t^2 x mean over masked rows of sum_v p_v (log p_v - log q_v); 1 - cos over the real tokens."""
    kls = []
    for zs, zt in zip(student.logits, teacher.logits, strict=True):
        p, q = softmax(zt / t), softmax(zs / t)
        kls.append(sum(pv * (math.log(pv) - math.log(qv)) for pv, qv in zip(p, q, strict=True)))
    ce = t * t * sum(kls) / len(kls)
    terms = [1 - cosine(student.last_hidden_state[b, i], teacher.last_hidden_state[b, i])
             for b, n in enumerate(LENGTHS) for i in range(n)]
    cos = sum(terms) / len(terms)
    mlm = student.mlm_loss.item()
    return ce, cos, a_ce * ce + a_mlm * mlm + a_cos * cos


@pytest.mark.parametrize("options", [{}, {"temperature": 1.0, "alpha_ce": 0.5, "alpha_mlm": 0.0, "alpha_cos": 3.0}],
                         ids=["released-5-2-1-t2", "other-weights"])
def test_loss_matches_the_written_out_formula(options) -> None:
    batch = make_batch()
    student, teacher = random_output(STUDENT, batch, 1), random_output(TEACHER_TWICE_DEEP, batch, 2)
    losses = build_strategy("distilbert", STUDENT, TEACHER_TWICE_DEEP, **options)(student, teacher, batch)
    weights = {"temperature": 2.0, "alpha_ce": 5.0, "alpha_mlm": 2.0, "alpha_cos": 1.0, **options}
    ce, cos, total = reference(student, teacher, weights["temperature"], weights["alpha_ce"],
                               weights["alpha_mlm"], weights["alpha_cos"])
    assert set(losses) == {"loss", "ce", "mlm", "cos"}
    assert math.isclose(losses["ce"].item(), ce, rel_tol=1e-5)
    assert math.isclose(losses["cos"].item(), cos, rel_tol=1e-5)
    assert close(losses["mlm"], student.mlm_loss)
    assert math.isclose(losses["loss"].item(), total, rel_tol=1e-5)


def test_a_hand_computed_case() -> None:
    """One sequence of two real tokens and one padded, one masked position, vocabulary 2, width 2."""
    batch = {"input_ids": torch.tensor([[5, 6, 0]]), "attention_mask": torch.tensor([[1, 1, 0]]),
             "labels": torch.tensor([[-100, 1, -100]])}
    hidden_s = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [7.0, 7.0]]])
    hidden_t = torch.tensor([[[1.0, 1.0], [0.0, 3.0], [-7.0, 7.0]]])  # the padded row must not count
    student = MLMOutput(hidden_s, 2, logits=torch.tensor([[0.0, 0.0]]), mlm_loss=torch.tensor(math.log(2)))
    teacher = MLMOutput(hidden_t, 4, logits=torch.tensor([[0.0, 2.0 * math.log(3)]]))
    config = bert_config(2, 2, 1, 4, 2, max_positions=8)
    teacher_config = bert_config(4, 2, 1, 4, 2, max_positions=8)
    losses = build_strategy("distilbert", config, teacher_config)(student, teacher, batch)
    # t = 2: teacher probabilities softmax(0, log 3) = (1/4, 3/4), student's (1/2, 1/2);
    # KL = 1/4 log(1/2) + 3/4 log(3/2); times t^2 = 4: log(1/2) + 3 log(3/2) = 3 log 3 - 4 log 2.
    ce = 3 * math.log(3) - 4 * math.log(2)
    # cos((1,0), (1,1)) = 1/sqrt(2); cos((0,2), (0,3)) = 1: mean of 1 - cos over the two real tokens.
    cos = (1 - 1 / math.sqrt(2)) / 2
    assert math.isclose(losses["ce"].item(), ce, rel_tol=1e-5)
    assert math.isclose(losses["cos"].item(), cos, rel_tol=1e-5)
    assert math.isclose(losses["loss"].item(), 5 * ce + 2 * math.log(2) + cos, rel_tol=1e-5)


def test_layer_selection() -> None:
    assert teacher_layers(6, 12) == [0, 2, 4, 7, 9, 11]  # the released extract_distilbert.py
    assert teacher_layers(12, 24) == [0, 2, 4, 6, 8, 10, 13, 15, 17, 19, 21, 23]
    assert teacher_layers(2, 4) == [0, 3]
    assert teacher_layers(3, 3) == [0, 1, 2]
    assert teacher_layers(1, 12) == [0]
    with pytest.raises(ValueError, match="7-layer student"):
        teacher_layers(7, 6)


def test_student_starts_as_the_chosen_teacher_layers() -> None:
    torch.manual_seed(0)
    teacher_config = bert_config(12, 32, 4, 37, VOCAB, max_positions=64)
    student_config = bert_config(6, 32, 4, 37, VOCAB, max_positions=32)  # fewer positions: the first rows
    teacher, student = KDBertForMaskedLM(teacher_config), KDBertForMaskedLM(student_config)
    record = build_strategy("distilbert", student_config, teacher_config).init_student(student, teacher)
    assert record == {"teacher_layers": [0, 2, 4, 7, 9, 11]}
    ours, theirs = student.state_dict(), teacher.state_dict()
    for i, j in enumerate([0, 2, 4, 7, 9, 11]):
        layer = f"bert.encoder.layer.{i}."
        keys = [k for k in ours if k.startswith(layer)]
        assert len(keys) == 16  # Q, K, V, attention output, its LayerNorm, intermediate, output, its LayerNorm
        for key in keys:
            assert torch.equal(ours[key], theirs[f"bert.encoder.layer.{j}.{key[len(layer):]}"]), key
    for key in ("bert.embeddings.word_embeddings.weight", "bert.embeddings.token_type_embeddings.weight",
                "bert.embeddings.LayerNorm.weight", "cls.predictions.bias", "cls.predictions.transform.dense.weight",
                "cls.predictions.transform.LayerNorm.bias"):
        assert torch.equal(ours[key], theirs[key]), key
    positions = "bert.embeddings.position_embeddings.weight"
    assert torch.equal(ours[positions], theirs[positions][:32])
    # Still tied, and the same model where it counts: an equal-depth student computes the teacher's outputs.
    assert student.cls.predictions.decoder.weight is student.bert.embeddings.word_embeddings.weight
    twin, same_depth = KDBertForMaskedLM(teacher_config).eval(), build_strategy("distilbert", teacher_config,
                                                                                teacher_config)
    same_depth.init_student(twin, teacher)
    batch = make_batch()
    losses = same_depth(twin(**batch, request=same_depth.student_needs),
                        teacher_forward(teacher, batch, same_depth.teacher_needs), batch)
    assert abs(losses["ce"].item()) < 1e-6 and abs(losses["cos"].item()) < 1e-6


@pytest.mark.parametrize("teacher_config,expected", [
    (bert_config(4, 48, 4, 37, VOCAB, max_positions=64), "hidden 32 != 48"),
    (bert_config(4, 32, 2, 37, VOCAB, max_positions=64), "heads 4 != 2"),
    (bert_config(4, 32, 4, 64, VOCAB, max_positions=64), "intermediate 37 != 64"),
    (bert_config(4, 32, 4, 37, VOCAB, max_positions=64, layer_norm="pre"), "layer_norm post != pre"),
    (bert_config(4, 32, 4, 37, VOCAB, max_positions=16), "max_positions 64 > 16"),
    (bert_config(1, 32, 4, 37, VOCAB, max_positions=64), "2-layer student"),
])
def test_a_student_of_another_shape_is_refused(teacher_config, expected) -> None:
    with pytest.raises(ValueError) as caught:
        build_strategy("distilbert", STUDENT, teacher_config)
    assert expected in str(caught.value)
    assert "groups.<group>.student" in str(caught.value) or "student layers" in str(caught.value)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="temperature"):
        build_strategy("distilbert", STUDENT, TEACHER_TWICE_DEEP, temperature=0.0)
    with pytest.raises(ValueError, match="not all 0"):
        build_strategy("distilbert", STUDENT, TEACHER_TWICE_DEEP, alpha_ce=0, alpha_mlm=0, alpha_cos=0)
    with pytest.raises(ValueError, match="teacher"):
        build_strategy("distilbert", STUDENT, None)


# ---------------------------------------------------------------------------
# Through the trainer


def _spec(tmp_path, data, teacher_dir, **overrides) -> RunSpec:
    return RunSpec.from_dict(tiny_spec(tmp_path, data, name="distilbert2", strategy="distilbert",
                                       teacher_dir=str(teacher_dir), **overrides))


def _as_teacher_key(key: str, chosen: list[int]) -> str:
    if key.startswith("bert.encoder.layer."):
        index, rest = key[len("bert.encoder.layer."):].split(".", 1)
        return f"bert.encoder.layer.{chosen[int(index)]}.{rest}"
    return key


def test_a_pretraining_run_starts_from_the_teacher_and_says_so(tmp_path, packed_data) -> None:
    meta = json.loads((packed_data / "meta.json").read_text())
    teacher_dir = make_teacher(tmp_path, packed_data, meta["vocab_size"])  # 4 layers, the tiny student's shape
    # At learning rate 0 the trained student is its initialisation: the teacher's layers 0 and 3.
    summary = pretrain(_spec(tmp_path, packed_data, teacher_dir, optim={"lr": 0.0}))
    assert summary["init_from_teacher"] is True and summary["student_init"] == {"teacher_layers": [0, 3]}
    assert summary["steps"] == 12
    student = load_file(tmp_path / "out" / "distilbert2" / "model.safetensors")
    teacher = load_file(teacher_dir / "model.safetensors")
    compared = [k for k in student if _as_teacher_key(k, [0, 3]) in teacher]
    assert len(compared) >= 2 * 16 + 5
    for key in compared:
        assert torch.equal(student[key], teacher[_as_teacher_key(key, [0, 3])]), key
    written = json.loads((tmp_path / "out" / "distilbert2" / "summary.json").read_text())
    assert written["init_from_teacher"] is True and written["student_init"]["teacher_layers"] == [0, 3]
    rows = [json.loads(line) for line in (tmp_path / "out" / "distilbert2" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "ce", "mlm", "cos"} <= set(rows[0])
    # A run that does not initialise from the teacher says so too.
    nokd = pretrain(RunSpec.from_dict(tiny_spec(tmp_path, packed_data)))
    assert nokd["init_from_teacher"] is False and nokd["student_init"] is None


def test_a_resumed_run_keeps_the_checkpoints_weights(tmp_path, packed_data, monkeypatch) -> None:
    """The checkpoint's weights win: a resumed run never copies the teacher into its student again."""
    import kdbudget.train.trainer as trainer
    from kdbudget.train.orphan import ParentWatch

    meta = json.loads((packed_data / "meta.json").read_text())
    teacher_dir = make_teacher(tmp_path, packed_data, meta["vocab_size"])

    class GoneAfterTheLoop(ParentWatch):  # as in test_train: a checkpoint after the last step, no model yet
        def orphaned(self, *, now: bool = False) -> bool:
            return now

    monkeypatch.setattr(trainer, "ParentWatch", GoneAfterTheLoop)
    spec = _spec(tmp_path, packed_data, teacher_dir)
    with pytest.raises(trainer.Interrupted):
        pretrain(spec)
    state = load_checkpoint(spec.checkpoint_dir)
    assert state["progress"]["student_init"] == {"teacher_layers": [0, 3]}
    key = "bert.encoder.layer.1.attention.self.query.weight"
    marked = torch.full_like(state["student"][key], 0.125)  # neither trained nor the teacher's
    state["student"][key] = marked
    save_checkpoint(spec.checkpoint_dir, state)

    monkeypatch.setattr(trainer, "ParentWatch", ParentWatch)
    summary = pretrain(spec)
    assert summary["resumes"] == 1
    assert summary["init_from_teacher"] is True and summary["student_init"] == {"teacher_layers": [0, 3]}
    assert torch.equal(load_file(Path(spec.out_dir) / "model.safetensors")[key], marked)
