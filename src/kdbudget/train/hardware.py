"""Peak dense bf16 throughput of the accelerators we may train on, for MFU.

MFU (model FLOPs utilisation) = the analytic FLOPs of the work done
(``kdbudget.model.flops``) per second, over the device's dense bf16 tensor-core
peak. One table serves the trainer's ``summary.json`` and
``benchmarks/gpu_throughput.py``, so both report the same ratio.

Peaks are the vendors' dense (not 2:4-sparse) bf16 numbers in FLOP/s. A
device not listed, or a CPU, has no peak: its MFU is None rather than a
guess. The NVL variants are left out on purpose: their published numbers
changed between datasheets.
"""

from __future__ import annotations

import torch

TERA = 1e12

# (substrings that must all occur in the lower-cased device name, peak FLOP/s); first match wins,
# so the more specific names come first.
PEAKS: tuple[tuple[tuple[str, ...], float | None], ...] = (
    (("nvl",), None),  # H100 NVL / H200 NVL: see the module docstring
    (("h100", "pcie"), 756 * TERA),
    (("h100",), 989 * TERA),  # "NVIDIA H100 80GB HBM3" is the SXM part
    (("h200",), 989 * TERA),  # also GH200, the same chip
    (("a100",), 312 * TERA),  # SXM and PCIe, 40 and 80 GB alike
    (("l40s",), 362 * TERA),
)


def peak_flops_for(name: str) -> float | None:
    """The dense bf16 peak (FLOP/s) of a device called ``name`` (``torch.cuda.get_device_name``), or None."""
    lowered = name.lower()
    for needles, peak in PEAKS:
        if all(needle in lowered for needle in needles):
            return peak
    return None


def peak_flops(device: torch.device | str) -> float | None:
    """The peak of ``device``; None on a CPU or an unlisted GPU."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return peak_flops_for(torch.cuda.get_device_name(device))


def mfu(flops: float, seconds: float, peak: float | None, devices: int = 1) -> float | None:
    """Model FLOPs utilisation of ``flops`` done in ``seconds`` on ``devices`` devices of ``peak`` each."""
    if peak is None or not seconds or seconds <= 0:
        return None
    return flops / seconds / (peak * devices)
