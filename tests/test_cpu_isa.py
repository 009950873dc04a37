"""The CPU instruction-set pin (kdbudget.cpu_isa): which variables, where, and that PyTorch obeys them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT

from kdbudget.cpu_isa import AVX2_PINS, cpu_flags, isa_environment, pin_cpu_isa

PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def test_avx2_pins_all_three_libraries_on_an_x86_64_cpu_with_avx2():
    assert isa_environment("avx2", machine="x86_64", flags={"sse4_2", "avx", "avx2", "avx512f"}) == PINNED
    assert isa_environment("avx2", machine="AMD64", flags={"avx2"}) == PINNED


@pytest.mark.parametrize(("machine", "flags"),
                         [("aarch64", {"asimd"}), ("arm64", set()), ("x86_64", {"sse4_2", "avx"})])
def test_no_pin_where_there_is_nothing_to_pin_to(machine, flags):
    assert isa_environment("avx2", machine=machine, flags=flags) == {}


def test_native_pins_nothing_and_a_wrong_value_is_named():
    assert isa_environment("native", machine="x86_64", flags={"avx2"}) == {}
    with pytest.raises(ValueError, match="cpu_isa must be one of avx2, native, got 'avx512'"):
        isa_environment("avx512")


def test_native_takes_back_the_pins_but_not_a_users_own_setting(monkeypatch):
    monkeypatch.setattr("kdbudget.cpu_isa.isa_environment", lambda isa: dict(PINNED) if isa == "avx2" else {})
    environ = {"PATH": "/bin"}
    assert pin_cpu_isa("avx2", environ) == PINNED
    assert environ == {"PATH": "/bin", **PINNED}
    environ["MKL_CBWR"] = "COMPATIBLE"  # the user's own choice
    pin_cpu_isa("native", environ)
    assert environ == {"PATH": "/bin", "MKL_CBWR": "COMPATIBLE"}


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse avx2 fma\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == {"fpu", "sse", "avx2", "fma"}
    assert cpu_flags(tmp_path / "missing") is None


def _capability(env: dict[str, str]) -> str:
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          cwd=ROOT, check=True)
    return done.stdout.strip()


@pytest.mark.skipif(not isa_environment("avx2"), reason="not an x86-64 CPU with AVX2: nothing is pinned")
def test_pytorch_in_a_job_started_after_the_pin_uses_avx2_kernels():
    clean = {k: v for k, v in os.environ.items() if k not in AVX2_PINS}
    pinned = dict(clean)
    pin_cpu_isa("avx2", pinned)
    assert _capability(pinned) == "AVX2"
    native = _capability(clean)
    assert native.startswith("AVX")  # AVX2, or AVX512 on a CPU that has it: the machine's own
