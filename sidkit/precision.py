"""Numeric precision on CPU: bf16 where the CPU computes it natively, fp32 everywhere else.

Our machines differ. With AVX512-BF16 or AMX a bf16 matmul runs ~4x an fp32 one (a bf16 generator
step measured 2x faster); with AVX2 or plain AVX512 torch emulates bf16 and it is 7-15x *slower*
(BENCHMARKS.md). So ``precision: auto`` (the default of every setting that has one) asks the CPU
at run time -- never a hard-coded machine -- and ``fp32`` / ``bf16`` force a choice. bf16 means
autocast: weights, optimiser state and losses stay fp32, matmuls run in bf16.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

Precision = Literal["auto", "fp32", "bf16"]


def native_bf16() -> bool:
    """True when this CPU has bf16 arithmetic in hardware (AVX512-BF16 or AMX tiles)."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def cpu_isa() -> str:
    """The vector ISA as it matters for precision: 'AMX', 'AVX512-BF16', 'AVX512', 'AVX2' or torch's name."""
    if torch.cpu._is_amx_tile_supported():
        return "AMX"
    if torch.cpu._is_avx512_bf16_supported():
        return "AVX512-BF16"
    return torch.backends.cpu.get_cpu_capability()


def resolve(precision: Precision) -> Literal["fp32", "bf16"]:
    """``auto`` -> bf16 on native-bf16 CPUs, else fp32; an explicit choice is kept."""
    if precision == "auto":
        return "bf16" if native_bf16() else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    return precision


def autocast(precision: Precision) -> contextlib.AbstractContextManager:
    """The autocast context for ``precision`` (resolved): bf16 autocast, or nothing for fp32. It autocasts on
    the device the trainer runs on (sidkit.devices: CUDA when the current default device is; else the CPU);
    ``auto`` on CUDA is bf16 where the GPU supports it."""
    if torch.get_default_device().type == "cuda":
        enabled = precision == "bf16" or (precision == "auto" and torch.cuda.is_bf16_supported())
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=enabled)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=resolve(precision) == "bf16")
