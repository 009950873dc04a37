"""The code paths a GPU job takes, run on the CPU: autocast in bf16 and fp16 with
loss scaling, the step clock every arm shares, the refusal to train on the CPU
when GPUs were asked for, and the stop on a diverged loss."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import torch
from conftest import make_teacher, tiny_spec
from safetensors.torch import load_file

from kdbudget.train import clock as clock_module
from kdbudget.train.checkpoint import checkpoint_path
from kdbudget.train.divergence import Diverged, DivergenceGuard
from kdbudget.train.launch import run
from kdbudget.train.runtime import NoGpuError, autocast_context, pick_device
from kdbudget.train.spec import RunSpec
from kdbudget.train.trainer import pretrain


def _teacher(tmp_path: Path, data: Path) -> Path:
    return make_teacher(tmp_path, data, json.loads((data / "meta.json").read_text())["vocab_size"], layers=3)

def _run(tmp_path: Path, data: Path, **overrides) -> dict:
    return pretrain(RunSpec.from_dict(tiny_spec(tmp_path, data, **overrides)))


def test_autocast_context_is_a_factory_of_fresh_contexts():
    autocast = autocast_context(torch.device("cpu"), torch.bfloat16)
    for _ in range(2):  # a stored torch.autocast instance cannot be called: each `with` needs a new one
        with autocast():
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast_context(torch.device("cpu"), None)():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
@pytest.mark.parametrize("strategy", ["nokd", "vanillakd", "tinybert", "minilm", "distilbert"])
def test_pretraining_runs_under_autocast(tmp_path, packed_data, precision, dtype, strategy):
    """What `precision: auto` selects on every GPU: the whole run (steps, evaluation, summary) under autocast."""
    teacher = str(_teacher(tmp_path, packed_data)) if strategy != "nokd" else None
    summary = _run(tmp_path, packed_data, name=f"{strategy}2", strategy=strategy, teacher_dir=teacher,
                   precision=precision, budget={"mode": "tokens", "limit": 8 * 128 * 4})
    assert summary["precision"] == str(dtype) and summary["steps"] == 4
    rows = [json.loads(line) for line in (tmp_path / "out" / f"{strategy}2" / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in rows)


def test_autocast_really_changes_the_computation(tmp_path, packed_data):
    """Pretraining honours `precision`: bf16 weights after a few steps differ from fp32's."""
    weights = {}
    for precision in ("fp32", "bf16"):
        _run(tmp_path / precision, packed_data, precision=precision, budget={"mode": "tokens", "limit": 8 * 128 * 3})
        weights[precision] = load_file(tmp_path / precision / "out" / "nokd2" / "model.safetensors")
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(weights["fp32"][key], weights["bf16"][key])


class _EagerScaler(torch.amp.GradScaler):
    """The trainer's scaler, growing after every good step (PyTorch's default waits 2000), so its
    scale moves within a few steps; every scale it ends a step with is recorded."""

    scales: list[float] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, growth_interval=1, **kwargs)

    def update(self, new_scale=None):
        super().update(new_scale)
        type(self).scales.append(self.get_scale())


def test_fp16_loss_scaler_state_is_checkpointed_and_resumed(tmp_path, packed_data, monkeypatch):
    """fp16 uses a dynamic loss scaler; a checkpoint carries its scale and growth tracker so a resume
    continues the scale where the interrupted run left it, as an uninterrupted run would."""
    monkeypatch.setattr(torch.amp, "GradScaler", _EagerScaler)
    budget = {"mode": "tokens", "limit": 8 * 128 * 6}
    _EagerScaler.scales = []
    _run(tmp_path / "whole", packed_data, precision="fp16", budget=budget)
    whole = _EagerScaler.scales
    assert len(whole) == 6 and whole[0] == 2 * 65536.0  # PyTorch's initial 2**16, doubled by a good first step
    assert len(set(whole)) > 1
    spec = RunSpec.from_dict(tiny_spec(tmp_path / "split", packed_data, precision="fp16", budget=budget,
                                       stop_before_time_limit_seconds=1000))
    # A SLURM job that ends in 1000 s: the run stops with a checkpoint after its first step.
    monkeypatch.setenv("SLURM_JOB_ID", "1")
    monkeypatch.setenv("SLURM_JOB_END_TIME", str(int(time.time()) + 1000))
    _EagerScaler.scales = []
    with pytest.raises(SystemExit):
        pretrain(spec)
    state = torch.load(checkpoint_path(spec.checkpoint_dir), weights_only=False)
    assert state["progress"]["spent"]["steps"] == 1
    assert state["scaler"]["scale"] == whole[0] and state["scaler"]["_growth_tracker"] == 0
    monkeypatch.delenv("SLURM_JOB_END_TIME")
    monkeypatch.delenv("SLURM_JOB_ID")
    _EagerScaler.scales = []
    assert pretrain(spec)["resumes"] == 1
    assert _EagerScaler.scales == whole[1:]  # the resumed scaler went on from the checkpointed scale
    a = load_file(tmp_path / "whole" / "out" / "nokd2" / "model.safetensors")
    b = load_file(tmp_path / "split" / "out" / "nokd2" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_job_that_asked_for_gpus_and_sees_none_fails_at_once(tmp_path, packed_data, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(NoGpuError, match=r"asked for 1 GPU\(s\) but torch sees none.*pretrain.device"):
        pick_device("auto", gpus=1)
    assert pick_device("auto", gpus=0).type == "cpu"
    assert pick_device("cpu", gpus=2).type == "cpu"  # on purpose
    spec = tiny_spec(tmp_path, packed_data, gpus=1)
    with pytest.raises(NoGpuError):
        run(spec, processes=1)
    with pytest.raises(NoGpuError):  # before torchrun starts any worker
        run({**spec, "gpus": 2}, processes=2)
    assert not (tmp_path / "checkpoints" / "nokd2").exists()


def test_every_arm_is_timed_by_the_same_clock(tmp_path, packed_data, monkeypatch):
    """The No-KD reference (a tokens budget) and a KD follower (its seconds) wait for the device
    once per step through the same clock: their seconds are measured alike."""
    synced: list[str] = []
    monkeypatch.setattr(clock_module, "synchronize", lambda device: synced.append(str(device)))
    reference = _run(tmp_path, packed_data, budget={"mode": "reference", "is_reference": True, "epochs": 0.5,
                                                    "measure": "seconds"})
    assert len(synced) == reference["steps"] > 0
    synced.clear()
    follower = _run(tmp_path, packed_data, name="vanillakd2", strategy="vanillakd",
                    teacher_dir=str(_teacher(tmp_path, packed_data)),
                    budget={"mode": "reference", "measure": "seconds",
                            "reference_summary": str(tmp_path / "out" / "nokd2" / "summary.json")})
    assert len(synced) == follower["steps"] > 0
    # The follower got the reference's seconds, measured by that clock.
    assert follower["budget"]["limit"] == pytest.approx(reference["spent"]["seconds"])


def test_divergence_guard():
    guard = DivergenceGuard(spike_factor=3.0, window=10, min_history=5)
    assert all(guard.check(x) is None for x in (9.0, 8.0, 30.0, 7.0))  # early steps are never a spike
    assert all(guard.check(x) is None for x in (6.0, 6.0, 6.0))
    assert "median" in guard.check(25.0)  # 25 > 3 x median(9, 8, 30, 7, 6, 6, 6) = 3 x 7
    assert guard.check(20.0) is None
    assert "nan" in guard.check(float("nan")) and "inf" in guard.check(float("inf"))
    assert DivergenceGuard(spike_factor=0).check(1e9) is None


def test_a_diverged_run_stops_and_keeps_its_last_good_checkpoint(tmp_path, packed_data):
    spec = tiny_spec(tmp_path, packed_data, budget={"mode": "tokens", "limit": 8 * 128 * 40},
                     checkpoint_every_steps=1, divergence_window=4)
    spec["optim"]["lr"] = 1e4  # far beyond stable: the loss explodes within a few steps
    with pytest.raises(Diverged, match=r"diverged at step (\d+).*last good checkpoint") as caught:
        pretrain(RunSpec.from_dict(spec))
    step = int(caught.value.args[0].split("diverged at step ")[1].split(":")[0])
    state = torch.load(checkpoint_path(spec["checkpoint_dir"]), weights_only=False)
    assert state["progress"]["spent"]["steps"] == step - 1  # the last good step, not the bad one
    assert step < 40 and not Path(spec["out_dir"]).exists()


def test_the_cuda_only_branches_dispatch_to_cuda(monkeypatch):
    """The branches only a GPU job takes, with the CUDA calls recorded instead of made: the step
    clock waits for that device, host batches are pinned, and the device's name picks its peak."""
    from kdbudget.train import hardware, speed

    cuda = torch.device("cuda", 0)
    calls: list[object] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(("sync", device)))
    clock_module.synchronize(cuda)
    clock_module.synchronize(torch.device("cpu"))
    assert calls == [("sync", cuda)]

    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: self + 1)  # a mark that it was pinned
    batch = {"input_ids": torch.zeros(2, 3, dtype=torch.long), "labels": torch.full((2, 3), -100)}
    pinned = speed.pin(batch, cuda)
    assert (pinned["input_ids"] == 1).all() and (pinned["labels"] == -99).all()

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert hardware.peak_flops(cuda) == 989e12
    assert hardware.mfu(989e12 * 0.4, 1.0, hardware.peak_flops(cuda)) == pytest.approx(0.4)
