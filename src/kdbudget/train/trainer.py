"""The pretraining loop shared by every strategy.

Read top to bottom: ``pretrain`` locks the checkpoint folder; ``_setup``
resolves the budget, builds the student, teacher, strategy and optimizer and
restores a checkpoint if one exists; ``_train`` is the loop: optimizer steps
(``kdbudget.train.step.train_step``) until the budget is spent, checkpointing
periodically and on SIGTERM/SIGUSR1, before the SLURM job's time limit, or when
the job that started the trainer is gone; ``_finish`` evaluates and writes a
Hugging Face model directory with ``summary.json`` (``_summary``) and
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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from kdbudget.data.storage import PackedSplit, load_meta
from kdbudget.io import atomic_dir, write_json
from kdbudget.log import progress
from kdbudget.model import KDBertForMaskedLM, save_pretrained
from kdbudget.model.flops import teacher_forward_extent, teacher_step_flops, train_step_flops
from kdbudget.model.mobilebert import KDMobileBertForMaskedLM, check_request
from kdbudget.strategies import Strategy, build_strategy
from kdbudget.teacher_cost import resolve_teacher_cost
from kdbudget.train.budget import Budget, Spent, resolve_budget
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
from kdbudget.train.models import build_student, load_teacher
from kdbudget.train.optim import build_optimizer, lr_multiplier, set_lr
from kdbudget.train.orphan import ParentWatch
from kdbudget.train.prefetch import StepShape, open_feed, resolve_prefetch
from kdbudget.train.runtime import (
    autocast_context,
    autocast_dtype,
    cpu_kernels,
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
from kdbudget.train.tracking import EVENTS_FILE, EventLog, NoEventLog, open_event_log, require_tensorboard

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
EXIT_TIME_LIMIT = 75  # EX_TEMPFAIL: stopped before the job's time limit; a rerun resumes
EXIT_ORPHANED = 75  # stopped because the job that started it is gone; a rerun resumes


class Interrupted(SystemExit):
    """Raised after a checkpoint was written in response to a stop signal."""


# --- the run -----------------------------------------------------------------


class _StopFlag:
    """Remembers a stop signal so the loop can checkpoint at a step boundary."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
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
                      "prefetch",  # speed only: the same batches, read earlier
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
    run = _setup(spec, world, device)
    _train(run, stop, watch)
    return _finish(run)


# --- setup -------------------------------------------------------------------


@dataclass
class _Run:
    """A run set up for its loop: what the loop, its checkpoints and the summary read (nanoGPT keeps these as
    globals). ``spent``, ``resumes``, ``trained`` and the stream's position are what a checkpoint carries over."""

    spec: RunSpec
    world: World
    device: torch.device
    hardware: str  # the device's name (" x N" for N processes): what a wall-clock budget is comparable on
    meta: dict[str, Any]
    budget: Budget
    amp_dtype: torch.dtype | None
    student: KDBertForMaskedLM | KDMobileBertForMaskedLM
    teacher: KDBertForMaskedLM | None
    strategy: Strategy
    compiled: CompiledLayers | None
    parts: StepParts  # what train_step touches: the models, the optimizer and scaler, autocast
    stream: BatchStream  # read only through the loop's feed (kdbudget.train.prefetch)
    position: StreamPosition  # the stream's position after the last step taken: what a checkpoint saves
    prefetch: bool  # read ahead (pretrain.prefetch, resolved for the device)
    student_init: dict[str, Any] | None
    spent: Spent = field(default_factory=Spent)
    resumes: int = 0
    trained: bool = False  # the budget is spent (an orphan's checkpoint after the last step says so)
    events: EventLog | NoEventLog = field(default_factory=NoEventLog)

    @property
    def data_dir(self) -> Path:
        return Path(self.spec.data_dir)

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.spec.checkpoint_dir)

    @property
    def metrics_path(self) -> Path:
        return self.checkpoint_dir / METRICS_FILE

    @property
    def accumulation(self) -> int:
        return self.spec.optim.batch_size // (self.spec.optim.micro_batch_size * self.world.size)

    @property
    def step_shape(self) -> StepShape:
        return StepShape(self.spec.optim.micro_batch_size, self.accumulation, self.world.size, self.world.rank)

    def step_flops(self, masked_per_seq: float) -> float:
        """The analytic FLOPs of one optimizer step with this many predicted positions per sequence."""
        return train_step_flops(self.student.config, self.teacher.config if self.teacher else None, self.strategy,
                                self.spec.optim.batch_size, self.meta["seq_len"], masked_per_seq)


def _setup(spec: RunSpec, world: World, device: torch.device) -> _Run:
    """The budget, models, strategy, optimizer and data stream of ``spec``, restored from its checkpoint if any."""
    hardware = device_name(device) + (f" x {world.size}" if world.distributed else "")
    data_dir = Path(spec.data_dir)
    meta = load_meta(data_dir)
    budget = resolve_budget(spec, meta, hardware)

    amp_dtype = autocast_dtype(device, spec.precision)
    student = build_student(spec, meta).to(device)
    teacher = load_teacher(spec, meta)  # fp32 until a student has been initialised from it
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
    autocast = autocast_context(device, amp_dtype)
    parts = StepParts(student, teacher, strategy, optimizer, scaler, autocast, device, world, compiled)
    stream = BatchStream(PackedSplit.open(data_dir, "train"), spec.seed)
    run = _Run(spec, world, device, hardware, meta, budget, amp_dtype, student, teacher, strategy, compiled, parts,
               stream, replace(stream.position), resolve_prefetch(spec.prefetch, device), student_init)
    if world.is_main:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    if state is not None:
        _restore(run, state)
    elif world.is_main:
        run.metrics_path.write_text("")
    run.events = open_event_log(spec.tensorboard and world.is_main, run.metrics_path)  # mirrors the rows kept
    return run


def _restore(run: _Run, state: dict[str, Any]) -> None:
    """Continue from a checkpoint: weights, optimizer, scaler, spend, stream position, RNGs, metric rows."""
    student, strategy, optimizer, scaler = run.student, run.strategy, run.parts.optimizer, run.parts.scaler
    student.load_state_dict(state["student"])
    strategy.load_state_dict(state["strategy"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    run.spent = Spent(**state["progress"]["spent"])
    run.stream.position = StreamPosition(**state["progress"]["position"])
    run.position = replace(run.stream.position)  # not the stream's own: a reader ahead moves that one
    rngs = state["rng"]
    if len(rngs) != run.world.size:
        log.warning("%s: resuming %d processes from a checkpoint of %d: dropout draws will differ",
                    run.spec.name, run.world.size, len(rngs))
    restore_rng(rngs[run.world.rank % len(rngs)])
    run.resumes = state["progress"]["resumes"] + 1
    run.trained = bool(state["progress"].get("trained", False))
    if run.world.is_main:
        rows = _read_metrics(run.metrics_path, run.spent.steps)
        run.metrics_path.write_text("".join(r + "\n" for r in rows))
    log.info("resumed %s at step %d with %s spent", run.spec.name, run.spent.steps, run.spent.as_dict())


def _checkpoint(run: _Run) -> None:
    """Everything an exact resume needs; every process takes part (their RNG states), rank 0 writes."""
    rngs = gather_objects(rng_state(), run.world)  # every process's dropout RNG, for an exact resume
    if run.world.is_main:
        save_checkpoint(run.checkpoint_dir, {
            "student": run.student.state_dict(), "strategy": run.strategy.state_dict(),
            "optimizer": run.parts.optimizer.state_dict(), "scaler": run.parts.scaler.state_dict(), "rng": rngs,
            "run": run_identity(run.spec),
            "progress": {"spent": run.spent.as_dict(), "position": vars(run.position).copy(),
                         "resumes": run.resumes, "trained": run.trained, "student_init": run.student_init},
        })


# --- the loop ----------------------------------------------------------------


def _train(run: _Run, stop: _StopFlag, watch: ParentWatch) -> None:
    """Optimizer steps until the budget is spent; a stop signal, the job's time limit or a lost parent end
    the run early with a checkpoint (``Interrupted``), a diverged loss with ``Diverged``."""
    spec, opt, spent, budget, world, device = run.spec, run.spec.optim, run.spent, run.budget, run.world, run.device
    cost = _StepCost(float(opt.batch_size * run.meta["seq_len"]),
                     run.step_flops(run.meta["masking"]["max_predictions"]))
    clock = StepClock(device)  # every arm, whatever its budget unit, is timed by this clock
    guard = DivergenceGuard(spec.divergence_spike_factor, spec.divergence_window)
    run.student.train()
    stop_at = _stop_time(run)
    log.info("%s: %s on %s, budget %s, %d-step accumulation, %s", spec.name, spec.strategy, run.hardware,
             budget.as_dict(), run.accumulation, "autocast " + str(run.amp_dtype) if run.amp_dtype else "fp32")
    last_checkpoint = time.monotonic()
    with _Reporter(run) as report, open_feed(run.stream, run.step_shape, device, run.prefetch) as feed:
        while not run.trained and not budget.should_stop(spent, cost[budget.unit]):
            clock.start()
            fraction = budget.fraction(spent)
            run.strategy.begin_step(fraction, run.student)  # a staged strategy switches stage by the budget spent
            lr = opt.lr * lr_multiplier(run.strategy.schedule_fraction(fraction), total=1.0, warmup=opt.warmup)
            set_lr(run.parts.optimizer, lr)
            step = feed.take()
            run.position = step.position
            components = train_step(run.parts, step.micro_batches, run.accumulation)
            feed.ahead()  # the next step's copies, queued behind this step's compute
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
                report.close_bar()
                raise _diverged(run, diverged)
            cost.update(_account(run, step.masked, elapsed), elapsed)
            report.advance()

            last_step = budget.should_stop(spent, cost[budget.unit])
            if last_step or spent.steps % spec.log_every_steps == 0:
                report.row(components, lr)
            # A stop after the last step would only make a retry resume to do nothing. An orphan
            # stops even then (see below).
            stopping = (signum is not None or bool(late)) and not last_step or bool(orphaned)
            if stopping or due:
                report.flush()
                run.trained = last_step
                _checkpoint(run)
                last_checkpoint = time.monotonic()
            if stopping:
                report.close_bar()
                _stop(run, watch, signum, bool(orphaned))
    # Snakemake marks the job's outputs incomplete when it dies, so a rerun would discard what an
    # orphan writes now and, the checkpoint being gone, train again from the start. An orphan keeps
    # its final checkpoint instead: the rerun only evaluates and writes the model.
    (orphaned,) = agree_max([float(watch.orphaned(now=True))], world, device)
    if orphaned:
        run.trained = True
        _checkpoint(run)
        _stop_orphan(run.spec, watch, spent.steps)


class _StepCost:
    """The next step's cost in each budget unit, for the stopping test: tokens are fixed, FLOPs those of the
    last step (its predicted positions), seconds the median of the last 20 steps (0 before the first)."""

    def __init__(self, tokens: float, flops: float) -> None:
        self.recent: deque[float] = deque(maxlen=20)
        self.cost = {"tokens": tokens, "flops": flops, "seconds": 0.0}

    def __getitem__(self, unit: str) -> float:
        return self.cost[unit]

    def update(self, flops: float, seconds: float) -> None:
        self.recent.append(seconds)
        self.cost["flops"] = flops
        self.cost["seconds"] = float(np.median(self.recent))


def _account(run: _Run, masked: int, elapsed: float) -> float:
    """Add one optimizer step with ``masked`` predicted positions to what the run has spent; returns its FLOPs."""
    spent, batch_size, seq_len = run.spent, run.spec.optim.batch_size, run.meta["seq_len"]
    step_flops = run.step_flops(masked / batch_size)
    spent.teacher_flops += teacher_step_flops(run.teacher.config if run.teacher else None, run.strategy, batch_size,
                                              seq_len, masked / batch_size)
    spent.steps += 1
    spent.sequences += batch_size
    spent.tokens += batch_size * seq_len
    spent.flops += step_flops
    spent.seconds += elapsed
    return step_flops


class _Reporter:
    """The loop's progress bar and, on rank 0, metrics.jsonl's rows and their TensorBoard mirror, with
    tokens/s between rows measured on the step clock."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.bar = progress(total=100.0, desc=run.spec.name, unit="%",
                            initial=round(100 * run.budget.fraction(run.spent), 2),
                            bar_format="{l_bar}{bar}| {n:.1f}/100% [{elapsed}<{remaining}{postfix}]",
                            disable=not run.world.is_main)
        self.last = {"tokens": run.spent.tokens, "seconds": run.spent.seconds}  # at the previous row
        self.file = open(run.metrics_path, "a", encoding="utf-8") if run.world.is_main else None

    def __enter__(self) -> _Reporter:
        return self

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.close()

    def advance(self) -> None:
        self.bar.update(100 * self.run.budget.fraction(self.run.spent) - self.bar.n)

    def row(self, components: dict[str, torch.Tensor], lr: float) -> None:
        """A metrics row of the step just taken, its loss components averaged over the processes (each
        process calls this; rank 0 writes)."""
        components = agree_mean(components, self.run.world)
        if self.file is None:
            return
        spent, budget = self.run.spent, self.run.budget
        window = spent.seconds - self.last["seconds"]
        row = {"step": spent.steps, "seconds": round(spent.seconds, 4), "tokens": spent.tokens,
               "flops": spent.flops, "epochs": round(self.run.stream.epochs_at(self.run.position), 6), "lr": lr,
               "budget_fraction": round(budget.fraction(spent), 6),
               **{k: float(v) for k, v in components.items()},
               "tokens_per_second": round((spent.tokens - self.last["tokens"]) / window, 1) if window else None}
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        self.run.events.add_row(row)  # after clock.stop(): like the row, costs no budget
        self.bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{lr:.2e}", tok_s=f"{row['tokens_per_second'] or 0:.0f}",
                             refresh=False)  # the bar's own interval decides when to draw
        self.last = {"tokens": spent.tokens, "seconds": spent.seconds}

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def close_bar(self) -> None:
        self.bar.close()


def _stop_time(run: _Run) -> float | None:
    """When training must stop with a checkpoint before the SLURM job's time limit (None outside SLURM);
    rank 0's clock decides for every process."""
    end_time = job_end_time() if run.world.is_main else None
    stop_at = end_time - run.spec.stop_before_time_limit_seconds if end_time else None
    if stop_at is not None:
        clock = lambda seconds: time.strftime("%H:%M:%S", time.localtime(seconds))  # noqa: E731
        log.info("%s: the SLURM job ends at %s; training stops with a checkpoint by %s", run.spec.name,
                 clock(end_time), clock(stop_at))
    return stop_at


def _diverged(run: _Run, diverged: str | None) -> Diverged:
    path = checkpoint_path(run.checkpoint_dir)
    kept = f"the last good checkpoint ({path}) is kept" if path.is_file() else "no checkpoint had been written yet"
    return Diverged(
        f"{run.spec.name}: training diverged at step {run.spent.steps + 1}: "
        f"{diverged or 'another process saw a diverged loss'}. Stopped instead of spending the rest of "
        f"the budget; {kept}. Lower the learning rate (pretrain.lr) or raise the warmup, then delete "
        f"{run.checkpoint_dir} to start over (pretrain.divergence_spike_factor: 0 disables the spike test)")


def _stop(run: _Run, watch: ParentWatch, signum: int | None, orphaned: bool) -> NoReturn:
    """End a stopped run (its checkpoint written) with the exit status a rerun resumes from."""
    spec, steps = run.spec, run.spent.steps
    if orphaned:
        _stop_orphan(spec, watch, steps)
    if signum is not None:
        log.warning("%s: stopped by signal %d at step %d; rerun to resume", spec.name, signum, steps)
        raise Interrupted(128 + signum)
    log.warning("%s: stopped %.0f s before the job's time limit at step %d; rerun to resume", spec.name,
                spec.stop_before_time_limit_seconds, steps)
    raise Interrupted(EXIT_TIME_LIMIT)


def _stop_orphan(spec: RunSpec, watch: ParentWatch, steps: int) -> NoReturn:
    log.warning("%s: %s is gone (Snakemake killed?); stopped with a checkpoint at step %d. Rerun Snakemake to "
                "resume (after `snakemake --unlock` if it was killed)", spec.name, watch.watched, steps)
    raise Interrupted(EXIT_ORPHANED)


# --- the end -----------------------------------------------------------------


def _finish(run: _Run) -> dict[str, Any]:
    """Evaluate, write the model directory with its summary and metrics (rank 0) and drop the checkpoint."""
    if not run.world.is_main:
        return {}
    spec, spent = run.spec, run.spent
    evaluation = evaluate(run.student, run.data_dir, run.device, run.parts.autocast, spec.eval_sequences,
                          spec.optim.micro_batch_size, spec.seed)
    # MiniLM and TinyBERT (without add_mlm) never train the MLM head: its score says nothing about them.
    evaluation["mlm_head_trained"] = bool(run.strategy.student_needs.logits)
    run.events.add_validation(spent.steps, evaluation)
    run.events.close()
    summary = _summary(run, evaluation)
    write_model_dir(spec, run.student, run.data_dir / run.meta["tokenizer"]["path"], summary, run.metrics_path)
    shutil.rmtree(run.checkpoint_dir, ignore_errors=True)
    log.info("%s done: %d tokens, %.3g FLOPs, %.1f s, %.0f tokens/s, validation %s", spec.name, spent.tokens,
             spent.flops, spent.seconds, summary["tokens_per_second"] or 0, evaluation)
    return summary


def _summary(run: _Run, evaluation: dict[str, Any]) -> dict[str, Any]:
    """summary.json: what the run spent and at what speed, its settings, validation and provenance."""
    spec, spent, budget, teacher, meta, opt = run.spec, run.spent, run.budget, run.teacher, run.meta, run.spec.optim
    return {
        "name": spec.name, "strategy": spec.strategy,
        "tokens": spent.tokens, "flops": spent.flops, "seconds": spent.seconds,
        "tokens_per_second": spent.tokens / spent.seconds if spent.seconds else None,
        "mfu": mfu(spent.flops, spent.seconds, peak_flops(run.device), run.world.size),  # None: peak unknown
        "epochs": run.stream.epochs_at(run.position), "steps": spent.steps, "sequences": spent.sequences,
        "budget": {**budget.as_dict(), "spent": spent.get(budget.unit), "fraction": budget.fraction(spent)},
        "spent": spent.as_dict(), "device": run.hardware, "device_type": run.device.type,
        "cpu_kernels": cpu_kernels(),
        "precision": str(run.amp_dtype or torch.float32),
        "speed": {"compile": run.compiled.describe() if run.compiled else {"enabled": False},
                  "teacher_dtype": str(next(teacher.parameters()).dtype) if teacher else None,
                  "fused_adamw": fused_adamw(run.device), "prefetch": run.prefetch},
        "student": vars(spec.student).copy(), "parameters": sum(p.numel() for p in run.student.parameters()),
        "teacher": ({"path": spec.teacher_dir, "layers": teacher.config.num_hidden_layers,
                     "hidden": teacher.config.hidden_size} if teacher else None),
        "init_from_teacher": run.student_init is not None, "student_init": run.student_init,
        "optim": {**vars(opt), "betas": list(opt.betas)}, "strategy_options": spec.strategy_options,
        "seed": spec.seed, "resumes": run.resumes, "validation": evaluation,
        "data": {"dir": str(run.data_dir), "sequences": meta["sequences"], "seq_len": meta["seq_len"],
                 "vocab_sha256": meta["tokenizer"]["vocab_sha256"]},
        "versions": versions(), "git_commit": git_commit(),
        **run_record(spec, run.strategy, teacher, spent),
    }


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


@torch.no_grad()
def evaluate(model, data_dir: Path, device, autocast, max_sequences: int, batch_size: int,
             seed: int) -> dict[str, float]:
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
