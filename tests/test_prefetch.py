"""Reading ahead (pretrain.prefetch, kdbudget.train.prefetch): the same batches in the same order as
reading on demand, a resume at the step after the checkpoint (never at what was read ahead), no
reader thread left after a run ends or fails, and the setting wired from the config to the run."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
from pathlib import Path

import pytest
import torch
from conftest import tiny_spec

from kdbudget.config import ConfigError, validate_config
from kdbudget.data.storage import PackedSplit
from kdbudget.plan import common_spec
from kdbudget.train.checkpoint import load_checkpoint
from kdbudget.train.prefetch import THREAD_NAME, ReadAhead, StepFeed, StepShape, resolve_prefetch
from kdbudget.train.spec import RunSpec
from kdbudget.train.stream import BatchStream
from kdbudget.train.trainer import pretrain, run_identity

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rows(path: Path) -> list[dict]:
    timing = {"seconds", "tokens_per_second"}
    return [{k: v for k, v in json.loads(line).items() if k not in timing} for line in path.read_text().splitlines()]


def test_the_feeds_read_the_stream_as_one_process_would(packed_dynamic):
    """Process 1 of 2, two micro-batches of 3 per step: a micro-batch is two 3-row reads of a plain
    stream (one per process, as a single process reads them), of which process 1 trains on the second;
    over an epoch boundary, with or without reading ahead."""
    split = PackedSplit.open(packed_dynamic, "train")
    shape = StepShape(micro_batch_size=3, accumulation=2, processes=2, rank=1)
    steps = len(split) // 12 + 2  # into the second epoch
    plain = BatchStream(split, seed=7)
    expected = []
    for _ in range(steps):
        reads = [(plain.next(3), plain.next(3)) for _ in range(2)]
        masked = sum(int((r["labels"] != -100).sum()) for pair in reads for r in pair)
        expected.append(([second for _, second in reads], masked, vars(plain.position).copy()))
    for feed_type in (StepFeed, ReadAhead):
        with feed_type(BatchStream(split, seed=7), shape, torch.device("cpu")) as feed:
            for want_batches, want_masked, want_position in expected:
                step = feed.take()
                feed.ahead()
                assert step.masked == want_masked and vars(step.position) == want_position
                assert vars(feed.position) == want_position
                for got, want in zip(step.micro_batches, want_batches, strict=True):
                    for key, value in want.items():
                        assert torch.equal(got[key], value), (feed_type.__name__, key)
                    assert torch.equal(got["masked_index"], (want["labels"].reshape(-1) != -100).nonzero()[:, 0])
        assert not _readers()
    assert expected[-1][2]["epoch"] == 1


def test_a_failure_of_the_reader_reaches_the_loop_and_stops_the_thread(packed_data, monkeypatch):
    split = PackedSplit.open(packed_data, "train")
    calls = []
    real = BatchStream.next

    def fail_third(self, size):
        calls.append(size)
        if len(calls) == 3:
            raise OSError("disk gone")
        return real(self, size)

    monkeypatch.setattr(BatchStream, "next", fail_third)
    with pytest.raises(OSError, match="disk gone"):
        with ReadAhead(BatchStream(split, seed=1), StepShape(4, 1), torch.device("cpu")) as feed:
            feed.take()
            feed.take()
            feed.take()  # the third read failed in the reader
    assert not _readers()


def test_closing_a_reader_that_waits_for_room_ends_it(packed_data):
    split = PackedSplit.open(packed_data, "train")
    feed = ReadAhead(BatchStream(split, seed=1), StepShape(4, 1), torch.device("cpu"))
    feed.take()
    feed._thread.join(timeout=0.5)  # it fills the queue, then waits for room
    assert feed._thread.is_alive() and feed._ready.full()
    feed.close()
    assert not _readers()


def test_a_run_with_and_without_read_ahead_trains_the_same_weights(tmp_path, packed_dynamic):
    runs = {}
    for on in (False, True):
        name = f"nokd2{'on' if on else 'off'}"
        spec = tiny_spec(tmp_path, packed_dynamic, name=name, prefetch=on, budget={"mode": "tokens",
                                                                                    "limit": 8 * 128 * 6})
        runs[on] = pretrain(RunSpec.from_dict(spec)), tmp_path / "out" / name
        assert not _readers()
    (off, off_dir), (on, on_dir) = runs[False], runs[True]
    assert off["speed"]["prefetch"] is False and on["speed"]["prefetch"] is True
    assert _sha(on_dir / "model.safetensors") == _sha(off_dir / "model.safetensors")
    assert _rows(on_dir / "metrics.jsonl") == _rows(off_dir / "metrics.jsonl")
    assert on["steps"] == off["steps"] == 6 and on["epochs"] == off["epochs"] and on["flops"] == off["flops"]


def test_a_resume_with_read_ahead_starts_after_the_last_step_trained(tmp_path, packed_data, monkeypatch):
    """Killed at step 8 with a checkpoint at step 5, while the reader had read beyond it: the
    checkpoint holds the position after 5 steps of 8 sequences, and the resumed run ends with the
    weights of an uninterrupted run without read-ahead."""
    import kdbudget.train.trainer as trainer

    sequences = len(PackedSplit.open(packed_data, "train"))
    reference = pretrain(RunSpec.from_dict(tiny_spec(tmp_path, packed_data, name="straight", prefetch=False)))
    spec = RunSpec.from_dict(tiny_spec(tmp_path, packed_data, prefetch=True, checkpoint_every_steps=5))
    real, calls, positions = trainer.lr_multiplier, [], []

    def crash_at_step_8(*args, **kwargs):  # called once at the top of every step
        calls.append(args)
        if len(calls) == 6:
            positions.append(load_checkpoint(spec.checkpoint_dir)["progress"]["position"])
        if len(calls) == 8:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "lr_multiplier", crash_at_step_8)
    with pytest.raises(RuntimeError, match="killed"):
        pretrain(spec)
    assert not _readers()
    assert positions == [{"epoch": 40 // sequences, "offset": 40 % sequences}]
    monkeypatch.setattr(trainer, "lr_multiplier", real)
    summary = pretrain(spec)
    assert summary["resumes"] == 1 and summary["steps"] == reference["steps"] == 12
    assert summary["epochs"] == pytest.approx(12 * 8 / sequences)
    assert _sha(tmp_path / "out" / "nokd2" / "model.safetensors") == _sha(
        tmp_path / "out" / "straight" / "model.safetensors")


def test_a_stopped_or_failing_run_leaves_no_reader_running(tmp_path, packed_data, monkeypatch):
    import kdbudget.train.trainer as trainer

    real, calls = trainer.lr_multiplier, []

    def signal_at_step_2(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGUSR1)
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "lr_multiplier", signal_at_step_2)
    with pytest.raises(trainer.Interrupted):
        pretrain(RunSpec.from_dict(tiny_spec(tmp_path, packed_data, name="stopped", prefetch=True)))
    assert len(calls) == 2 and not _readers()
    monkeypatch.setattr(trainer, "lr_multiplier", real)

    steps = []

    def broken_step(*args):
        steps.append(args)
        raise RuntimeError("out of luck")

    monkeypatch.setattr(trainer, "train_step", broken_step)
    with pytest.raises(RuntimeError, match="out of luck"):
        pretrain(RunSpec.from_dict(tiny_spec(tmp_path, packed_data, prefetch=True)))
    assert len(steps) == 1 and not _readers()


def test_the_setting_from_config_to_run():
    assert resolve_prefetch("auto", torch.device("cuda", 0)) is True
    assert resolve_prefetch("auto", torch.device("cpu")) is False
    assert resolve_prefetch(True, torch.device("cpu")) is True and resolve_prefetch(False, "cuda") is False
    with pytest.raises(ValueError, match="prefetch must be one of"):
        resolve_prefetch("sometimes", torch.device("cpu"))
    assert common_spec(validate_config({}, SCHEMA))["prefetch"] == "auto"
    assert common_spec(validate_config({"pretrain": {"prefetch": False}}, SCHEMA))["prefetch"] is False
    with pytest.raises(ConfigError, match=r"pretrain\.prefetch"):
        validate_config({"pretrain": {"prefetch": "sometimes"}}, SCHEMA)
    # A speed-only setting: a checkpoint written with it off resumes with it on.
    base = tiny_spec(Path("/tmp"), Path("/tmp"))
    assert run_identity(RunSpec.from_dict({**base, "prefetch": False})) == run_identity(
        RunSpec.from_dict({**base, "prefetch": True}))
