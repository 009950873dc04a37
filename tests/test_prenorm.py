"""The pre-LN student (the released No-KD code's layout) against transformers'
RobertaPreLayerNormForMaskedLM, its checkpoints, and the `layer_norm` setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForMaskedLM, RobertaPreLayerNormConfig, RobertaPreLayerNormForMaskedLM

from kdbudget.config import validate_config
from kdbudget.model import KDBertForMaskedLM, Request, bert_config, hf_io, load_pretrained, save_pretrained
from kdbudget.plan import plan_models, student_spec, teacher_spec
from kdbudget.train.spec import Shape

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"

VOCAB, LENGTH, BATCH, MAX_POSITIONS = 99, 16, 3, 24


def tiny_config(pad: int = 0, **overrides):
    return bert_config(2, 32, 4, 37, VOCAB, max_positions=MAX_POSITIONS, layer_norm="pre", pad_token_id=pad,
                       **overrides)


def make_batch(pad: int = 0, seed: int = 0) -> dict[str, torch.Tensor]:
    """Right padding of different lengths (one row fills every position), 2-4 masked positions per row."""
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, VOCAB - 1, (BATCH, LENGTH), generator=g)
    input_ids[input_ids >= pad] += 1  # no real token is the padding id
    attention_mask = torch.ones(BATCH, LENGTH, dtype=torch.long)
    attention_mask[1, 11:] = 0
    attention_mask[2, 6:] = 0
    input_ids[attention_mask == 0] = pad
    labels = torch.full_like(input_ids, -100)
    for row, positions in enumerate([(1, 4, 9, 15), (0, 7), (2, 3, 5)]):
        labels[row, list(positions)] = torch.randint(0, VOCAB, (len(positions),), generator=g)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """LayerNorms (1, 0) and zero biases would hide mapping errors: perturb every parameter."""
    torch.manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn_like(param))
    return model.eval()


def ours_with_weights_of(theirs: RobertaPreLayerNormForMaskedLM, config) -> KDBertForMaskedLM:
    """Our model with `theirs`' weights, mapped by hand (independent of hf_io)."""
    pad = config.pad_token_id
    names = {
        "roberta_prelayernorm.LayerNorm.": "bert.encoder.LayerNorm.",
        "roberta_prelayernorm.": "bert.",
        "lm_head.dense.": "cls.predictions.transform.dense.",
        "lm_head.layer_norm.": "cls.predictions.transform.LayerNorm.",
        "lm_head.bias": "cls.predictions.bias",
    }
    state = {}
    for key, value in theirs.state_dict().items():
        if key.startswith("lm_head.decoder."):
            continue
        prefix = next(p for p in names if key.startswith(p))
        state[names[prefix] + key[len(prefix):]] = value
    positions = "bert.embeddings.position_embeddings.weight"
    state[positions] = state[positions][pad + 1:]
    ours = KDBertForMaskedLM(config)
    result = ours.load_state_dict(state, strict=False)
    assert not result.unexpected_keys
    assert set(result.missing_keys) <= {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    return ours.eval()


def hf_reference(pad: int) -> RobertaPreLayerNormForMaskedLM:
    config = RobertaPreLayerNormConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        max_position_embeddings=MAX_POSITIONS + pad + 1, type_vocab_size=2, pad_token_id=pad,
        layer_norm_eps=1e-12, tie_word_embeddings=True,
    )
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    return perturbed(RobertaPreLayerNormForMaskedLM(config))


def real_rows(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return batch["attention_mask"].bool()


@pytest.mark.parametrize("pad", [0, 3])
def test_pre_ln_forward_equals_transformers(pad: int) -> None:
    theirs = hf_reference(pad)
    ours = ours_with_weights_of(theirs, tiny_config(pad))
    batch = make_batch(pad)
    with torch.no_grad():
        reference = theirs(**batch, output_hidden_states=True)
        full = ours(batch["input_ids"], batch["attention_mask"], request=Request(hidden_states=True, mlm_loss=False))
        sparse = ours(**batch)
    real = real_rows(batch)  # padded positions differ (RoBERTa gives them position padding_idx); they are never read
    torch.testing.assert_close(full.logits[real], reference.logits[real], rtol=1e-5, atol=1e-5)
    masked = batch["labels"] != -100
    torch.testing.assert_close(sparse.logits, reference.logits[masked], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sparse.mlm_loss, reference.loss, rtol=1e-5, atol=1e-6)
    # Hidden states: embeddings, the residual stream after each layer, the last after the final LayerNorm.
    assert len(full.hidden_states) == len(reference.hidden_states) == 3
    for mine, hf in zip(full.hidden_states, reference.hidden_states, strict=True):
        torch.testing.assert_close(mine[real], hf[real], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(full.last_hidden_state, full.hidden_states[-1])


def test_pre_ln_layers_normalise_before_attention() -> None:
    """The Q/K/V a strategy gets are those of the pre-attention LayerNorm's output,
    whether or not the pass stops early (a mapping-free check of the block layout)."""
    model = perturbed(KDBertForMaskedLM(tiny_config()))
    batch = make_batch()
    request = dict(layers=(1,), queries=True, scores=True)
    with torch.no_grad():
        full = model(**batch, request=Request(hidden_states=True, mlm_loss=False, logits=False, **request))
        early = model(**batch, request=Request(logits=False, mlm_loss=False, last_hidden_state=False, **request))
        layer = model.bert.encoder.layer[1]
        normed = layer.attention.LayerNorm(full.hidden_states[1])
        queries = layer.attention.self.split_heads(layer.attention.self.query(normed))
    torch.testing.assert_close(full.layer(1).queries, queries)
    torch.testing.assert_close(early.layer(1).queries, queries)
    torch.testing.assert_close(early.layer(1).scores, full.layer(1).scores)


def test_post_ln_has_no_pre_ln_parameters() -> None:
    """The default is post-LN with exactly BERT's parameters (tests/test_model.py compares it with transformers)."""
    post = KDBertForMaskedLM(bert_config(2, 32, 4, 37, VOCAB, max_positions=MAX_POSITIONS))
    assert post.config.layer_norm == "post"
    pre = KDBertForMaskedLM(tiny_config())
    extra = set(pre.state_dict()) - set(post.state_dict())
    missing = set(post.state_dict()) - set(pre.state_dict())
    assert extra == {"bert.encoder.LayerNorm.weight", "bert.encoder.LayerNorm.bias"} | {
        f"bert.encoder.layer.{i}.{block}.LayerNorm.{p}"
        for i in range(2) for block in ("attention", "intermediate") for p in ("weight", "bias")}
    assert missing == {f"bert.encoder.layer.{i}.{block}.LayerNorm.{p}"
                       for i in range(2) for block in ("attention.output", "output") for p in ("weight", "bias")}
    with pytest.raises(ValueError, match="layer_norm"):
        bert_config(2, 32, 4, 37, VOCAB, layer_norm="sandwich")


@pytest.mark.parametrize("pad", [0, 3])
def test_save_loads_in_transformers_and_round_trips(tmp_path, pad: int) -> None:
    ours = perturbed(KDBertForMaskedLM(tiny_config(pad)))
    out_dir = save_pretrained(ours, tmp_path / "student")
    config = json.loads((out_dir / "config.json").read_text())
    assert config["model_type"] == "roberta-prelayernorm"
    assert config["architectures"] == ["RobertaPreLayerNormForMaskedLM"]
    assert config["max_position_embeddings"] == MAX_POSITIONS + pad + 1
    assert config["type_vocab_size"] == 2 and config["pad_token_id"] == pad

    loaded, info = AutoModelForMaskedLM.from_pretrained(out_dir, output_loading_info=True)
    assert type(loaded).__name__ == "RobertaPreLayerNormForMaskedLM"
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    loaded.eval()
    batch = make_batch(pad, seed=1)
    real = real_rows(batch)
    with torch.no_grad():
        reference = loaded(batch["input_ids"], batch["attention_mask"]).logits
        logits = ours(batch["input_ids"], batch["attention_mask"]).logits
    torch.testing.assert_close(logits[real], reference[real], rtol=1e-5, atol=1e-5)

    back = load_pretrained(out_dir)
    assert back.config.layer_norm == "pre" and back.config.max_position_embeddings == MAX_POSITIONS
    assert back.state_dict().keys() == ours.state_dict().keys()
    for key, value in ours.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    # transformers' own save of the loaded model reads back the same way.
    loaded.save_pretrained(tmp_path / "again")
    again = load_pretrained(tmp_path / "again")
    for key, value in ours.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_bert_directories_stay_bert(tmp_path) -> None:
    post = perturbed(KDBertForMaskedLM(bert_config(2, 32, 4, 37, VOCAB, max_positions=MAX_POSITIONS)))
    out_dir = save_pretrained(post, tmp_path / "post")
    assert json.loads((out_dir / "config.json").read_text())["model_type"] == "bert"
    back = load_pretrained(out_dir)
    assert back.config.layer_norm == "post"
    for key, value in post.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


def test_pre_ln_save_refuses_an_activation_roberta_cannot_express(tmp_path) -> None:
    model = KDBertForMaskedLM(tiny_config(hidden_act="relu"))
    with pytest.raises(ValueError, match="gelu"):
        save_pretrained(model, tmp_path / "relu")
    assert not (tmp_path / "relu").exists()
    RobertaPreLayerNormConfig(hidden_act="relu").save_pretrained(tmp_path / "theirs")  # and the loader refuses it
    with pytest.raises(ValueError, match="gelu"):
        hf_io.read_config(tmp_path / "theirs")


# --- the setting ------------------------------------------------------------------------------------------------


def test_shape_default_is_post() -> None:
    assert Shape(layers=2, hidden=32, heads=4, intermediate=37).layer_norm == "post"


def plan_config(fidelity: str, layer_norm: str | None) -> dict:
    """The shipped demo config (a pretrained teacher, one group of nokd and KD students), validated."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config.setdefault("pretrain", {})["fidelity"] = fidelity
    if layer_norm is not None:  # None: the schema's default
        shapes = [g["student"] for g in config["groups"].values()] + [t["shape"] for t in config["teachers"].values()]
        for shape in shapes:
            shape["layer_norm"] = layer_norm
    return validate_config(config, SCHEMA)


def _norms(nokd: str, kd: str) -> dict[str, str]:
    """The demo group's placements: its No-KD student's, and every KD student's."""
    return {"nokd6": nokd, **dict.fromkeys(("vanillakd6", "minilm6", "tinybert6", "distilbert6", "mobilebert6"), kd)}


@pytest.mark.parametrize(("fidelity", "layer_norm", "expected"), [
    ("paper_code", None, _norms("pre", "post")),
    ("paper_code", "auto", _norms("pre", "post")),
    ("paper", None, _norms("post", "post")),
    ("paper", "pre", _norms("pre", "pre")),
    ("paper_code", "post", _norms("post", "post")),
])
def test_plan_resolves_layer_norm(fidelity: str, layer_norm: str | None, expected: dict[str, str]) -> None:
    config = plan_config(fidelity, layer_norm)
    assert config["groups"]["unlimited6"]["student"]["layer_norm"] == (layer_norm or "auto")
    models = plan_models(config)
    assert {name: model.shape["layer_norm"] for name, model in models.items()} == expected
    assert config["groups"]["unlimited6"]["student"]["layer_norm"] == (layer_norm or "auto")  # not rewritten
    for model in models.values():
        spec = student_spec(config, model, data_dir="d", out_dir="o", checkpoint_dir="c", teacher_dir=None,
                            reference_summary=None)
        assert Shape(**spec["student"]).layer_norm == expected[model.name]  # what the trainer reads


@pytest.mark.parametrize(("fidelity", "layer_norm", "expected"), [
    ("paper_code", None, "post"), ("paper", None, "post"), ("paper_code", "pre", "pre")])
def test_pretrained_teacher_auto_is_post(fidelity: str, layer_norm: str | None, expected: str) -> None:
    """A teacher the pipeline pretrains runs the nokd strategy, but stays BERT (post-LN) unless told."""
    spec = teacher_spec(plan_config(fidelity, layer_norm), "demo12", data_dir="d", out_dir="o", checkpoint_dir="c")
    assert Shape(**spec["student"]).layer_norm == expected
