"""TensorBoard event files beside metrics.jsonl (pretrain.tensorboard).

The files are read back with a parser written here from the format's specification (TFRecord framing
with masked CRC32C; the Event, Summary and Summary.Value protobuf messages decoded from the wire
format by hand), and with TensorBoard's own reader.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path

import pytest
from conftest import ROOT, make_teacher, run_snakemake, tiny_spec
from safetensors.torch import load_file

from kdbudget.config import ConfigError, validate_config
from kdbudget.plan import common_spec
from kdbudget.train.spec import RunSpec
from kdbudget.train.trainer import pretrain, run_identity

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
EVENTS = "events.out.tfevents.kdbudget"
# metrics.jsonl's keys and the tags they must have, as README and config/README.md name them.
TAGS = {"loss": "loss/total", "mlm": "loss/mlm", "kd_pred": "loss/kd_pred", "lr": "train/lr",
        "tokens_per_second": "train/tokens_per_second", "epochs": "train/epochs", "budget_fraction": "budget/fraction",
        "seconds": "budget/seconds", "tokens": "budget/tokens", "flops": "budget/flops"}


def need_tensorboard() -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("tensorboard is in the test extra: CI must have it")
        pytest.skip("the tensorboard package is not installed (pip install -e '.[test]')")


# --- an event file parser from the format's specification ---------------------------------------------


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(data: bytes) -> list[bytes]:
    """TFRecords: uint64 length, uint32 masked CRC of the length, the data, uint32 masked CRC of the data."""
    out, at = [], 0
    while at < len(data):
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[at + 8:at + 12])[0] == masked(crc32c(header))
        payload = data[at + 12:at + 12 + length]
        assert len(payload) == length and struct.unpack("<I", data[at + 12 + length:at + 16 + length])[0] == masked(
            crc32c(payload))
        out.append(payload)
        at += 16 + length
    return out


def fields(message: bytes) -> list[tuple[int, int, object]]:
    """(field number, wire type, value) of a protobuf message: varints as ints, fixed64/fixed32 as bytes."""
    out, at = [], 0

    def varint() -> int:
        nonlocal at
        value, shift = 0, 0
        while True:
            byte = message[at]
            at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while at < len(message):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            value = varint()
        elif wire == 1:
            value, at = message[at:at + 8], at + 8
        elif wire == 2:
            length = varint()
            value, at = message[at:at + length], at + length
        elif wire == 5:
            value, at = message[at:at + 4], at + 4
        else:
            raise AssertionError(f"wire type {wire}")
        out.append((number, wire, value))
    return out


def read_events(path: Path) -> list[dict]:
    """Each Event: wall_time (1, double), step (2, int64), file_version (3), summary (5) -> value (1) ->
    tag (1), simple_value (2, float)."""
    events = []
    for record in records(path.read_bytes()):
        event = {"wall_time": None, "step": 0, "file_version": None, "values": {}}
        for number, _, value in fields(record):
            if number == 1:
                (event["wall_time"],) = struct.unpack("<d", value)
            elif number == 2:
                event["step"] = value
            elif number == 3:
                event["file_version"] = value.decode()
            elif number == 5:
                for _, _, entry in (f for f in fields(value) if f[0] == 1):
                    parts = {n: v for n, _, v in fields(entry)}
                    event["values"][parts[1].decode()] = struct.unpack("<f", parts[2])[0]
        events.append(event)
    return events


def f32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def expected(row: dict) -> dict[str, float]:
    return {TAGS[k]: f32(v) for k, v in row.items() if k != "step" and v is not None}


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_parser_follows_the_specification():
    assert crc32c(b"123456789") == 0xE3069283  # CRC-32C's published check value
    assert crc32c(b"") == 0
    # A varint over two bytes (300 = 0xAC 0x02), a length-delimited field and a fixed32 float.
    assert fields(b"\x10\xac\x02\x1a\x03abc\x15\x00\x00\x80\x3f") == [
        (2, 0, 300), (3, 2, b"abc"), (2, 5, b"\x00\x00\x80\x3f")]


# --- the switch ----------------------------------------------------------------------------------------


def test_the_switch_is_validated_defaults_off_and_reaches_every_run_spec():
    config = validate_config({}, SCHEMA)
    assert config["pretrain"]["tensorboard"] is False and common_spec(config)["tensorboard"] is False
    assert RunSpec.from_dict(tiny_spec(Path("x"), Path("d"))).tensorboard is False
    # students and pipeline-pretrained teachers both take their trainer settings from common_spec
    assert common_spec(validate_config({"pretrain": {"tensorboard": True}}, SCHEMA))["tensorboard"] is True
    with pytest.raises(ConfigError, match=r"pretrain\.tensorboard"):
        validate_config({"pretrain": {"tensorboard": "yes"}}, SCHEMA)
    # Turning it on or off does not stop a checkpoint from resuming.
    spec = RunSpec.from_dict(tiny_spec(Path("x"), Path("d")))
    assert run_identity(spec) == run_identity(RunSpec.from_dict(tiny_spec(Path("x"), Path("d"), tensorboard=True)))


def test_a_missing_package_fails_before_training_naming_the_config_key(tmp_path, packed_data, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed: importing it raises
    spec = tiny_spec(tmp_path, packed_data, tensorboard=True)
    with pytest.raises(RuntimeError, match=r"config key 'pretrain\.tensorboard' is true but the tensorboard package"):
        pretrain(RunSpec.from_dict(spec))
    assert not Path(spec["checkpoint_dir"]).exists() and not Path(spec["out_dir"]).exists()


# --- a tiny pretraining with the switch on -------------------------------------------------------------


def test_a_tiny_kd_pretraining_writes_its_metrics_as_events(tmp_path, packed_data):
    need_tensorboard()
    teacher = make_teacher(tmp_path, packed_data, vocab=json.loads((packed_data / "meta.json").read_text())[
        "vocab_size"], layers=2)
    common = {"strategy": "vanillakd", "name": "vanillakd2", "teacher_dir": str(teacher)}
    on = pretrain(RunSpec.from_dict(tiny_spec(tmp_path / "on", packed_data, tensorboard=True, **common)))
    off = pretrain(RunSpec.from_dict(tiny_spec(tmp_path / "off", packed_data, **common)))
    out_on, out_off = tmp_path / "on" / "out" / "vanillakd2", tmp_path / "off" / "out" / "vanillakd2"

    # Switched off, nothing is added; switched on, only the event file, and the training is the same.
    assert sorted(p.name for p in out_on.iterdir()) == sorted([*(p.name for p in out_off.iterdir()), EVENTS])
    a, b = load_file(out_on / "model.safetensors"), load_file(out_off / "model.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)

    rows = rows_of(out_on / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 13)) and {"mlm", "kd_pred"} <= set(rows[0])
    events = read_events(out_on / EVENTS)
    assert events[0]["file_version"] == "brain.Event:2" and not events[0]["values"]
    assert [e["step"] for e in events[1:-1]] == [r["step"] for r in rows]
    for event, row in zip(events[1:-1], rows, strict=True):
        assert event["values"] == expected(row)
    validation = on["validation"]
    assert events[-1]["step"] == 12 and events[-1]["values"] == {
        "eval/mlm_loss": f32(validation["mlm_loss"]), "eval/mlm_accuracy": f32(validation["mlm_accuracy"]),
        "eval/perplexity": f32(validation["perplexity"])}
    walls = [e["wall_time"] for e in events]
    assert walls == sorted(walls) and off["steps"] == on["steps"]

    # TensorBoard's own reader sees the same curves.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(out_on))
    accumulator.Reload()
    assert set(accumulator.Tags()["scalars"]) == {TAGS[k] for k in rows[0] if k != "step"} | {
        "eval/mlm_loss", "eval/mlm_accuracy", "eval/perplexity"}
    assert [(s.step, s.value) for s in accumulator.Scalars("loss/kd_pred")] == [
        (r["step"], f32(r["kd_pred"])) for r in rows]


def test_a_resumed_run_neither_duplicates_nor_loses_a_step(tmp_path, packed_data, monkeypatch):
    need_tensorboard()
    import kdbudget.train.trainer as trainer

    spec = tiny_spec(tmp_path, packed_data, tensorboard=True, checkpoint_every_steps=5)
    checkpoints, out = Path(spec["checkpoint_dir"]), Path(spec["out_dir"])
    real, calls = trainer.lr_multiplier, []

    def crash_at_step_8(*args, **kwargs):  # called once at the top of every step
        calls.append(args)
        if len(calls) == 8:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "lr_multiplier", crash_at_step_8)
    with pytest.raises(RuntimeError, match="killed"):
        pretrain(RunSpec.from_dict(spec))
    monkeypatch.setattr(trainer, "lr_multiplier", real)
    first = read_events(checkpoints / EVENTS)
    assert [e["step"] for e in first[1:]] == [1, 2, 3, 4, 5, 6, 7]  # the checkpoint is at step 5
    # A kill in the middle of a write leaves a cut-off record at the end.
    with open(checkpoints / EVENTS, "ab") as handle:
        handle.write(struct.pack("<Q", 100) + b"\x00\x01")

    summary = pretrain(RunSpec.from_dict(spec))
    assert summary["resumes"] == 1 and summary["steps"] == 12
    rows = rows_of(out / "metrics.jsonl")
    events = read_events(out / EVENTS)
    assert [e["step"] for e in events[1:]] == [*range(1, 13), 12]  # every step once, then the validation
    for event, row in zip(events[1:-1], rows, strict=True):
        assert event["values"] == expected(row)
    # The kept steps keep the times they were first logged at; 6 and 7 were logged again.
    assert [e["wall_time"] for e in events[1:6]] == [e["wall_time"] for e in first[1:6]]
    assert events[6]["wall_time"] > first[7]["wall_time"]
    assert not checkpoints.exists()


@pytest.mark.slow  # the data stage, a pipeline-pretrained teacher and a student through Snakemake
def test_the_switch_reaches_teachers_and_students_through_the_workflow(tmp_path):
    need_tensorboard()
    from test_pretrain_pipeline import pretrain_config

    config = pretrain_config()
    config["pretrain"]["tensorboard"] = True
    work = tmp_path / "work"
    run_snakemake(work, config, "results/teachers/t4", "results/pretrain/nokd2")
    for model_dir in (work / "results/teachers/t4", work / "results/pretrain/nokd2"):
        rows = rows_of(model_dir / "metrics.jsonl")
        events = read_events(model_dir / EVENTS)
        assert [e["step"] for e in events[1:]] == [*(r["step"] for r in rows), rows[-1]["step"]]
        assert events[1]["values"] == expected(rows[0]) and "eval/mlm_loss" in events[-1]["values"]
