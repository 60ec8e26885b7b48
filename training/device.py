"""Where training runs and in which precision: device detection and the CPU's bf16 capability."""

from __future__ import annotations

import contextlib
import functools
import platform
from pathlib import Path

import torch

# /proc/cpuinfo flags of the instructions that compute bf16 natively, best first.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _cpuinfo_field(key: str) -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


@functools.cache
def cpu_model() -> str:
    """The CPU's marketing name (from /proc/cpuinfo on Linux)."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (/proc/cpuinfo on Linux; empty elsewhere)."""
    return frozenset(_cpuinfo_field("flags").split())


def cpu_bf16() -> str | None:
    """The best native bf16 instruction set of this CPU (`amx_bf16`, `avx512_bf16`), or None."""
    return next((f for f in BF16_CPU_FLAGS if f in cpu_flags()), None)


def cpu_isa() -> str:
    """The widest vector instruction set torch's CPU kernels use here (e.g. AVX512, AVX2)."""
    return torch.backends.cpu.get_cpu_capability()


def uses_bf16(device: torch.device, amp: bool = True) -> bool:
    """bf16 autocast pays on CUDA and on CPUs with native bf16 (AMX or AVX512_BF16); elsewhere it
    is emulated and slower than fp32, so those stay in fp32."""
    if not amp:
        return False
    return device.type == "cuda" or (device.type == "cpu" and cpu_bf16() is not None)


def precision(device: torch.device, amp: bool = True) -> str:
    """The precision a run uses, as recorded in its metrics: `bf16-autocast` or `fp32`."""
    return "bf16-autocast" if uses_bf16(device, amp) else "fp32"


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast where it pays (see `uses_bf16`); weights and optimiser state stay fp32."""
    if uses_bf16(device, enabled):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe_device(device: torch.device, threads: int = 0) -> str:
    """A human description of where a run happened, stored with its metrics; `threads` (0: torch's
    current count) lets a dry run show the count a run would set."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    bf16 = cpu_bf16() or "no native bf16"
    return f"cpu ({cpu_model()}, {cpu_isa()}, {bf16}, {threads or torch.get_num_threads()} threads)"
