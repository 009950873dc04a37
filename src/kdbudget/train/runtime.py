"""Facts about where a run executes, recorded in its summary: the device
(a wall-clock budget is only comparable on the same one), package versions
and the git commit of the pipeline."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import torch

from kdbudget.cpu_isa import AVX2_PINS


class NoGpuError(RuntimeError):
    """A job that asked for GPUs sees none: training on the CPU would silently take days."""


def pick_device(requested: str = "auto", gpus: int = 0) -> torch.device:
    """The device to train on. ``gpus`` is what the job asked the cluster for: a job that
    asked for GPUs and sees none fails at once instead of training on the CPU under ``auto``."""
    if requested == "auto":
        requested = "cuda" if gpus > 0 or torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        asked = f"this job asked for {gpus} GPU(s)" if gpus > 0 else f"device {requested!r} was requested"
        raise NoGpuError(
            f"{asked} but torch sees none (torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}, "
            f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}, host "
            f"{platform.node()}): a node without a working GPU or a CPU-only torch. Set the config's device "
            "to 'cpu' (pretrain.device / glue.device) to train on the CPU on purpose."
        )
    return device


def device_name(device: torch.device) -> str:
    """A human-readable, comparable name of the hardware that trains. A CPU's names its kernels' instruction
    set too (kdbudget.cpu_isa): the same CPU is slower under AVX2 kernels than under AVX-512 ones, so a
    wall-clock budget measured under one is not comparable with a run under the other."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {torch.backends.cpu.get_cpu_capability()} kernels ({torch.get_num_threads()} threads)"


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for ``precision`` (auto: bf16 on a GPU that has it, fp16 on
    an older GPU, fp32 on a CPU); None means plain fp32."""
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> Callable[[], AbstractContextManager]:
    """A factory of fresh autocast contexts (``with autocast():``), or of null contexts for fp32.

    A factory, not one ``torch.autocast`` object: each ``with`` needs its own context, and
    calling an autocast instance is its decorator form, not a context."""
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)


def versions() -> dict[str, str]:
    import numpy
    import transformers

    import kdbudget

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "numpy": numpy.__version__, "kdbudget": kdbudget.__version__}


def cpu_kernels() -> dict[str, str | None]:
    """The instruction set PyTorch's CPU kernels use, and the pins that set it (kdbudget.cpu_isa): two runs
    on CPUs give the same numbers only with the same kernels."""
    return {"aten": torch.backends.cpu.get_cpu_capability(),
            **{key.lower(): os.environ.get(key) for key in AVX2_PINS}}


def git_commit(start: str | Path | None = None) -> str | None:
    """The commit of the pipeline's checkout (None outside a git work tree)."""
    where = Path(start or Path(__file__).resolve().parent)
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                           capture_output=True, text=True, timeout=10).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
