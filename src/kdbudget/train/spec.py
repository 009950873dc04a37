"""Everything one pretraining run needs, as a frozen, JSON-serialisable spec.

The workflow builds a spec per model from the validated config; the CLI
(``python -m kdbudget.train SPEC.json``) reads the same spec from a file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Shape:
    """A BERT architecture (the vocabulary comes from the packed data)."""

    layers: int
    hidden: int
    heads: int
    intermediate: int
    max_positions: int = 512
    dropout: float = 0.1
    init_std: float = 0.02  # BERT's; narrow models learn faster with a larger one
    layer_norm: str = "post"  # "post" (BERT) or "pre" (the released No-KD code); plan.py resolves the config's "auto"
    # MobileBERT's inverted-bottleneck student instead of BERT: bottleneck, embedding_size, ffn_stack, normalization
    # (kdbudget.model.mobilebert.mobilebert_config); None: BERT
    mobilebert: dict[str, Any] | None = None


@dataclass(frozen=True)
class Optim:
    lr: float
    warmup: float = 0.06
    batch_size: int = 1024  # sequences per optimizer step
    micro_batch_size: int = 256  # sequences per forward/backward
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    weight_decay: float = 0.01

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        if self.batch_size % self.micro_batch_size:
            raise ValueError(f"batch_size {self.batch_size} is not a multiple of micro_batch_size "
                             f"{self.micro_batch_size}")


@dataclass(frozen=True)
class BudgetSpec:
    """``mode``: reference | seconds | flops | tokens.

    reference: the run named by ``reference`` (a No-KD run) trains ``epochs``
    passes; the others get what it spent, in ``measure`` units, read from
    ``reference_summary``. Otherwise ``limit`` is in the mode's unit.
    """

    mode: str
    limit: float | None = None
    measure: str = "seconds"
    epochs: float = 1.0
    is_reference: bool = False
    reference_summary: str | None = None
    allow_device_mismatch: bool = False


@dataclass(frozen=True)
class RunSpec:
    name: str
    strategy: str
    student: Shape
    optim: Optim
    budget: BudgetSpec
    data_dir: str
    out_dir: str
    checkpoint_dir: str
    teacher_dir: str | None = None
    strategy_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 42
    precision: str = "auto"
    device: str = "auto"
    threads: int | None = None
    checkpoint_every_seconds: float = 1800.0
    checkpoint_every_steps: int = 0
    stop_before_time_limit_seconds: float = 600.0
    log_every_steps: int = 10
    eval_sequences: int = 2048
    compile: bool | str = "auto"  # torch.compile of the encoder layers: auto (on CUDA), True, False
    compile_backend: str = "inductor"  # torch.compile's backend ("aot_eager" compiles fast, for tests)
    teacher_dtype: str = "auto"  # auto (bf16 on CUDA under bf16 autocast), fp32, bf16
    prefetch: bool | str = "auto"  # read the next step's batches ahead: auto (on CUDA), True, False
    gpus: int = 0  # GPUs the job asked for: with any, device "auto" refuses to fall back to the CPU
    divergence_spike_factor: float = 3.0  # stop when the loss exceeds this x its recent median (0: never)
    divergence_window: int = 100  # steps in that median
    tensorboard: bool = False  # also write metrics.jsonl's rows as a TensorBoard event file (train.tracking)
    # Facts about the run for its summary.json, not its training (group, base name, seed, budget scale, the
    # teacher's own cost: kdbudget.plan.student_spec); a changed record does not invalidate a checkpoint.
    record: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        data = dict(data)
        data["student"] = Shape(**data["student"])
        data["optim"] = Optim(**data["optim"])
        data["budget"] = BudgetSpec(**data["budget"])
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown run spec keys: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls, path: str | Path) -> RunSpec:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
