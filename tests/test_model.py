"""KDBertForMaskedLM against transformers' BertForMaskedLM, and checkpoint I/O."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import AutoModelForMaskedLM, BertConfig, BertForMaskedLM

from kdbudget.model import (
    KDBertForMaskedLM,
    Request,
    UnsafeCheckpointError,
    bert_config,
    hf_io,
    load_pretrained,
    save_pretrained,
)

VOCAB, LENGTH, BATCH = 99, 16, 3


def tiny_config(**overrides) -> BertConfig:
    return bert_config(2, 32, 4, 37, VOCAB, max_positions=64, **overrides)


def make_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """Padding of different lengths, 2-4 masked positions per sequence."""
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, VOCAB, (BATCH, LENGTH), generator=g)
    attention_mask = torch.ones(BATCH, LENGTH, dtype=torch.long)
    attention_mask[1, 11:] = 0
    attention_mask[2, 6:] = 0
    input_ids[attention_mask == 0] = 0
    labels = torch.full_like(input_ids, -100)
    for row, positions in enumerate([(1, 4, 9, 15), (0, 7), (2, 3, 5)]):
        labels[row, list(positions)] = torch.randint(0, VOCAB, (len(positions),), generator=g)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.fixture
def hf_model() -> BertForMaskedLM:
    torch.manual_seed(0)
    config = tiny_config()
    config._attn_implementation = "eager"  # the explicit reference for scores and probabilities
    model = BertForMaskedLM(config).eval()
    with torch.no_grad():  # HF initialises LayerNorms to (1, 0) and biases to 0: perturb them so they are tested
        for name, param in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                param.add_(0.1 * torch.randn_like(param))
    return model


def test_state_dict_maps_one_to_one_onto_hf() -> None:
    ours = KDBertForMaskedLM(tiny_config())
    theirs = BertForMaskedLM(tiny_config())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        assert ours.state_dict()[key].shape == value.shape, key
    decoder = ours.cls.predictions.decoder
    assert decoder.weight is ours.bert.embeddings.word_embeddings.weight
    assert decoder.bias is ours.cls.predictions.bias


def test_hf_checkpoint_loads_with_equal_logits(tmp_path, hf_model) -> None:
    hf_model.save_pretrained(tmp_path / "hf")
    ours = load_pretrained(tmp_path / "hf").eval()
    batch = make_batch()
    with torch.no_grad():
        reference = hf_model(**batch)
        out = ours(**batch)
    masked = batch["labels"] != -100
    assert out.logits.shape == (int(masked.sum()), VOCAB)
    assert rel_err(out.logits, reference.logits[masked]) < 1e-5
    assert out.mlm_loss.dtype == torch.float32
    assert math.isclose(out.mlm_loss.item(), reference.loss.item(), rel_tol=1e-5)
    with torch.no_grad():  # without labels: every position
        full = ours(batch["input_ids"], batch["attention_mask"])
    assert rel_err(full.logits, reference.logits) < 1e-5


def test_our_checkpoint_loads_in_transformers_with_equal_logits(tmp_path, hf_model) -> None:
    ours = KDBertForMaskedLM(tiny_config())
    ours.load_state_dict(hf_model.state_dict())  # non-trivial LayerNorms and biases
    out_dir = save_pretrained(ours, tmp_path / "student")
    config = json.loads((out_dir / "config.json").read_text())
    assert config["model_type"] == "bert" and config["architectures"] == ["BertForMaskedLM"]
    assert sorted(p.name for p in out_dir.iterdir()) == ["config.json", "model.safetensors"]

    loaded, info = AutoModelForMaskedLM.from_pretrained(out_dir, output_loading_info=True)
    assert type(loaded).__name__ == "BertForMaskedLM"
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    batch = make_batch(1)
    with torch.no_grad():
        reference = loaded.eval()(**batch).logits[batch["labels"] != -100]
        logits = ours.eval()(**batch).logits
    assert rel_err(logits, reference) < 1e-5
    # And back: transformers' own save loads into ours with the same logits.
    loaded.save_pretrained(tmp_path / "again")
    with torch.no_grad():
        again = load_pretrained(tmp_path / "again").eval()(**batch).logits
    assert rel_err(again, reference) < 1e-5


def test_internals_of_selected_layers_match_explicit_attention(hf_model) -> None:
    ours = KDBertForMaskedLM(tiny_config()).eval()
    ours.load_state_dict(hf_model.state_dict())
    batch = make_batch(2)
    captured = {}
    last = hf_model.bert.encoder.layer[-1].attention.self
    hooks = [
        getattr(last, name).register_forward_hook(lambda m, i, o, name=name: captured.__setitem__(name, o))
        for name in ("query", "key", "value")
    ]
    with torch.no_grad():
        reference = hf_model(**batch, output_attentions=True, output_hidden_states=True)
        request = Request(embeddings=True, hidden_states=True, layers=(-1,), scores=True, probs=True,
                          queries=True, keys=True, values=True)
        out = ours(**batch, request=request)
        plain = ours(**batch)
    for hook in hooks:
        hook.remove()

    def heads(x):  # [B, L, 32] -> [B, 4, L, 8]
        return x.view(BATCH, LENGTH, 4, 8).transpose(1, 2)

    q, k, v = (heads(captured[name]) for name in ("query", "key", "value"))
    padded_keys = (1 - batch["attention_mask"])[:, None, None, :].float()
    expected_scores = q @ k.transpose(-1, -2) / math.sqrt(8) - 10000.0 * padded_keys
    internals = out.layer(-1)
    assert set(out.layers) == {1}
    assert torch.allclose(internals.scores, expected_scores, atol=1e-5, rtol=1e-5)
    assert torch.allclose(internals.probs, reference.attentions[-1], atol=1e-6)
    assert torch.allclose(internals.queries, q, atol=1e-6)
    assert torch.allclose(internals.keys, k, atol=1e-6)
    assert torch.allclose(internals.values, v, atol=1e-6)
    assert torch.allclose(out.embeddings, reference.hidden_states[0], atol=1e-6)
    assert len(out.hidden_states) == 3
    for ours_h, theirs_h in zip(out.hidden_states, reference.hidden_states, strict=True):
        assert torch.allclose(ours_h, theirs_h, atol=1e-5)
    assert torch.allclose(out.last_hidden_state, reference.hidden_states[-1], atol=1e-5)
    # The explicit path in the last layer gives the same logits as SDPA everywhere.
    assert rel_err(out.logits, plain.logits) < 1e-5


def test_only_selected_layers_leave_the_fused_kernel(monkeypatch) -> None:
    model = KDBertForMaskedLM(bert_config(4, 32, 4, 37, VOCAB, 64)).eval()
    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    batch = make_batch()
    model(**batch, request=Request(layers=(-1, 0), scores=True))
    assert len(calls) == 2
    calls.clear()
    out = model(**batch, request=Request(layers=(-1,), queries=True, keys=True, values=True))
    assert len(calls) == 4  # Q, K, V alone keep SDPA
    assert out.layer(3).scores is None and out.layer(3).values.shape == (BATCH, 4, LENGTH, 8)


def test_request_returns_only_what_was_asked() -> None:
    model = KDBertForMaskedLM(tiny_config()).eval()
    head_calls = []
    model.cls.register_forward_hook(lambda *args: head_calls.append(1))
    batch = make_batch()
    out = model(**batch, request=Request(logits=False, mlm_loss=False))
    assert out.logits is None and out.mlm_loss is None and not head_calls
    assert out.embeddings is None and out.hidden_states is None and not out.layers
    with pytest.raises(KeyError):
        out.layer(-1)
    out = model(**batch, request=Request(mlm_loss=False))
    assert out.logits is not None and out.mlm_loss is None and head_calls
    with pytest.raises(ValueError):
        Request(layers=(-1,))  # a layer without anything to return
    with pytest.raises(ValueError):
        Request(scores=True)  # internals without a layer
    with pytest.raises(IndexError):
        model(**batch, request=Request(layers=(2,), values=True))


def test_loss_is_fp32_under_bf16_autocast() -> None:
    model = KDBertForMaskedLM(tiny_config())
    batch = make_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**batch, request=Request(layers=(-1,), scores=True))
    assert out.logits.dtype == torch.bfloat16
    assert out.mlm_loss.dtype == torch.float32
    reference = F.cross_entropy(out.logits.float(), batch["labels"][batch["labels"] != -100])
    assert torch.allclose(out.mlm_loss, reference)


def test_init_follows_bert() -> None:
    torch.manual_seed(0)
    model = KDBertForMaskedLM.from_sizes(2, 64, 4, 128, 500, 128)
    assert model.config.num_hidden_layers == 2 and model.config.intermediate_size == 128
    words = model.bert.embeddings.word_embeddings.weight
    assert abs(words[1:].std().item() - 0.02) < 0.001
    assert torch.all(words[model.config.pad_token_id] == 0)
    dense = model.bert.encoder.layer[0].intermediate.dense
    assert abs(dense.weight.std().item() - 0.02) < 0.001 and torch.all(dense.bias == 0)
    assert torch.all(model.bert.encoder.layer[1].output.LayerNorm.weight == 1)
    assert torch.all(model.cls.predictions.bias == 0)


def test_old_checkpoint_spellings_load(tmp_path, hf_model) -> None:
    """gamma/beta names, a pooler and NSP head, the tied decoder stored: like bert-base-uncased."""
    state = {}
    for key, value in hf_model.state_dict().items():
        key = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        state[key] = value.clone()
    state["bert.pooler.dense.weight"] = torch.zeros(32, 32)
    state["cls.seq_relationship.weight"] = torch.zeros(2, 32)
    (tmp_path / "old").mkdir()
    save_file(state, tmp_path / "old" / "model.safetensors")
    hf_model.config.to_json_file(tmp_path / "old" / "config.json")
    ours = load_pretrained(tmp_path / "old").eval()
    batch = make_batch()
    with torch.no_grad():
        assert rel_err(ours(**batch).logits, hf_model(**batch).logits[batch["labels"] != -100]) < 1e-5


def test_untied_or_incomplete_checkpoints_are_refused(tmp_path, hf_model) -> None:
    state = {k: v.clone() for k, v in hf_model.state_dict().items()}
    state["cls.predictions.decoder.weight"] += 1.0
    (tmp_path / "untied").mkdir()
    save_file(state, tmp_path / "untied" / "model.safetensors")
    hf_model.config.to_json_file(tmp_path / "untied" / "config.json")
    with pytest.raises(ValueError, match="untied"):
        load_pretrained(tmp_path / "untied")

    del state["cls.predictions.decoder.weight"]
    del state["cls.predictions.transform.dense.weight"]
    (tmp_path / "partial").mkdir()
    save_file(state, tmp_path / "partial" / "model.safetensors")
    hf_model.config.to_json_file(tmp_path / "partial" / "config.json")
    with pytest.raises(ValueError, match="cls.predictions.transform.dense.weight"):
        load_pretrained(tmp_path / "partial")


def test_pickle_only_checkpoint_is_refused_without_unpickling(tmp_path, hf_model) -> None:
    directory = tmp_path / "pickled"
    directory.mkdir()
    hf_model.config.to_json_file(directory / "config.json")
    # Not even a valid pickle: any attempt to unpickle would fail differently.
    (directory / "pytorch_model.bin").write_bytes(b"\x80\x04 definitely not safe")
    with pytest.raises(UnsafeCheckpointError, match="pytorch_model.bin"):
        load_pretrained(directory)


def test_hub_names_are_not_downloaded_unless_asked(monkeypatch) -> None:
    seen = {}

    def fake_snapshot_download(repo_id, **kwargs):
        seen.update(kwargs, repo_id=repo_id)
        raise OSError("not in the cache")

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    with pytest.raises(FileNotFoundError, match="allow_download=True"):
        load_pretrained("someone/some-bert")
    assert seen["repo_id"] == "someone/some-bert" and seen["local_files_only"] is True
    assert not any(p.endswith(".bin") for p in seen["allow_patterns"])


def test_save_is_atomic_and_replaces(tmp_path, monkeypatch) -> None:
    first = KDBertForMaskedLM(tiny_config())
    second = KDBertForMaskedLM(tiny_config())
    target = tmp_path / "ckpt"
    save_pretrained(first, target)
    save_pretrained(second, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no staging or retired copies left
    stored = load_file(target / "model.safetensors")
    assert "cls.predictions.decoder.weight" not in stored
    assert torch.equal(stored["cls.predictions.transform.dense.weight"], second.cls.predictions.transform.dense.weight)
    with pytest.raises(FileExistsError):
        save_pretrained(first, target, overwrite=False)

    def broken_save_file(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(hf_io, "save_file", broken_save_file)
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(first, tmp_path / "never")
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(first, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    stored_after = load_file(target / "model.safetensors")  # the old checkpoint survives a failed save
    assert torch.equal(stored_after["cls.predictions.bias"], stored["cls.predictions.bias"])


def test_pass_stops_after_the_internals_it_needs() -> None:
    """Without logits or hidden states, nothing after the deepest selected attention runs."""
    model = KDBertForMaskedLM(bert_config(3, 32, 4, 37, VOCAB, 64)).eval()
    called = []
    for index, layer in enumerate(model.bert.encoder.layer):
        layer.intermediate.register_forward_hook(lambda *args, index=index: called.append(index))
    batch = make_batch()
    for flags in ({"scores": True, "values": True}, {"queries": True, "keys": True, "values": True}):
        full = model(**batch, request=Request(layers=(1,), **flags))
        assert called == [0, 1, 2]
        called.clear()
        request = Request(logits=False, mlm_loss=False, last_hidden_state=False, layers=(1,), **flags)
        assert request.depth(3) == (1, True)
        early = model(**batch, request=request)
        assert called == [0]  # layer 1 ran only its self-attention
        called.clear()
        assert early.last_hidden_state is None and early.logits is None
        for name, value in vars(full.layer(1)).items():
            assert (value is None) == (getattr(early.layer(1), name) is None), name
            if value is not None:
                assert torch.allclose(value, getattr(early.layer(1), name), atol=1e-6), name
