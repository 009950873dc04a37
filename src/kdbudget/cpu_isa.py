"""The CPU instruction set PyTorch's CPU kernels may use, pinned so CPU results do not depend on the CPU model.

On x86-64, PyTorch picks its vectorised kernels (ATen), its matrix products
(MKL) and its oneDNN primitives by the instruction sets the CPU has: AVX2,
AVX-512, AMX. Each choice sums in another order, so the same seed gives other
floats on another CPU model, and over a thousand training steps other
weights and other GLUE scores. Measured here: 40k tokens of the demo's No-KD
run give other weights with any one of the three pins below, and the demo's
Table 2 differed in every row between an AVX-512/AMX machine and the machine
it was published from.

``avx2`` (the default) caps all three at AVX2, which every x86-64 CPU of the
last decade has: a short run pinned on an AVX-512/AMX Intel CPU gave the
weights an emulated AVX2-only Intel CPU (``qemu-x86_64 -cpu Haswell-v4``) gives
unpinned, bit for bit (conditional numerical reproducibility, in MKL's terms).
An emulated AMD CPU (``-cpu EPYC-Rome``) gave other weights, pinned or not,
and also with ``MKL_CBWR=COMPATIBLE``: MKL takes other paths on AMD, so the pin
makes Intel CPUs agree, not every x86-64 CPU. It costs time where the CPU has
more: the demo took 16 min 50 s instead of 14 min 12 s on an AVX-512/AMX Xeon.
``native`` lets each library use the fastest the CPU has.

The pins are environment variables that the libraries read when they first
run, so they are set in the workflow's process and reach every job it starts. Other architectures (aarch64) and
CPUs without AVX2 get no pin: there is nothing to pin them to. A GPU's own
arithmetic is not affected.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Collection, MutableMapping
from pathlib import Path

ISAS = ("avx2", "native")
# Each library's variable and its value for AVX2.
AVX2_PINS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
X86_64 = ("x86_64", "amd64")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str] | None:
    """The CPU's feature flags (Linux), or None where they cannot be read."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return None


def isa_environment(isa: str, *, machine: str | None = None,
                    flags: Collection[str] | None = None) -> dict[str, str]:
    """The environment variables that pin the CPU kernels to ``isa`` on this machine (empty: no pin)."""
    if isa not in ISAS:
        raise ValueError(f"cpu_isa must be one of {', '.join(ISAS)}, got {isa!r}")
    if isa == "native":
        return {}
    if (machine or platform.machine()).lower() not in X86_64:
        return {}
    flags = cpu_flags() if flags is None else flags
    if flags is not None and "avx2" not in flags:
        return {}
    return dict(AVX2_PINS)


def pin_cpu_isa(isa: str, environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set the pins for ``isa`` in ``environ`` (the process's environment) and return them. ``native`` removes
    pins that an earlier ``avx2`` set, so the config, not a stale variable, decides."""
    environ = os.environ if environ is None else environ
    pins = isa_environment(isa)
    if isa == "native":
        for key, value in AVX2_PINS.items():
            if environ.get(key) == value:
                del environ[key]
    environ.update(pins)
    return pins
