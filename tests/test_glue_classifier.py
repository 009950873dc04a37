"""GLUE's classification model: pretrained students (post-LN BERT, pre-LN RoBERTa-PreLayerNorm directories) loaded
as transformers sequence classifiers, checked against our own encoder with BERT's head computed by hand, saved so
that `AutoModelForSequenceClassification` loads them, and given a fresh seeded head."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoModelForSequenceClassification,
    BertForSequenceClassification,
    RobertaPreLayerNormForSequenceClassification,
)

from kdbudget.glue.classifier import PoolerHead, head_layers, load_classifier, save_classifier
from kdbudget.glue.tasks import get_task
from kdbudget.model import KDBertForMaskedLM, Request, bert_config, save_pretrained

VOCAB, HIDDEN, MAX_POSITIONS = 99, 32, 24
ENCODER_ONLY = Request(logits=False, mlm_loss=False, last_hidden_state=True)


def student(layer_norm: str, pad: int = 0, **overrides) -> KDBertForMaskedLM:
    """A tiny student with every parameter perturbed (LayerNorms (1, 0) and zero biases would hide mapping errors)."""
    torch.manual_seed(1)
    model = KDBertForMaskedLM(bert_config(2, HIDDEN, 4, 37, VOCAB, max_positions=MAX_POSITIONS,
                                          layer_norm=layer_norm, pad_token_id=pad, **overrides))
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn_like(param))
    return model.eval()


def batch(pad: int) -> dict[str, torch.Tensor]:
    """Right padding of three lengths (one row full), two segments."""
    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, VOCAB - 1, (3, 16), generator=g)
    input_ids[input_ids >= pad] += 1  # no real token is the padding id
    attention_mask = torch.ones(3, 16, dtype=torch.long)
    attention_mask[1, 11:] = 0
    attention_mask[2, 6:] = 0
    input_ids[attention_mask == 0] = pad
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, 5:] = 1
    token_type_ids[attention_mask == 0] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def expected_logits(ours: KDBertForMaskedLM, model, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """BERT's head by hand (eval: no dropout) on our own encoder's [CLS] state: classifier(tanh(dense(h0)))."""
    hidden = ours(inputs["input_ids"], inputs["attention_mask"], token_type_ids=inputs["token_type_ids"],
                  request=ENCODER_ONLY).last_hidden_state[:, 0]
    dense, classifier = head_layers(model)
    return classifier(torch.tanh(dense(hidden)))


@pytest.mark.parametrize(("layer_norm", "pad", "task_name", "expected_class"), [
    ("post", 0, "rte", BertForSequenceClassification),
    ("pre", 0, "mnli", RobertaPreLayerNormForSequenceClassification),
    ("pre", 3, "stsb", RobertaPreLayerNormForSequenceClassification)])
def test_students_load_and_save_as_transformers_classifiers(tmp_path: Path, layer_norm: str, pad: int,
                                                            task_name: str, expected_class: type) -> None:
    task = get_task(task_name)
    ours = student(layer_norm, pad)
    save_pretrained(ours, tmp_path / "pretrained")
    model = load_classifier(tmp_path / "pretrained", task, seed=42).eval()
    assert type(model) is expected_class and model.config._attn_implementation == "sdpa"
    assert model.config.num_labels == task.num_labels and next(model.parameters()).dtype == torch.float32
    with torch.no_grad():
        for layer in head_layers(model):  # a fresh head has zero biases, which would hide a swapped bias
            layer.bias.add_(0.1 * torch.randn_like(layer.bias))
        inputs = batch(pad)
        expected = expected_logits(ours, model, inputs)
        torch.testing.assert_close(model(**inputs).logits, expected, rtol=1e-5, atol=1e-5)

    out_dir = save_classifier(model, tmp_path / "pretrained", tmp_path / "kept", {"dev": {"main": 0.5}})
    config = json.loads((out_dir / "config.json").read_text())
    assert config["architectures"] == [expected_class.__name__]
    assert config["problem_type"] == ("regression" if task.is_regression else "single_label_classification")
    if layer_norm == "pre":  # RoBERTa numbers positions from padding_idx + 1
        assert config["model_type"] == "roberta-prelayernorm"
        assert config["max_position_embeddings"] == MAX_POSITIONS + pad + 1
    theirs, info = AutoModelForSequenceClassification.from_pretrained(out_dir, output_loading_info=True)
    assert type(theirs) is expected_class
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    with torch.no_grad():  # the stock classes compute the same function in eval mode
        torch.testing.assert_close(theirs.eval()(**inputs).logits, expected, rtol=1e-5, atol=1e-5)
    assert json.loads((out_dir / "result.json").read_text()) == {"dev": {"main": 0.5}}


def test_pre_ln_head_drops_out_once_as_bert_does(tmp_path: Path) -> None:
    """RoBERTa's stock head applies dropout twice in training; both arms get BERT's single dropout."""
    save_pretrained(student("pre"), tmp_path / "pre")
    save_pretrained(student("post"), tmp_path / "post")
    calls = {}
    for name in ("pre", "post"):
        model = load_classifier(tmp_path / name, get_task("sst2"), seed=0).train()
        dropout = model.classifier.dropout if name == "pre" else model.dropout
        calls[name] = 0

        def count(*_, name=name) -> None:
            calls[name] += 1

        dropout.register_forward_hook(count)
        model(**batch(0))
    assert isinstance(load_classifier(tmp_path / "pre", get_task("sst2"), seed=0).classifier, PoolerHead)
    assert calls == {"pre": 1, "post": 1}


def test_every_model_gets_a_fresh_seeded_head(tmp_path: Path) -> None:
    """A checkpoint's own pooler (a hub teacher's, from NSP) is replaced by N(0, 0.02) draws right after seeding."""
    save_pretrained(student("post"), tmp_path / "hub")
    weights = tmp_path / "hub" / "model.safetensors"
    state = load_file(weights)
    state |= {"bert.pooler.dense.weight": torch.ones(HIDDEN, HIDDEN), "bert.pooler.dense.bias": torch.ones(HIDDEN)}
    save_file(state, weights, metadata={"format": "pt"})
    task = get_task("mnli")
    model = load_classifier(tmp_path / "hub", task, seed=7)
    torch.manual_seed(7)
    pooler, classifier = torch.randn(HIDDEN, HIDDEN) * 0.02, torch.randn(task.num_labels, HIDDEN) * 0.02
    dense, out = head_layers(model)
    torch.testing.assert_close(dense.weight, pooler, rtol=1e-6, atol=0)
    torch.testing.assert_close(out.weight, classifier, rtol=1e-6, atol=0)
    assert not dense.bias.any() and not out.bias.any()
    other = head_layers(load_classifier(tmp_path / "hub", task, seed=8))[0].weight
    assert not torch.equal(other, dense.weight)


def test_a_checkpoint_without_encoder_weights_is_refused(tmp_path: Path) -> None:
    save_pretrained(student("post"), tmp_path / "broken")
    weights = tmp_path / "broken" / "model.safetensors"
    state = load_file(weights)
    del state["bert.encoder.layer.1.output.dense.weight"]
    save_file(state, weights, metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"missing weights \['bert.encoder.layer.1.output.dense.weight'\]"):
        load_classifier(tmp_path / "broken", get_task("sst2"), seed=0)
