"""The pretraining loop shared by every strategy.

Read top to bottom: lock the checkpoint folder, resolve the budget, build
the student, teacher and strategy, restore a checkpoint if one exists, then
take optimizer steps until the budget is spent, checkpointing periodically
and on SIGTERM/SIGUSR1 (or when the job that started the trainer is gone),
and finally write a Hugging Face model directory with ``summary.json`` and
``metrics.jsonl``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import signal
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdbudget.data.storage import PackedSplit, load_meta
from kdbudget.io import atomic_dir, read_json, write_json
from kdbudget.log import progress
from kdbudget.model import (
    KDBertForMaskedLM,
    bert_config,
    load_pretrained,
    save_pretrained,
)
from kdbudget.model.flops import teacher_forward_extent, teacher_step_flops, train_step_flops
from kdbudget.model.mobilebert import KDMobileBertForMaskedLM, check_request, mobilebert_config
from kdbudget.strategies import build_strategy
from kdbudget.teacher_cost import resolve_teacher_cost
from kdbudget.train.budget import Budget, Spent
from kdbudget.train.checkpoint import (
    checkpoint_path,
    load_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from kdbudget.train.clock import StepClock
from kdbudget.train.deadline import job_end_time
from kdbudget.train.distributed import (
    World,
    agree_max,
    agree_mean,
    close_world,
    gather_objects,
    init_world,
)
from kdbudget.train.divergence import Diverged, DivergenceGuard
from kdbudget.train.hardware import mfu, peak_flops
from kdbudget.train.lock import CheckpointBusy, CheckpointLock, held_by_launcher
from kdbudget.train.optim import build_optimizer, lr_multiplier, set_lr
from kdbudget.train.orphan import ParentWatch
from kdbudget.train.runtime import (
    autocast_context,
    autocast_dtype,
    device_name,
    git_commit,
    pick_device,
    set_threads,
    versions,
)
from kdbudget.train.spec import RunSpec
from kdbudget.train.speed import (
    CompiledLayers,
    fused_adamw,
    resolve_compile,
    resolve_teacher_dtype,
)
from kdbudget.train.step import StepParts, train_step
from kdbudget.train.stream import BatchStream, StreamPosition
from kdbudget.train.tracking import EVENTS_FILE, open_event_log, require_tensorboard

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
EXIT_TIME_LIMIT = 75  # EX_TEMPFAIL: stopped before the job's time limit; a rerun resumes
EXIT_ORPHANED = 75  # stopped because the job that started it is gone; a rerun resumes


class BudgetError(RuntimeError):
    """The budget cannot be resolved (missing reference, different hardware)."""


class VocabularyMismatch(ValueError):
    """The teacher's vocabulary is not the one the data was tokenized with."""


class Interrupted(SystemExit):
    """Raised after a checkpoint was written in response to a stop signal."""


# --- budget ------------------------------------------------------------------


def resolve_budget(spec: RunSpec, meta: dict[str, Any], device: str) -> Budget:
    b = spec.budget
    if b.mode in ("seconds", "flops", "tokens"):
        if not b.limit:
            raise BudgetError(f"{spec.name}: budget mode {b.mode!r} needs a limit")
        return Budget(b.mode, float(b.limit), {"mode": b.mode})
    if b.mode != "reference":
        raise BudgetError(f"{spec.name}: unknown budget mode {b.mode!r}")
    if b.is_reference:
        tokens = b.epochs * meta["sequences"] * meta["seq_len"]
        return Budget("tokens", tokens, {"mode": "reference", "role": "reference", "epochs": b.epochs, "measure": b.measure})
    if not b.reference_summary or not Path(b.reference_summary).is_file():
        raise BudgetError(f"{spec.name}: the reference run's summary is missing: {b.reference_summary}")
    reference = read_json(b.reference_summary)
    limit = reference["spent"][b.measure]
    if b.measure == "seconds" and reference["device"] != device and not b.allow_device_mismatch:
        raise BudgetError(
            f"{spec.name}: the wall-clock reference budget in {b.reference_summary} was measured on "
            f"'{reference['device']}', but this run is on '{device}'; wall-clock budgets are only comparable on the "
            "same hardware (set pretrain.allow_device_mismatch: true to run anyway, or use a flops budget)"
        )
    return Budget(b.measure, float(limit), {"mode": "reference", "role": "follower", "measure": b.measure,
                                            "reference": reference["name"], "reference_device": reference["device"]})


# --- models ------------------------------------------------------------------


def check_teacher_vocabulary(teacher_dir: Path, teacher_vocab: int, meta: dict[str, Any], data_dir: Path) -> None:
    if teacher_vocab != meta["vocab_size"]:
        raise VocabularyMismatch(
            f"teacher {teacher_dir} has vocab_size {teacher_vocab} but the packed data in {data_dir} was tokenized "
            f"with {meta['vocab_size']} tokens: prepare the data with the teacher's tokenizer"
        )
    if (teacher_dir / "tokenizer.json").is_file():
        from kdbudget.data.tokenizer import load_tokenizer, vocab_hash

        if vocab_hash(load_tokenizer(teacher_dir)) != meta["tokenizer"]["vocab_sha256"]:
            raise VocabularyMismatch(
                f"the tokenizer in teacher {teacher_dir} differs from the one the data in {data_dir} was tokenized "
                "with (same size, different tokens): prepare the data with the teacher's tokenizer"
            )


def build_student(spec: RunSpec, meta: dict[str, Any]) -> KDBertForMaskedLM | KDMobileBertForMaskedLM:
    s = spec.student
    pad = meta["tokenizer"]["special_ids"]["pad"]
    if s.mobilebert is not None:  # the inverted-bottleneck student (kdbudget.model.mobilebert); no LayerNorm choice
        config = mobilebert_config(s.layers, s.hidden, s.heads, s.intermediate, meta["vocab_size"], s.max_positions,
                                   **s.mobilebert, hidden_dropout_prob=s.dropout,
                                   attention_probs_dropout_prob=s.dropout, initializer_range=s.init_std,
                                   pad_token_id=pad)
        return KDMobileBertForMaskedLM(config)
    config = bert_config(s.layers, s.hidden, s.heads, s.intermediate, meta["vocab_size"], s.max_positions,
                         hidden_dropout_prob=s.dropout, attention_probs_dropout_prob=s.dropout,
                         initializer_range=s.init_std, layer_norm=s.layer_norm,
                         pad_token_id=pad)
    return KDBertForMaskedLM(config)


# --- the run -----------------------------------------------------------------


class _StopFlag:
    """Remembers a stop signal so the loop can checkpoint at a step boundary."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# Settings that change what a run computes; the others (threads, logging,
# checkpoint cadence, paths) may differ between a run and its resume.
_RESUMABLE_CHANGES = {"threads", "checkpoint_every_seconds", "checkpoint_every_steps", "log_every_steps",
                      "tensorboard",  # the event file is rebuilt to the kept rows on resume (train.tracking)
                      "eval_sequences", "out_dir", "checkpoint_dir", "data_dir", "teacher_dir", "device",
                      "stop_before_time_limit_seconds", "gpus",
                      "divergence_spike_factor", "divergence_window",
                      "compile", "compile_backend",  # speed only: the same step up to rounding
                      "record"}  # what the summary records, not how the run trains


def run_identity(spec: RunSpec) -> str:
    """A JSON fingerprint of the settings a resumed run must share with the interrupted one."""
    settings = {k: v for k, v in spec.to_dict().items() if k not in _RESUMABLE_CHANGES}
    if settings["student"].get("mobilebert") is None:  # a BERT student keeps the identity it had before the option
        settings["student"] = {k: v for k, v in settings["student"].items() if k != "mobilebert"}
    return json.dumps(settings, sort_keys=True, default=str)


def _read_metrics(path: Path, up_to_step: int) -> list[str]:
    """Metric rows up to a checkpoint's step (rows logged after it are replayed on resume)."""
    if not path.is_file():
        return []
    return [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= up_to_step]


def _concat(batches: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return batches[0] if len(batches) == 1 else {k: torch.cat([b[k] for b in batches]) for k in batches[0]}


@contextlib.contextmanager
def _exclusive(spec: RunSpec, world: World, device: torch.device) -> Iterator[None]:
    """Hold the checkpoint folder for this run: rank 0 locks it (unless the launcher that started
    torchrun already does), and every process fails if it could not."""
    if held_by_launcher(spec.checkpoint_dir):
        yield
        return
    lock, refused = None, None
    if world.is_main:
        try:
            lock = CheckpointLock(spec.checkpoint_dir, spec.name).acquire()
        except CheckpointBusy as err:
            refused = err
    # The other processes must not go on to read a checkpoint that another trainer is writing.
    (busy,) = agree_max([float(refused is not None)], world, device)
    if refused is not None:
        raise refused
    if busy:
        raise CheckpointBusy(f"{spec.checkpoint_dir}: rank 0 found it in use by another trainer (see its error)")
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def pretrain(spec: RunSpec) -> dict[str, Any]:
    """Train ``spec.name`` until its budget is spent; returns the summary."""
    set_threads(spec.threads)
    torch.manual_seed(spec.seed)
    if spec.tensorboard:
        require_tensorboard()  # before the lock and any training: a missing package is a set-up error
    watch = ParentWatch()  # the processes above this one as they are when the job starts
    if watch.gone_at_start:  # before the lock: a rerun's trainer must not find this one holding it
        log.warning("%s: %s was gone before training began (Snakemake killed?); stopped without training. Rerun "
                    "Snakemake (after `snakemake --unlock` if it was killed)", spec.name, watch.watched)
        raise Interrupted(EXIT_ORPHANED)
    world, device = init_world(pick_device(spec.device, spec.gpus))
    try:
        # The handlers stay for the whole run: a stop signal during the loop ends it at the next step
        # with a checkpoint; one after the loop (evaluation, writing the model) is too late to
        # matter and must not kill a run that is about to finish.
        with _exclusive(spec, world, device), _StopFlag() as stop:
            return _pretrain(spec, world, device, stop, watch)
    finally:
        close_world(world)


def _pretrain(spec: RunSpec, world: World, device: torch.device, stop: _StopFlag,
              watch: ParentWatch) -> dict[str, Any]:
    hardware = device_name(device) + (f" x {world.size}" if world.distributed else "")
    data_dir = Path(spec.data_dir)
    meta = load_meta(data_dir)
    budget = resolve_budget(spec, meta, hardware)

    amp_dtype = autocast_dtype(device, spec.precision)
    student = build_student(spec, meta).to(device)
    teacher = None
    if spec.teacher_dir:
        teacher_dir = Path(spec.teacher_dir)
        teacher = load_pretrained(teacher_dir)  # fp32 until a student has been initialised from it
        check_teacher_vocabulary(teacher_dir, teacher.config.vocab_size, meta, data_dir)
        teacher.requires_grad_(False)
    strategy = build_strategy(spec.strategy, student.config, teacher.config if teacher else None,
                              **spec.strategy_options).to(device)
    if strategy.teacher_needs is not None and teacher is None:
        raise ValueError(f"{spec.name}: strategy {spec.strategy!r} needs a teacher (no teacher_dir given)")
    if isinstance(student, KDMobileBertForMaskedLM):
        try:
            check_request(strategy.student_needs)
        except ValueError as error:
            raise ValueError(f"{spec.name}: strategy {spec.strategy!r}: {error}") from None

    checkpoint_dir = Path(spec.checkpoint_dir)
    state = load_checkpoint(checkpoint_dir)
    if state is not None and state.get("run") != run_identity(spec):
        raise ValueError(
            f"{checkpoint_dir}: the checkpoint was written by a run with other settings; delete the directory to "
            "start this run over (its budget spent so far would otherwise be mixed into another run's)"
        )
    # A strategy may start its student from the teacher's weights (DistilBERT). A fresh run only: a resumed
    # run's checkpoint holds the weights. Outside the clock: the copy costs no budget, and summary.json says
    # it was made. Every process copies the same teacher, so the replicas stay identical.
    if state is not None:
        student_init = state["progress"].get("student_init")
    else:
        student_init = strategy.init_student(student, teacher)
        if student_init is not None:
            log.info("%s: student initialised from the teacher: %s", spec.name, student_init)
    if teacher is not None:
        teacher.to(device, resolve_teacher_dtype(spec.teacher_dtype, device, amp_dtype))

    opt = spec.optim
    if opt.batch_size % (opt.micro_batch_size * world.size):
        raise ValueError(f"{spec.name}: batch_size {opt.batch_size} is not a multiple of micro_batch_size "
                         f"{opt.micro_batch_size} x {world.size} processes")
    optimizer = build_optimizer([student, strategy], lr=opt.lr, betas=opt.betas, eps=opt.eps,
                                weight_decay=opt.weight_decay, fused=fused_adamw(device))
    compiled = None  # every arm alike: the student's and the teacher's layers, or neither
    if resolve_compile(spec.compile, device):
        compiled = CompiledLayers([student, teacher], spec.compile_backend)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    split = PackedSplit.open(data_dir, "train")
    stream = BatchStream(split, spec.seed)
    spent = Spent()
    if world.is_main:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = checkpoint_dir / METRICS_FILE
    resumes = 0
    trained = False  # the budget is spent (an orphan's checkpoint after the last step says so)

    if state is not None:
        student.load_state_dict(state["student"])
        strategy.load_state_dict(state["strategy"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        spent = Spent(**state["progress"]["spent"])
        stream.position = StreamPosition(**state["progress"]["position"])
        rngs = state["rng"]
        if len(rngs) != world.size:
            log.warning("%s: resuming %d processes from a checkpoint of %d: dropout draws will differ",
                        spec.name, world.size, len(rngs))
        restore_rng(rngs[world.rank % len(rngs)])
        resumes = state["progress"]["resumes"] + 1
        trained = bool(state["progress"].get("trained", False))
        if world.is_main:
            rows = _read_metrics(metrics_path, spent.steps)
            metrics_path.write_text("".join(r + "\n" for r in rows))
        log.info("resumed %s at step %d with %s spent", spec.name, spent.steps, spent.as_dict())
    elif world.is_main:
        metrics_path.write_text("")
    events = open_event_log(spec.tensorboard and world.is_main, metrics_path)  # mirrors the rows kept

    def checkpoint() -> None:
        rngs = gather_objects(rng_state(), world)  # every process's dropout RNG, for an exact resume
        if world.is_main:
            save_checkpoint(checkpoint_dir, {
                "student": student.state_dict(), "strategy": strategy.state_dict(),
                "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "rng": rngs,
                "run": run_identity(spec),
                "progress": {"spent": spent.as_dict(), "position": vars(stream.position).copy(), "resumes": resumes,
                             "trained": trained, "student_init": student_init},
            })

    seq_len = meta["seq_len"]
    accumulation = opt.batch_size // (opt.micro_batch_size * world.size)
    mine = slice(world.rank * opt.micro_batch_size, (world.rank + 1) * opt.micro_batch_size)
    tokens_per_step = opt.batch_size * seq_len
    flops_cost = lambda masked_per_seq: train_step_flops(  # noqa: E731
        student.config, teacher.config if teacher else None, strategy, opt.batch_size, seq_len, masked_per_seq)
    recent_seconds: deque[float] = deque(maxlen=20)
    step_cost = {"tokens": float(tokens_per_step), "flops": flops_cost(meta["masking"]["max_predictions"]),
                 "seconds": 0.0}
    autocast = autocast_context(device, amp_dtype)
    parts = StepParts(student, teacher, strategy, optimizer, scaler, autocast, device, world, compiled)
    clock = StepClock(device)  # every arm, whatever its budget unit, is timed by this clock
    guard = DivergenceGuard(spec.divergence_spike_factor, spec.divergence_window)
    student.train()
    end_time = job_end_time() if world.is_main else None  # rank 0's clock decides for every process
    stop_at = end_time - spec.stop_before_time_limit_seconds if end_time else None
    if stop_at is not None:
        log.info("%s: the SLURM job ends at %s; training stops with a checkpoint by %s", spec.name,
                 time.strftime("%H:%M:%S", time.localtime(end_time)), time.strftime("%H:%M:%S", time.localtime(stop_at)))
    log.info("%s: %s on %s, budget %s, %d-step accumulation, %s", spec.name, spec.strategy, hardware,
             budget.as_dict(), accumulation, "autocast " + str(amp_dtype) if amp_dtype else "fp32")

    bar = progress(total=100.0, desc=spec.name, unit="%", initial=round(100 * budget.fraction(spent), 2),
                   bar_format="{l_bar}{bar}| {n:.1f}/100% [{elapsed}<{remaining}{postfix}]",
                   disable=not world.is_main)
    last_log = {"tokens": spent.tokens, "seconds": spent.seconds}  # tokens/s between log rows, on the step clock
    last_checkpoint = time.monotonic()
    metrics_file = open(metrics_path, "a", encoding="utf-8") if world.is_main else contextlib.nullcontext()
    with metrics_file as metrics:
        while not trained and not budget.should_stop(spent, step_cost[budget.unit]):
            clock.start()
            fraction = budget.fraction(spent)
            strategy.begin_step(fraction, student)  # a staged strategy switches stage by the budget spent
            lr = opt.lr * lr_multiplier(strategy.schedule_fraction(fraction), total=1.0, warmup=opt.warmup)
            set_lr(optimizer, lr)
            # Every process reads the global micro-batches and trains on its own slices. They are
            # read as one process would read them, micro-batch by micro-batch, so dynamic masks (keyed
            # by position) are the same for any number of processes.
            host_batches = [_concat([stream.next(opt.micro_batch_size) for _ in range(world.size)])
                            for _ in range(accumulation)]
            masked = sum(int((b["labels"] != -100).sum()) for b in host_batches)  # on the host: no sync
            components = train_step(parts, ({k: v[mine] for k, v in b.items()} for b in host_batches), accumulation)
            seconds = clock.stop()
            diverged = guard.check(float(components["loss"]))  # the clock already waited for the device
            due = bool(spec.checkpoint_every_steps and (spent.steps + 1) % spec.checkpoint_every_steps == 0) or \
                time.monotonic() - last_checkpoint >= spec.checkpoint_every_seconds
            late = stop_at is not None and time.time() >= stop_at
            # One decision for the whole job: the slowest process's time, any stop signal, any due
            # checkpoint, the job's time limit, any process whose job is gone.
            elapsed, signum, due, late, bad, orphaned = agree_max(
                [seconds, stop.signum or 0, float(due), float(late), float(diverged is not None),
                 float(watch.orphaned())], world, device)
            signum = int(signum) or None
            if bad:
                bar.close()
                kept = (f"the last good checkpoint ({checkpoint_path(checkpoint_dir)}) is kept"
                        if checkpoint_path(checkpoint_dir).is_file() else "no checkpoint had been written yet")
                raise Diverged(
                    f"{spec.name}: training diverged at step {spent.steps + 1}: "
                    f"{diverged or 'another process saw a diverged loss'}. Stopped instead of spending the rest of "
                    f"the budget; {kept}. Lower the learning rate (pretrain.lr) or raise the warmup, then delete "
                    f"{checkpoint_dir} to start over (pretrain.divergence_spike_factor: 0 disables the spike test)")

            step_flops = flops_cost(masked / opt.batch_size)
            spent.teacher_flops += teacher_step_flops(teacher.config if teacher else None, strategy, opt.batch_size,
                                                      seq_len, masked / opt.batch_size)
            spent.steps += 1
            spent.sequences += opt.batch_size
            spent.tokens += tokens_per_step
            spent.flops += step_flops
            spent.seconds += elapsed
            recent_seconds.append(elapsed)
            step_cost["flops"] = step_flops
            step_cost["seconds"] = float(np.median(recent_seconds))
            bar.update(100 * budget.fraction(spent) - bar.n)

            last_step = budget.should_stop(spent, step_cost[budget.unit])
            log_now = last_step or spent.steps % spec.log_every_steps == 0
            if log_now:
                components = agree_mean(components, world)
            if log_now and world.is_main:
                window = spent.seconds - last_log["seconds"]
                row = {"step": spent.steps, "seconds": round(spent.seconds, 4), "tokens": spent.tokens,
                       "flops": spent.flops, "epochs": round(stream.epochs_done, 6), "lr": lr,
                       "budget_fraction": round(budget.fraction(spent), 6),
                       **{k: float(v) for k, v in components.items()},
                       "tokens_per_second": round((spent.tokens - last_log["tokens"]) / window, 1) if window else None}
                metrics.write(json.dumps(row) + "\n")
                metrics.flush()
                events.add_row(row)  # after clock.stop(): like the row, costs no budget
                bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{lr:.2e}", tok_s=f"{row['tokens_per_second'] or 0:.0f}",
                                refresh=False)  # the bar's own interval decides when to draw
                last_log = {"tokens": spent.tokens, "seconds": spent.seconds}

            # A stop after the last step would only make a retry resume to do nothing. An orphan
            # stops even then (see below).
            stopping = (signum is not None or bool(late)) and not last_step or bool(orphaned)
            if stopping or due:
                if world.is_main:
                    metrics.flush()
                trained = last_step
                checkpoint()
                last_checkpoint = time.monotonic()
            if stopping:
                bar.close()
                if orphaned:
                    _stop_orphan(spec, watch, spent.steps)
                if signum is not None:
                    log.warning("%s: stopped by signal %d at step %d; rerun to resume", spec.name, signum, spent.steps)
                    raise Interrupted(128 + signum)
                log.warning("%s: stopped %.0f s before the job's time limit at step %d; rerun to resume", spec.name,
                            spec.stop_before_time_limit_seconds, spent.steps)
                raise Interrupted(EXIT_TIME_LIMIT)
    bar.close()
    # Snakemake marks the job's outputs incomplete when it dies, so a rerun would discard what an
    # orphan writes now and, the checkpoint being gone, train again from the start. An orphan keeps
    # its final checkpoint instead: the rerun only evaluates and writes the model.
    (orphaned,) = agree_max([float(watch.orphaned(now=True))], world, device)
    if orphaned:
        trained = True
        checkpoint()
        _stop_orphan(spec, watch, spent.steps)
    if not world.is_main:
        return {}

    evaluation = evaluate(student, data_dir, device, autocast, spec.eval_sequences, opt.micro_batch_size, spec.seed)
    # MiniLM and TinyBERT (without add_mlm) never train the MLM head: its score says nothing about them.
    evaluation["mlm_head_trained"] = bool(strategy.student_needs.logits)
    events.add_validation(spent.steps, evaluation)
    events.close()
    summary = {
        "name": spec.name, "strategy": spec.strategy,
        "tokens": spent.tokens, "flops": spent.flops, "seconds": spent.seconds,
        "tokens_per_second": spent.tokens / spent.seconds if spent.seconds else None,
        "mfu": mfu(spent.flops, spent.seconds, peak_flops(device), world.size),  # None where the peak is unknown
        "epochs": stream.epochs_done, "steps": spent.steps, "sequences": spent.sequences,
        "budget": {**budget.as_dict(), "spent": spent.get(budget.unit), "fraction": budget.fraction(spent)},
        "spent": spent.as_dict(), "device": hardware, "device_type": device.type,
        "precision": str(amp_dtype or torch.float32),
        "speed": {"compile": compiled.describe() if compiled else {"enabled": False},
                  "teacher_dtype": str(next(teacher.parameters()).dtype) if teacher else None,
                  "fused_adamw": fused_adamw(device)},
        "student": vars(spec.student).copy(), "parameters": sum(p.numel() for p in student.parameters()),
        "teacher": ({"path": spec.teacher_dir, "layers": teacher.config.num_hidden_layers,
                     "hidden": teacher.config.hidden_size} if teacher else None),
        "init_from_teacher": student_init is not None, "student_init": student_init,
        "optim": {**vars(opt), "betas": list(opt.betas)}, "strategy_options": spec.strategy_options,
        "seed": spec.seed, "resumes": resumes, "validation": evaluation,
        "data": {"dir": str(data_dir), "sequences": meta["sequences"], "seq_len": seq_len,
                 "vocab_sha256": meta["tokenizer"]["vocab_sha256"]},
        "versions": versions(), "git_commit": git_commit(),
        **run_record(spec, strategy, teacher, spent),
    }
    write_model_dir(spec, student, data_dir / meta["tokenizer"]["path"], summary, metrics_path)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    log.info("%s done: %d tokens, %.3g FLOPs, %.1f s, %.0f tokens/s, validation %s", spec.name, spent.tokens,
             spent.flops, spent.seconds, summary["tokens_per_second"] or 0, evaluation)
    return summary


def run_record(spec: RunSpec, strategy, teacher, spent: Spent) -> dict[str, Any]:
    """The summary's facts from the plan (group, base, seed, budget_scale) and, for a KD run, what its teacher
    cost to make (``teacher_cost``), how far its forward passes ran (``teacher_forward``) and their share of
    the FLOPs spent (``teacher_flops``)."""
    record: dict[str, Any] = {"base": spec.name, "seed": spec.seed, "budget_scale": 1.0, "group": None,
                              **spec.record}
    if teacher is None:
        record.pop("teacher_cost", None)
        return record
    cost = record.get("teacher_cost") or {"flops": None, "gpu_hours": None, "source": "default",
                                          "reference": "unknown: the run spec names no teacher cost"}
    record["teacher_cost"] = resolve_teacher_cost(cost, spec.teacher_dir)
    record["teacher_forward"] = teacher_forward_extent(teacher.config, strategy.teacher_needs)
    record["teacher_flops"] = spent.teacher_flops
    return record


def _stop_orphan(spec: RunSpec, watch: ParentWatch, steps: int) -> None:
    log.warning("%s: %s is gone (Snakemake killed?); stopped with a checkpoint at step %d. Rerun Snakemake to "
                "resume (after `snakemake --unlock` if it was killed)", spec.name, watch.watched, steps)
    raise Interrupted(EXIT_ORPHANED)


@torch.no_grad()
def evaluate(model, data_dir: Path, device, autocast, max_sequences: int, batch_size: int, seed: int) -> dict[str, float]:
    """MLM loss and accuracy on the validation split (not counted in the budget)."""
    split = PackedSplit.open(data_dir, "validation")
    n = min(len(split), max_sequences)
    if n == 0:
        return {}
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    rng = np.random.default_rng([seed, 999])
    for start in range(0, n, batch_size):
        batch = {k: torch.from_numpy(v).to(device)
                 for k, v in split.batch(np.arange(start, min(n, start + batch_size)), epoch=0, rng=rng).items()}
        with autocast():
            out = model(batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        labels = batch["labels"][batch["labels"] != -100]
        total_loss += float(out.mlm_loss) * len(labels)
        correct += int((out.logits.argmax(-1) == labels).sum())
        count += len(labels)
    model.train()
    return {"mlm_loss": total_loss / count, "mlm_accuracy": correct / count, "perplexity": math.exp(total_loss / count),
            "sequences": n}


def write_model_dir(spec: RunSpec, student, tokenizer_dir: Path, summary: dict, metrics_path: Path) -> None:
    """The Hugging Face model directory with tokenizer, summary and metrics, atomically."""
    with atomic_dir(spec.out_dir) as tmp:
        save_pretrained(student, tmp)
        for item in tokenizer_dir.iterdir():
            if item.is_file():
                shutil.copy2(item, tmp / item.name)
        shutil.copy2(metrics_path, tmp / METRICS_FILE)
        if spec.tensorboard:  # switched off, the directory holds exactly what it did before the switch existed
            shutil.copy2(metrics_path.parent / EVENTS_FILE, tmp / EVENTS_FILE)
        write_json(tmp / "summary.json", summary)
