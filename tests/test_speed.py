"""The speed switches of a pretraining step (kdbudget.train.speed), on the CPU: compiled and eager
steps agree, a compiler failure falls back to eager, fused AdamW only where it belongs, a bf16
teacher, pinning, the host-side index of the sparse MLM head, and the peak table behind MFU.

Compilation here uses the aot_eager backend: it traces and compiles the graphs as inductor would
but runs them with eager kernels, in seconds (inductor takes about a minute per graph on two
busy cores); the trainer's default backend is inductor."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from conftest import ROOT, tiny_spec

from kdbudget.config import validate_config
from kdbudget.model import KDBertForMaskedLM, bert_config, masked_positions
from kdbudget.model.bert import run_layer
from kdbudget.plan import common_spec
from kdbudget.strategies import build_strategy
from kdbudget.train import speed
from kdbudget.train.distributed import World
from kdbudget.train.hardware import mfu, peak_flops, peak_flops_for
from kdbudget.train.optim import build_optimizer
from kdbudget.train.runtime import autocast_context
from kdbudget.train.spec import RunSpec
from kdbudget.train.step import StepParts, train_step
from kdbudget.train.trainer import pretrain

VOCAB = 90
BACKEND = "aot_eager"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()  # compiled variants of run_layer from another test must not be reused
    torch._dynamo.utils.counters.clear()
    yield
    torch._dynamo.reset()


def _graphs_compiled() -> int:
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def _models(strategy: str = "nokd", seed: int = 0):
    torch.manual_seed(seed)
    student_config = bert_config(2, 32, 4, 64, VOCAB, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    teacher_config = bert_config(3, 32, 4, 64, VOCAB, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    student = KDBertForMaskedLM(student_config).train()
    teacher = KDBertForMaskedLM(teacher_config).requires_grad_(False) if strategy != "nokd" else None
    return student, teacher, build_strategy(strategy, student_config, teacher_config if teacher else None)


def _batch(rows: int = 4, length: int = 16, seed: int = 1) -> dict[str, torch.Tensor]:
    """The real format: ids, a padding mask (one short row), labels -100 except at masked positions."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (rows, length), generator=g)
    mask = torch.ones_like(ids)
    mask[-1, length // 2:] = 0
    labels = torch.full_like(ids, -100)
    labels[:, 2:5] = ids[:, 2:5]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _parts(student, teacher, strategy, compiled=None, amp=None) -> StepParts:
    optimizer = build_optimizer([student, strategy], lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    cpu = torch.device("cpu")
    return StepParts(student, teacher, strategy, optimizer, torch.amp.GradScaler("cpu", enabled=False),
                     autocast_context(cpu, amp), cpu, World(), compiled)


def _step(parts: StepParts, batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    return {k: float(v) for k, v in train_step(parts, iter(batches), len(batches)).items()}


def test_host_index_selects_exactly_what_boolean_indexing_selects():
    """The sparse head gathered by a host-made index (no device sync) gives bit-identical logits,
    loss and gradients to the boolean selection."""
    student, _, _ = _models()
    batch = _batch()
    index = masked_positions(batch["labels"])
    assert index.tolist() == (batch["labels"].reshape(-1) != -100).nonzero().squeeze(1).tolist()
    outputs, grads = [], []
    for masked_index in (None, index):
        student.zero_grad()
        out = student(batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"],
                      masked_index=masked_index)
        out.mlm_loss.backward()
        outputs.append(out)
        grads.append({n: p.grad.clone() for n, p in student.named_parameters()})
    assert torch.equal(outputs[0].logits, outputs[1].logits) and torch.equal(outputs[0].mlm_loss, outputs[1].mlm_loss)
    assert all(torch.equal(grads[0][n], grads[1][n]) for n in grads[0])


def test_pinning_is_a_no_op_on_the_cpu():
    batch = _batch()
    assert speed.pin(batch, torch.device("cpu")) is batch
    moved = speed.to_device(batch, torch.device("cpu"))
    assert set(moved) == {"input_ids", "attention_mask", "labels", "masked_index"}
    assert moved["masked_index"].tolist() == masked_positions(batch["labels"]).tolist()


@pytest.mark.parametrize("strategy", ["nokd", "tinybert", "minilm"])
def test_compiled_and_eager_steps_agree(strategy):
    """Two optimizer steps from the same weights: the loss components and the updated weights of a
    compiled student (and teacher) match eager's within float tolerance. TinyBERT and MiniLM also
    take the compiled layers' other paths (requested internals, a teacher under inference mode)."""
    results = {}
    for compiled in (False, True):
        student, teacher, strat = _models(strategy)
        layers = speed.CompiledLayers([student, teacher], BACKEND) if compiled else None
        parts = _parts(student, teacher, strat, layers)
        losses = [_step(parts, [_batch(seed=s), _batch(seed=s + 10)]) for s in (1, 2)]
        assert layers is None or layers.active
        assert bool(_graphs_compiled()) == compiled
        results[compiled] = losses, student.state_dict()
    for eager_losses, compiled_losses in zip(results[False][0], results[True][0], strict=True):
        assert compiled_losses == pytest.approx(eager_losses, rel=1e-5, abs=1e-6)
    for key, value in results[False][1].items():
        torch.testing.assert_close(results[True][1][key], value, rtol=1e-4, atol=1e-6)


def test_a_failing_compilation_falls_back_to_eager(monkeypatch, caplog):
    def broken_compile(fn, **kwargs):
        def call(*args):
            raise RuntimeError("no working C compiler")
        return call

    monkeypatch.setattr(speed.torch, "compile", broken_compile)
    eager = _step(_parts(*_models("vanillakd")), [_batch()])
    student, teacher, strat = _models("vanillakd")
    layers = speed.CompiledLayers([student, teacher], BACKEND)
    with caplog.at_level(logging.WARNING):
        fallen = _step(_parts(student, teacher, strat, layers), [_batch()])
    assert fallen == eager
    assert not layers.active and "no working C compiler" in layers.error and "without compilation" in caplog.text
    assert student.bert.encoder.layer_call is run_layer and teacher.bert.encoder.layer_call is run_layer


class _FailsBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("backward kernel failed to compile")


def test_a_compiler_failure_in_the_backward_pass_retakes_the_step_eagerly(monkeypatch, caplog):
    """A failure the forward's fallback cannot see: the step is taken again without compilation,
    from the same micro-batches and fresh gradients, so it ends exactly as an eager step."""
    def compile_failing_backward(fn, **kwargs):
        def call(layer, *args):
            hidden, internals = fn(layer, *args)
            return _FailsBackward.apply(hidden), internals
        return call

    batches = [_batch(seed=3), _batch(seed=4)]
    eager_parts = _parts(*_models())
    eager = _step(eager_parts, batches)
    monkeypatch.setattr(speed.torch, "compile", compile_failing_backward)
    student, teacher, strat = _models()
    layers = speed.CompiledLayers([student], BACKEND)
    with caplog.at_level(logging.WARNING):
        retried = _step(_parts(student, teacher, strat, layers), batches)
    assert retried == eager and not layers.active and "retrying the step" in caplog.text
    reference = eager_parts.student.state_dict()
    assert all(torch.equal(value, reference[key]) for key, value in student.state_dict().items())


def test_fused_adamw_is_asked_for_on_cuda_only():
    assert speed.fused_adamw(torch.device("cuda")) and speed.fused_adamw("cuda:1")
    assert not speed.fused_adamw(torch.device("cpu"))
    student, _, _ = _models()
    kwargs = {"lr": 1e-3, "betas": (0.9, 0.98), "eps": 1e-6, "weight_decay": 0.01}
    assert not build_optimizer([student], **kwargs).defaults["fused"]
    # Not requested on a CPU, but it works there too (torch >= 2.4 has a CPU kernel): same update.
    twin = copy.deepcopy(student)
    plain, fused = build_optimizer([student], **kwargs), build_optimizer([twin], fused=True, **kwargs)
    assert fused.defaults["fused"] is True
    for model, optimizer in ((student, plain), (twin, fused)):
        model(**_batch()).mlm_loss.backward()
        optimizer.step()
    for key, value in student.state_dict().items():
        torch.testing.assert_close(twin.state_dict()[key], value, rtol=1e-5, atol=1e-7)


def test_teacher_dtype_resolution():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert speed.resolve_teacher_dtype("auto", cuda, torch.bfloat16) == torch.bfloat16
    assert speed.resolve_teacher_dtype("auto", cuda, torch.float16) == torch.float32
    assert speed.resolve_teacher_dtype("auto", cpu, torch.bfloat16) == torch.float32
    assert speed.resolve_teacher_dtype("fp32", cuda, torch.bfloat16) == torch.float32
    assert speed.resolve_teacher_dtype("bf16", cpu, torch.bfloat16) == torch.bfloat16
    with pytest.raises(ValueError, match="needs bf16 autocast"):
        speed.resolve_teacher_dtype("bf16", cpu, None)
    assert speed.resolve_compile("auto", cuda) and not speed.resolve_compile("auto", cpu)
    assert speed.resolve_compile(True, cpu) and not speed.resolve_compile(False, cuda)
    with pytest.raises(ValueError):
        speed.resolve_compile("yes", cpu)


@pytest.mark.parametrize("strategy", ["vanillakd", "tinybert", "minilm", "minilmv2"])
def test_a_bf16_teacher_runs_a_step_with_finite_fp32_losses(strategy):
    student, teacher, strat = _models(strategy)
    teacher.to(torch.bfloat16)
    losses = train_step(_parts(student, teacher, strat, amp=torch.bfloat16), iter([_batch()]), 1)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())


def test_the_peak_table_behind_mfu():
    assert peak_flops_for("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops_for("NVIDIA H100 PCIe") == 756e12
    assert peak_flops_for("NVIDIA H200") == 989e12
    assert peak_flops_for("NVIDIA A100-SXM4-80GB") == peak_flops_for("NVIDIA A100 80GB PCIe") == 312e12
    assert peak_flops_for("NVIDIA L40S") == 362e12
    assert peak_flops_for("NVIDIA H100 NVL") is None and peak_flops_for("Tesla V100-SXM2-16GB") is None
    assert peak_flops("cpu") is None and mfu(1e12, 1.0, None) is None
    assert mfu(989e12, 2.0, 989e12, devices=2) == pytest.approx(0.25)


def test_the_config_keys_reach_the_run_spec():
    config = validate_config({}, SCHEMA)
    common = common_spec(config)
    assert (common["compile"], common["compile_backend"], common["teacher_dtype"]) == ("auto", "inductor", "auto")
    config = validate_config({"pretrain": {"compile": True, "compile_backend": "aot_eager", "teacher_dtype": "bf16"}},
                             SCHEMA)
    assert {k: common_spec(config)[k] for k in ("compile", "compile_backend", "teacher_dtype")} == {
        "compile": True, "compile_backend": "aot_eager", "teacher_dtype": "bf16"}


def test_a_compiled_pretraining_run_records_its_speed_settings(tmp_path, packed_data):
    """The trainer's own path with compilation on (what `auto` does on a GPU): it trains, evaluates
    with compiled layers and records the settings; MFU is null on a CPU (no known peak)."""
    spec = tiny_spec(tmp_path, packed_data, compile=True, compile_backend=BACKEND,
                     budget={"mode": "tokens", "limit": 8 * 128 * 3})
    summary = pretrain(RunSpec.from_dict(spec))
    assert summary["steps"] == 3 and summary["mfu"] is None and _graphs_compiled() > 0
    assert summary["speed"]["compile"] == {"enabled": True, "backend": BACKEND, "active": True, "error": None}
    assert summary["speed"]["fused_adamw"] is False and summary["speed"]["teacher_dtype"] is None
