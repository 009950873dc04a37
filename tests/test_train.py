"""Budgeted pretraining: schedule, budgets, stopping, teachers, summaries, and
an exact resume after a real signal kills a real training process."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ended, make_teacher, tiny_spec
from safetensors.torch import load_file

from kdbudget.train.budget import Budget, BudgetError, Spent
from kdbudget.train.models import VocabularyMismatch
from kdbudget.train.optim import lr_multiplier
from kdbudget.train.spec import RunSpec
from kdbudget.train.trainer import pretrain


def test_schedule_over_the_budget_fraction():
    """Pretraining: progress is the fraction of the budget spent (total 1); warmup 0.06 of it."""
    def at(fraction: float, warmup: float) -> float:
        return lr_multiplier(fraction, total=1.0, warmup=warmup)

    assert at(0.0, 0.06) == 0.0
    assert at(0.03, 0.06) == pytest.approx(0.5)
    assert at(0.06, 0.06) == pytest.approx(1.0)
    assert at(0.53, 0.06) == pytest.approx(0.5)  # halfway through the decay: (1 - 0.53) / 0.94
    assert at(0.765, 0.06) == pytest.approx(0.25)  # (1 - 0.765) / 0.94
    assert at(1.0, 0.06) == 0.0
    assert at(1.5, 0.06) == 0.0
    assert at(0.5, 0.0) == pytest.approx(0.5)
    assert at(0.0, 0.0) == 1.0  # no warmup: the peak from the first step
    assert at(-0.2, 0.1) == 0.0
    for bad in (1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"warmup must be in \[0, 1\)"):
            at(0.5, bad)
    with pytest.raises(TypeError):  # the old (fraction, warmup) call must not silently mean something else
        lr_multiplier(0.5, 0.06)


def test_schedule_over_fine_tuning_steps():
    """Fine-tuning: the same function over optimizer steps (HF's linear schedule): 10 steps, 2 of warmup."""
    assert [lr_multiplier(s, total=10, warmup=2) for s in (0, 1, 2, 4, 6, 9, 10)] == [
        0.0, 0.5, 1.0, 0.75, 0.5, 0.125, 0.0]
    assert lr_multiplier(0, total=10, warmup=0) == 1.0
    assert lr_multiplier(3, total=4, warmup=0) == 0.25
    with pytest.raises(ValueError, match=r"warmup must be in \[0, 10\)"):
        lr_multiplier(0, total=10, warmup=10)
    with pytest.raises(ValueError, match="total must be positive"):
        lr_multiplier(0, total=0, warmup=0)


def test_budget_stops_within_half_a_step():
    budget = Budget("flops", 10.0)
    assert not budget.should_stop(Spent(flops=7.0), 4.0)  # 11 is closer to 10 than 7
    assert budget.should_stop(Spent(flops=8.0), 4.0)
    assert budget.fraction(Spent(flops=5.0)) == 0.5
    assert budget.fraction(Spent(flops=25.0)) == 1.0  # an overrun is the whole budget
    assert Budget("seconds", 0.5, {"mode": "reference", "role": "follower"}).as_dict() == {
        "unit": "seconds", "limit": 0.5, "mode": "reference", "role": "follower"}
    with pytest.raises(ValueError, match="unit must be one of .*'hours'"):
        Budget("hours", 1.0)
    for bad in (0.0, -3.0):
        with pytest.raises(ValueError, match="limit must be positive"):
            Budget("tokens", bad)


def _run(tmp_path, data, **overrides):
    return pretrain(RunSpec.from_dict(tiny_spec(tmp_path, data, **overrides)))


def test_tokens_budget_stops_at_the_budget_and_writes_a_loadable_model(tmp_path, packed_data):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    limit = 8 * 128 * 12.4  # 12.4 steps of 8 sequences
    summary = _run(tmp_path, packed_data, budget={"mode": "tokens", "limit": limit})
    assert summary["steps"] == 12 and summary["tokens"] == 12 * 8 * 128
    out = tmp_path / "out" / "nokd2"
    for field in ("tokens", "flops", "seconds", "tokens_per_second", "epochs", "device", "versions", "git_commit"):
        assert field in summary
    assert summary["budget"]["mode"] == "tokens" and summary["budget"]["limit"] == limit
    assert json.loads((out / "summary.json").read_text())["tokens"] == summary["tokens"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert {"step", "seconds", "tokens", "flops", "lr", "loss", "mlm", "tokens_per_second"} <= set(rows[0])
    assert rows[-1]["flops"] == pytest.approx(summary["flops"])
    model = AutoModelForMaskedLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.vocab_size == len(tokenizer)
    assert not (tmp_path / "checkpoints" / "nokd2").exists()


def test_flops_budget_is_spent_within_half_a_step(tmp_path, packed_data):
    first = _run(tmp_path, packed_data, budget={"mode": "tokens", "limit": 8 * 128 * 3})
    per_step = first["flops"] / first["steps"]
    summary = _run(tmp_path, packed_data, name="again", budget={"mode": "flops", "limit": per_step * 7.3})
    assert abs(summary["flops"] - per_step * 7.3) <= per_step / 2 * 1.05


def test_reference_budget_passes_from_nokd_to_kd(tmp_path, packed_data):
    meta = json.loads((packed_data / "meta.json").read_text())
    reference = _run(tmp_path, packed_data, budget={"mode": "reference", "is_reference": True, "epochs": 1,
                                                    "measure": "flops"})
    assert reference["epochs"] == pytest.approx(1.0, abs=8 / meta["sequences"])
    teacher_dir = make_teacher(tmp_path, packed_data, meta["vocab_size"])
    kd = _run(tmp_path, packed_data, name="minilm2", strategy="minilm", teacher_dir=str(teacher_dir),
              budget={"mode": "reference", "measure": "flops",
                      "reference_summary": str(tmp_path / "out" / "nokd2" / "summary.json")})
    assert kd["budget"]["limit"] == pytest.approx(reference["flops"])
    assert abs(kd["flops"] - reference["flops"]) / reference["flops"] < 0.05
    assert kd["tokens"] < reference["tokens"]
    assert kd["teacher"]["layers"] == 4


def test_teacher_dir_and_vocabulary_mismatch(tmp_path, packed_data):
    meta = json.loads((packed_data / "meta.json").read_text())
    good = make_teacher(tmp_path / "good", packed_data, meta["vocab_size"])
    summary = _run(tmp_path, packed_data, name="vanillakd2", strategy="vanillakd", teacher_dir=str(good))
    assert summary["strategy"] == "vanillakd" and "kd_pred" in json.loads(
        (tmp_path / "out" / "vanillakd2" / "metrics.jsonl").read_text().splitlines()[0])
    bad = make_teacher(tmp_path / "bad", packed_data, meta["vocab_size"] + 7)
    with pytest.raises(VocabularyMismatch, match=str(bad)):
        _run(tmp_path, packed_data, name="tinybert2", strategy="tinybert", teacher_dir=str(bad))
    assert not (tmp_path / "out" / "tinybert2").exists()


def test_wallclock_reference_refuses_other_hardware(tmp_path, packed_data):
    reference = tmp_path / "reference.json"
    reference.write_text(json.dumps({"name": "nokd2", "device": "NVIDIA A100-SXM4-40GB", "spent": {"seconds": 5.0}}))
    spec = {"mode": "reference", "measure": "seconds", "reference_summary": str(reference)}
    with pytest.raises(BudgetError, match="A100"):
        _run(tmp_path, packed_data, name="minilm2", strategy="nokd", budget=spec)


def _spec(budget: dict, **overrides) -> RunSpec:
    spec = tiny_spec(Path("/nonexistent"), Path("/nonexistent"), **overrides)
    return RunSpec.from_dict({**spec, "budget": budget})  # this budget alone, not merged into the default one


def _reference(tmp_path: Path, device: str = "NVIDIA A100-SXM4-40GB") -> Path:
    path = tmp_path / "nokd6" / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": "nokd6", "device": device,
                                "spent": {"seconds": 123.5, "flops": 9.0e15, "tokens": 4096, "steps": 4}}))
    return path


def test_reference_budgets_resolve_to_what_the_reference_spent(tmp_path):
    from kdbudget.train.budget import resolve_budget

    meta = {"sequences": 100, "seq_len": 128}
    a100 = "NVIDIA A100-SXM4-40GB"
    own = resolve_budget(_spec({"mode": "reference", "is_reference": True, "epochs": 2, "measure": "seconds"}),
                         meta, a100)
    assert (own.unit, own.limit, own.source["role"]) == ("tokens", 2 * 100 * 128, "reference")
    reference = str(_reference(tmp_path))
    seconds = resolve_budget(_spec({"mode": "reference", "measure": "seconds", "reference_summary": reference}),
                             meta, a100)
    assert (seconds.unit, seconds.limit) == ("seconds", 123.5)
    assert seconds.source["role"] == "follower" and seconds.source["reference"] == "nokd6"
    flops = resolve_budget(_spec({"mode": "reference", "measure": "flops", "reference_summary": reference}),
                           meta, "NVIDIA H100 80GB HBM3")  # FLOPs compare across hardware
    assert (flops.unit, flops.limit) == ("flops", 9.0e15)
    tokens = resolve_budget(_spec({"mode": "reference", "measure": "tokens", "reference_summary": reference}),
                            meta, "cpu")
    assert (tokens.unit, tokens.limit) == ("tokens", 4096)
    explicit = resolve_budget(_spec({"mode": "seconds", "limit": 60}), meta, "cpu")
    assert (explicit.unit, explicit.limit) == ("seconds", 60.0)
    with pytest.raises(BudgetError, match="needs a limit"):
        resolve_budget(_spec({"mode": "flops"}), meta, "cpu")


def test_wallclock_reference_on_other_hardware_only_when_allowed(tmp_path):
    from kdbudget.train.budget import resolve_budget

    reference = str(_reference(tmp_path))
    follower = {"mode": "reference", "measure": "seconds", "reference_summary": reference}
    with pytest.raises(BudgetError, match=r"A100.*H100|H100.*A100"):
        resolve_budget(_spec(follower), {}, "NVIDIA H100 80GB HBM3")
    allowed = resolve_budget(_spec({**follower, "allow_device_mismatch": True}), {}, "NVIDIA H100 80GB HBM3")
    assert (allowed.unit, allowed.limit) == ("seconds", 123.5)
    assert allowed.source["reference_device"] == "NVIDIA A100-SXM4-40GB"


def test_a_cpu_wallclock_reference_under_other_kernels_is_refused(tmp_path, monkeypatch):
    """The same CPU under AVX2 and AVX-512 kernels (cpu_isa) runs at other speeds: its seconds do not compare."""
    from kdbudget.train.budget import resolve_budget
    from kdbudget.train.runtime import device_name

    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    native = device_name(cpu)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    pinned = device_name(cpu)
    assert native != pinned and "AVX2 kernels" in pinned and pinned.endswith("threads)")
    summary = json.loads(_reference(tmp_path).read_text())
    reference = tmp_path / "native.json"
    reference.write_text(json.dumps({**summary, "device": native}))
    follower = {"mode": "reference", "measure": "seconds", "reference_summary": str(reference)}
    with pytest.raises(BudgetError, match="AVX512 kernels.*AVX2 kernels"):
        resolve_budget(_spec(follower), {}, pinned)
    assert resolve_budget(_spec(follower), {}, native).limit == 123.5


@pytest.mark.parametrize("summary", [None, "missing"])
def test_a_missing_reference_summary_is_a_budget_error_naming_it(tmp_path, summary):
    from kdbudget.train.budget import resolve_budget

    path = str(tmp_path / "nokd6" / "summary.json") if summary else None
    spec = _spec({"mode": "reference", "measure": "seconds", "reference_summary": path})
    with pytest.raises(BudgetError, match="reference run's summary is missing") as caught:
        resolve_budget(spec, {}, "cpu")
    assert str(path) in str(caught.value)


@pytest.fixture(scope="module")
def scheduled_run(tmp_path_factory, packed_data):
    """Ten steps of a tokens budget with 20% warmup; the learning rate each optimizer step used,
    read from the optimizer itself by a step hook."""
    tmp_path = tmp_path_factory.mktemp("scheduled")
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    used: list[list[float]] = []
    handle = register_optimizer_step_pre_hook(
        lambda optimizer, args, kwargs: used.append([group["lr"] for group in optimizer.param_groups]))
    try:
        summary = _run(tmp_path, packed_data, optim={"lr": 1e-3, "warmup": 0.2, "batch_size": 8, "micro_batch_size": 4},
                       budget={"mode": "tokens", "limit": 8 * 128 * 10})
    finally:
        handle.remove()
    return summary, used, tmp_path / "out" / "nokd2"


def test_learning_rate_warms_up_and_decays_over_the_budget(scheduled_run):
    """Step k starts at k/10 of the budget: warmup to the peak over the first 20%, then linear to 0 at the end."""
    summary, used, out = scheduled_run
    peak = 1e-3
    by_hand = [0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125]  # 0.1/0.2; then (1 - k/10) / 0.8
    assert summary["steps"] == 10 and len(used) == 10
    for step, lrs in enumerate(used):
        assert lrs == pytest.approx([peak * by_hand[step]] * len(lrs), abs=1e-12), step
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows] == pytest.approx([peak * m for m in by_hand], abs=1e-12)


def test_validation_loss_accuracy_and_perplexity_match_transformers(scheduled_run):
    """The summary's validation numbers, recomputed with transformers' BertForMaskedLM on the saved
    weights and the validation shard's first stored mask copy, read straight from the file."""
    import math

    import numpy as np
    from transformers import BertForMaskedLM

    summary, _, out = scheduled_run
    data = Path(summary["data"]["dir"])
    records = np.load(data / "validation-000.npy")[0]
    n = min(len(records), 16)  # the run's eval_sequences
    assert summary["validation"]["sequences"] == n
    ids = torch.from_numpy(records["input_ids"][:n].astype(np.int64))
    lengths = torch.from_numpy(records["length"][:n].astype(np.int64))
    attention = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
    labels = torch.full_like(ids, -100)
    for row in range(n):
        used = records["mlm_positions"][row] > 0
        labels[row, records["mlm_positions"][row][used].astype(np.int64)] = torch.from_numpy(
            records["mlm_labels"][row][used].astype(np.int64))
    model = BertForMaskedLM.from_pretrained(out).eval()
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attention).logits
    where = labels != -100
    losses = torch.nn.functional.cross_entropy(logits[where].double(), labels[where], reduction="none")
    loss = float(losses.mean())  # over every masked token of the n sequences, not a mean of batch means
    accuracy = float((logits[where].argmax(-1) == labels[where]).double().mean())
    validation = summary["validation"]
    # float32 against float64 sums: ~1e-7 apart; a mean of the batches' means is ~1e-4 off
    assert validation["mlm_loss"] == pytest.approx(loss, rel=2e-6)
    assert validation["mlm_accuracy"] == pytest.approx(accuracy, abs=1e-9)
    assert validation["perplexity"] == pytest.approx(math.exp(loss), rel=2e-6)


def _start(spec_path: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kdbudget.train", str(spec_path), "--log-file", str(log)])


def _wait_for_steps(process: subprocess.Popen, metrics: Path, steps: int) -> None:
    """Until a running training process has logged ``steps`` steps; it must still be running then."""
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= steps:
            break
        time.sleep(0.02)
    assert process.poll() is None, "training finished before it could be interrupted"


def test_killed_and_resumed_run_is_bit_identical(tmp_path, packed_data):
    budget = {"mode": "flops", "limit": 6.0e9}
    straight = pretrain(RunSpec.from_dict(tiny_spec(tmp_path / "a", packed_data, budget=budget)))
    assert straight["steps"] > 20

    spec = tiny_spec(tmp_path / "b", packed_data, budget=budget)
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    metrics = Path(spec["checkpoint_dir"]) / "metrics.jsonl"
    process = _start(spec_path, tmp_path / "first.log")
    _wait_for_steps(process, metrics, 8)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert (Path(spec["checkpoint_dir"]) / "checkpoint.pt").is_file()
    assert not Path(spec["out_dir"]).exists()

    resumed = _start(spec_path, tmp_path / "second.log")
    assert resumed.wait(timeout=120) == 0
    summary = json.loads((Path(spec["out_dir"]) / "summary.json").read_text())
    assert summary["resumes"] == 1 and summary["steps"] == straight["steps"]
    assert summary["flops"] == straight["flops"] and summary["tokens"] == straight["tokens"]
    a = load_file(tmp_path / "a" / "out" / "nokd2" / "model.safetensors")
    b = load_file(Path(spec["out_dir"]) / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(line)["step"] for line in (Path(spec["out_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert rows == list(range(1, straight["steps"] + 1))


def test_checkpoint_of_another_run_is_refused(tmp_path, packed_data):
    from kdbudget.train.checkpoint import save_checkpoint
    from kdbudget.train.trainer import run_identity

    spec = RunSpec.from_dict(tiny_spec(tmp_path, packed_data))
    other = RunSpec.from_dict(tiny_spec(tmp_path, packed_data, optim={"lr": 5e-4}))
    save_checkpoint(spec.checkpoint_dir, {"run": run_identity(other), "progress": {"spent": {"steps": 3}}})
    with pytest.raises(ValueError, match="other settings"):
        pretrain(spec)
    # Logging and thread settings may change between a run and its resume.
    assert run_identity(spec) == run_identity(RunSpec.from_dict(tiny_spec(tmp_path, packed_data, threads=2,
                                                                         log_every_steps=7)))


@pytest.mark.parametrize("masking", ["static", "dynamic"])
def test_two_processes_match_one_with_the_same_global_batch(tmp_path, masking, request):
    """torchrun with the gloo backend on the CPU: data parallel = one process, up to float rounding,
    with stored masks and with masks drawn as the batches are read."""
    packed_data = request.getfixturevalue("packed_data" if masking == "static" else "packed_dynamic")
    overrides = {"student": {"layers": 2, "hidden": 32, "heads": 4, "intermediate": 64, "dropout": 0.0},
                 "optim": {"lr": 1e-3, "batch_size": 8, "micro_batch_size": 4},
                 "budget": {"mode": "tokens", "limit": 8 * 128 * 10}, "checkpoint_every_steps": 4}
    single = pretrain(RunSpec.from_dict(tiny_spec(tmp_path / "one", packed_data, **overrides)))
    spec = tiny_spec(tmp_path / "two", packed_data, **overrides)
    spec_path = tmp_path / "two.json"
    spec_path.write_text(json.dumps(spec))
    torchrun = Path(sys.executable).parent / "torchrun"
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "kdbudget.train",
                             str(spec_path), "--log-file", str(tmp_path / "two.log")],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((Path(spec["out_dir"]) / "summary.json").read_text())
    assert summary["steps"] == single["steps"] == 10 and summary["tokens"] == single["tokens"]
    assert summary["flops"] == pytest.approx(single["flops"]) and summary["device"].endswith("x 2")
    a = load_file(tmp_path / "one" / "out" / "nokd2" / "model.safetensors")
    b = load_file(Path(spec["out_dir"]) / "model.safetensors")
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)
    rows = (Path(spec["out_dir"]) / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == list(range(1, 11))  # rank 0 alone writes



def _descendants(pid: int) -> list[int]:
    """Child processes at any depth, from /proc (torchrun starts its workers in sessions of their own)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


@pytest.mark.slow  # torchrun twice with two workers: over a minute on two cores
def test_two_process_job_warned_by_usr1_resumes_to_the_same_weights(tmp_path, packed_data):
    """The multi-GPU path (kdbudget.train.launch -> torchrun -> 2 workers) gets USR1 in every
    process, as SLURM sends it before a time limit: it checkpoints, fails, and a rerun ends
    with the weights of an uninterrupted 2-process run, to the bit."""
    overrides = {"student": {"layers": 2, "hidden": 32, "heads": 4, "intermediate": 64, "dropout": 0.1},
                 "optim": {"lr": 1e-3, "batch_size": 8, "micro_batch_size": 4},
                 "budget": {"mode": "tokens", "limit": 8 * 128 * 60}}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def job(spec: dict) -> list[str]:
        return [sys.executable, "-c", "import json, sys; from kdbudget.train.launch import run; "
                "run(json.loads(sys.argv[1]), processes=2)", json.dumps(spec)]

    straight = tiny_spec(tmp_path / "straight", packed_data, **overrides)
    assert subprocess.run(job(straight), env=env, capture_output=True, timeout=300).returncode == 0

    spec = tiny_spec(tmp_path / "warned", packed_data, **overrides)
    metrics = Path(spec["checkpoint_dir"]) / "metrics.jsonl"
    first = subprocess.Popen(job(spec), env=env, stderr=subprocess.PIPE, text=True)
    _wait_for_steps(first, metrics, 8)
    for pid in [first.pid, *_descendants(first.pid)]:  # every process of the job, as SLURM signals a job step
        with contextlib.suppress(ProcessLookupError):  # a helper process may have ended meanwhile
            os.kill(pid, signal.SIGUSR1)
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 1 and "a rerun resumes from" in stderr, stderr[-2000:]
    assert (Path(spec["checkpoint_dir"]) / "checkpoint.pt").is_file() and not Path(spec["out_dir"]).exists()

    assert subprocess.run(job(spec), env=env, capture_output=True, timeout=300).returncode == 0
    summary = json.loads((Path(spec["out_dir"]) / "summary.json").read_text())
    assert summary["resumes"] == 1 and summary["steps"] == 60 and summary["device"].endswith("x 2")
    a = load_file(Path(straight["out_dir"]) / "model.safetensors")
    b = load_file(Path(spec["out_dir"]) / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

def test_progress_bar_is_throttled_off_a_terminal(tmp_path, packed_data):
    """Off a terminal the bar draws at its start and end only (its interval is 30 s), not
    once per logged step: a cluster log stays readable."""
    spec = tiny_spec(tmp_path, packed_data, budget={"mode": "tokens", "limit": 8 * 128 * 12}, log_every_steps=1)
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    with open(tmp_path / "stderr.txt", "w") as stderr:
        subprocess.run([sys.executable, "-m", "kdbudget.train", str(spec_path)], stderr=stderr, check=True,
                       timeout=120)
    draws = (tmp_path / "stderr.txt").read_text().count("%|")
    rows = len((Path(spec["out_dir"]) / "metrics.jsonl").read_text().splitlines())
    assert rows == 12 and draws <= 2, draws  # the first and the last


def test_a_stop_signal_after_the_last_step_lets_the_run_finish(tmp_path, packed_data):
    """SLURM's warning may come while the model is evaluated and written: too late to checkpoint,
    and no reason to throw the finished run away."""
    spec = tiny_spec(tmp_path, packed_data)
    code = ("import json, os, signal, sys\n"
            "import kdbudget.train.trainer as trainer\n"
            "real = trainer.evaluate\n"
            "def evaluate(*args, **kwargs):\n"
            "    os.kill(os.getpid(), signal.SIGUSR1)\n"
            "    return real(*args, **kwargs)\n"
            "trainer.evaluate = evaluate\n"
            "trainer.pretrain(trainer.RunSpec.from_dict(json.loads(sys.argv[1])))\n")
    result = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((Path(spec["out_dir"]) / "summary.json").read_text())
    assert summary["steps"] == 12 and summary["resumes"] == 0


def _fake_squeue(folder: Path, prints: str) -> dict[str, str]:
    """An environment with SLURM_JOB_ID set and a `squeue` on PATH that prints ``prints``."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "squeue"
    script.write_text(f"#!/bin/sh\necho '{prints}'\n")
    script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return {**env, "SLURM_JOB_ID": "4242", "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def test_job_end_time_from_slurm(tmp_path):
    from datetime import datetime

    from kdbudget.train.deadline import job_end_time

    assert job_end_time({}) is None  # not a SLURM job
    assert job_end_time({"SLURM_JOB_ID": "7", "SLURM_JOB_END_TIME": "1800000000"}) == 1800000000.0
    end = _fake_squeue(tmp_path / "a", "2031-05-04T03:02:01")
    assert job_end_time(end) == datetime(2031, 5, 4, 3, 2, 1).timestamp()
    assert job_end_time(_fake_squeue(tmp_path / "b", "N/A")) is None  # squeue's answer for "no limit"
    assert job_end_time({"SLURM_JOB_ID": "7", "PATH": str(tmp_path / "empty")}) is None  # no squeue here


def test_a_slurm_job_stops_before_its_time_limit_and_a_rerun_resumes(tmp_path, packed_data):
    """The job ends in 50 minutes but the trainer must stop an hour before: after its first step
    it checkpoints and exits with 75; the rerun, with time to spare, ends with the weights of an
    uninterrupted run."""
    from datetime import datetime

    budget = {"mode": "tokens", "limit": 8 * 128 * 12}
    straight = pretrain(RunSpec.from_dict(tiny_spec(tmp_path / "a", packed_data, budget=budget)))
    spec = tiny_spec(tmp_path / "b", packed_data, budget=budget, stop_before_time_limit_seconds=3600)
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    soon = datetime.fromtimestamp(time.time() + 3000).isoformat(timespec="seconds")
    first = subprocess.run([sys.executable, "-m", "kdbudget.train", str(spec_path)], capture_output=True, text=True,
                           env=_fake_squeue(tmp_path / "soon", soon), timeout=120)
    assert first.returncode == 75, first.stderr[-2000:]
    assert "before the job's time limit at step 1" in first.stderr
    assert (Path(spec["checkpoint_dir"]) / "checkpoint.pt").is_file() and not Path(spec["out_dir"]).exists()

    later = datetime.fromtimestamp(time.time() + 7 * 3600).isoformat(timespec="seconds")
    second = subprocess.run([sys.executable, "-m", "kdbudget.train", str(spec_path)], capture_output=True,
                            text=True, env=_fake_squeue(tmp_path / "later", later), timeout=120)
    assert second.returncode == 0, second.stderr[-2000:]
    summary = json.loads((Path(spec["out_dir"]) / "summary.json").read_text())
    assert summary["resumes"] == 1 and summary["steps"] == straight["steps"] == 12
    a = load_file(tmp_path / "a" / "out" / "nokd2" / "model.safetensors")
    b = load_file(Path(spec["out_dir"]) / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


# --- one trainer per checkpoint folder, and none outliving its job ------------------------------


def _trainer_below(pid: int) -> int:
    """The training process (python -m kdbudget.train) started, at any depth, by ``pid``."""
    for child in _descendants(pid):
        with contextlib.suppress(OSError):
            if (Path("/proc") / str(child) / "cmdline").read_bytes().split(b"\0")[1:3] == [b"-m", b"kdbudget.train"]:
                return child
    raise AssertionError(f"no trainer below process {pid}")


def test_a_second_trainer_on_the_same_checkpoint_folder_is_refused(tmp_path, packed_data):
    from kdbudget.train.lock import CheckpointLock

    spec = tiny_spec(tmp_path, packed_data, budget={"mode": "tokens", "limit": 8 * 128 * 100000})
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    checkpoints = Path(spec["checkpoint_dir"])
    first = _start(spec_path, tmp_path / "first.log")
    try:
        _wait_for_steps(first, checkpoints / "metrics.jsonl", 3)
        second = subprocess.run([sys.executable, "-m", "kdbudget.train", str(spec_path)], capture_output=True,
                                text=True, timeout=120)
        assert second.returncode == 1
        last = second.stderr.splitlines()[-1]
        assert last.startswith(f"ERROR CheckpointBusy: {checkpoints} is in use by trainer 'nokd2', pid {first.pid} ")
        assert f"kill {first.pid}" in last
        # The refused trainer touched nothing: the first one's metrics go on from where they were.
        _wait_for_steps(first, checkpoints / "metrics.jsonl", 5)
        assert [json.loads(r)["step"] for r in (checkpoints / "metrics.jsonl").read_text().splitlines()][:5] == \
            [1, 2, 3, 4, 5]
    finally:
        first.kill()  # kill -9: no chance to clean up
        first.wait(timeout=60)
    # The operating system freed the dead trainer's lock: nothing stale is left to unlock by hand.
    CheckpointLock(checkpoints).acquire().release()


def test_a_launcher_holds_the_lock_for_its_torchrun_workers(tmp_path, packed_data):
    """launch.run refuses a multi-process job on a folder in use before it starts torchrun."""
    from kdbudget.train.launch import run
    from kdbudget.train.lock import CheckpointBusy, CheckpointLock

    spec = tiny_spec(tmp_path, packed_data, device="cpu")
    with CheckpointLock(spec["checkpoint_dir"], "holder"):
        with pytest.raises(CheckpointBusy, match=rf"'holder', pid {os.getpid()}"):
            run(spec, processes=2)
    assert not (Path(spec["checkpoint_dir"]) / "spec.json").exists()  # torchrun was never prepared


@pytest.mark.parametrize("killed", ["parent", "owner"])
def test_a_trainer_whose_job_is_gone_checkpoints_and_stops(tmp_path, packed_data, killed):
    """'parent': the process that started the trainer is SIGKILLed. 'owner': as in a Snakemake job
    (snakemake -> bash -> python), the process named in KDBUDGET_JOB_OWNER is SIGKILLed while the
    shell between it and the trainer lives on, so the trainer's own parent never changes. Either
    way the trainer writes a checkpoint and exits within seconds, writing no model."""
    from kdbudget.train.checkpoint import load_checkpoint

    spec = tiny_spec(tmp_path, packed_data, budget={"mode": "tokens", "limit": 8 * 128 * 100000})
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    log = tmp_path / "trainer.log"
    trainer = f"{sys.executable} -m kdbudget.train {spec_path} --log-file {log}"
    if killed == "parent":
        code = f"import subprocess; subprocess.Popen({trainer.split()!r}).wait()"
    else:
        code = ("import subprocess; from kdbudget.train.orphan import mark_job_owner; mark_job_owner(); "
                f"subprocess.Popen(['bash', '-c', {trainer + '; exit $?'!r}]).wait()")
    starter = subprocess.Popen([sys.executable, "-c", code])
    checkpoints = Path(spec["checkpoint_dir"])
    pid = None
    try:
        _wait_for_steps(starter, checkpoints / "metrics.jsonl", 3)
        pid = _trainer_below(starter.pid)
        starter.kill()
        starter.wait(timeout=60)
        assert ended(pid, wait=30), "the orphaned trainer is still running"
    finally:
        starter.kill()
        for leftover in [pid] if pid else _descendants(starter.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover, signal.SIGKILL)
    state = load_checkpoint(checkpoints)
    assert state is not None and state["progress"]["spent"]["steps"] >= 3 and not state["progress"]["trained"]
    assert "is gone" in log.read_text() and "stopped with a checkpoint" in log.read_text()
    assert not Path(spec["out_dir"]).exists()


def test_an_owner_gone_before_the_trainer_starts_watching_is_seen(tmp_path, packed_data):
    """Snakemake killed while its job still imports torch: the job's processes are reparented, so
    the owner is no ancestor of the trainer, yet the token tells it apart from an owner in another
    PID namespace. The trainer stops at once, before taking the checkpoint folder's lock."""
    from kdbudget.train.orphan import OWNER_ENV, ParentWatch, owner_token

    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    token = owner_token(owner.pid)
    host, pid, start, namespace = token.split(":")
    assert ParentWatch({OWNER_ENV: token}).orphaned(now=True) is False  # alive, not an ancestor: the parent
    owner.kill()
    owner.wait()
    gone = ParentWatch({OWNER_ENV: token})
    assert gone.gone_at_start and gone.orphaned()
    for elsewhere in (f"{host}:{pid}:{start}:{int(namespace) + 1}", f"{host}:{pid}:{start}"):  # or not named
        assert not ParentWatch({OWNER_ENV: elsewhere}).orphaned(now=True)

    spec = tiny_spec(tmp_path, packed_data)
    env = {**os.environ, OWNER_ENV: token}
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, "-m", "kdbudget.train", str(spec_path), "--log-file",
                           str(tmp_path / "trainer.log")], env=env, timeout=120)
    assert done.returncode == 75
    assert "was gone before training began" in (tmp_path / "trainer.log").read_text()
    assert not Path(spec["out_dir"]).exists() and not (Path(spec["checkpoint_dir"]) / "checkpoint.pt").exists()


def test_an_orphan_past_its_last_step_keeps_its_checkpoint_for_the_rerun(tmp_path, packed_data, monkeypatch):
    """Snakemake discards what an orphan writes (its outputs are marked incomplete), so an orphan
    that has finished training keeps its final checkpoint, and the rerun only writes the model:
    the same model as an uninterrupted run's, without training again."""
    import kdbudget.train.trainer as trainer
    from kdbudget.train.checkpoint import load_checkpoint
    from kdbudget.train.orphan import ParentWatch

    straight = _run(tmp_path / "a", packed_data)

    class GoneAfterTheLoop(ParentWatch):
        def orphaned(self, *, now: bool = False) -> bool:
            return now  # the loop's checks see the parent alive; the one after the loop does not

    monkeypatch.setattr(trainer, "ParentWatch", GoneAfterTheLoop)
    spec = RunSpec.from_dict(tiny_spec(tmp_path / "b", packed_data))
    with pytest.raises(trainer.Interrupted):
        pretrain(spec)
    state = load_checkpoint(spec.checkpoint_dir)
    assert state["progress"]["trained"] and state["progress"]["spent"]["steps"] == straight["steps"]
    assert not Path(spec.out_dir).exists()

    monkeypatch.setattr(trainer, "ParentWatch", ParentWatch)
    summary = pretrain(spec)
    assert summary["resumes"] == 1 and summary["steps"] == straight["steps"]
    assert summary["validation"] == straight["validation"]
    a = load_file(tmp_path / "a" / "out" / "nokd2" / "model.safetensors")
    b = load_file(Path(spec.out_dir) / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import kdbudget.train.checkpoint as checkpoint

    folder = tmp_path / "checkpoints" / "nokd2"
    checkpoint.save_checkpoint(folder, {"progress": {"spent": {"steps": 3}}, "weights": torch.ones(4)})

    def full_disk(state, path):  # what torch.save does when the disk fills up mid-write
        Path(path).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 536832 vs 536720")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    with pytest.raises(checkpoint.CheckpointWriteError) as caught:
        checkpoint.save_checkpoint(folder, {"progress": {"spent": {"steps": 6}}, "weights": torch.zeros(4)})
    message = str(caught.value)
    assert str(folder / "checkpoint.pt") in message and "MiB free" in message and "unexpected pos" in message
    assert "previous checkpoint" in message and "is kept" in message
    monkeypatch.undo()
    state = checkpoint.load_checkpoint(folder)
    assert state["progress"]["spent"]["steps"] == 3 and torch.equal(state["weights"], torch.ones(4))
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.pt"]  # no half-written file left beside it
