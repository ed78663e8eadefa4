"""Which floating-point precision a training run uses: "fp32", "bf16", or "auto" (bf16 where it is fast).

bfloat16 autocast speeds up the backbone's matmuls only on hardware with native bf16 arithmetic: CUDA GPUs of
compute capability 8.0 or newer, and x86 CPUs with the avx512_bf16 or amx_bf16 instructions. Elsewhere the
CPU emulates it and runs slower than float32, so "auto" picks float32 there.
"""

from __future__ import annotations

from pathlib import Path

import torch

PRECISIONS = ("fp32", "bf16", "auto")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True when /proc/cpuinfo (or the given text) lists a native bf16 instruction set."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.exists() else ""
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" -> "bf16" or "fp32" for this device; "fp32"/"bf16" are returned as given."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: expected one of {PRECISIONS}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
