"""Where training runs and in which precision: device detection and the CPU's bf16 capability."""

from __future__ import annotations

import contextlib
import functools
import platform
import statistics
import time
from pathlib import Path

import torch

# /proc/cpuinfo flags of the instructions that compute bf16 natively, best first.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
# AVX512_BF16 without AMX is no promise of speed: on an Intel Xeon of that kind bf16 autocast trained SENet at
# 0.72x the images/s of fp32 (benchmarks/results/train_cpu_avx512_bf16.md). There a probe decides: bf16 only
# when it runs a conv layer's forward and backward in under this fraction of fp32's time.
BF16_PROBE_MAX_RATIO = 0.9


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


def _conv_step_seconds(bf16: bool, repeats: int = 5) -> float:
    """Median time of a 3x3 conv's forward and backward at CIFAR scale (batch 64, 64 channels, 32x32,
    channels_last), with or without bf16 autocast: the op that dominates the nets' training steps."""
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(64, 64, 32, 32).contiguous(memory_format=torch.channels_last).requires_grad_()
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    times = []
    for _ in range(repeats + 1):  # the first run warms the kernels up and is not counted
        start = time.perf_counter()
        with ctx:
            out = conv(x)
        out.float().sum().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


@functools.cache
def cpu_bf16_pays() -> bool:
    """Whether bf16 autocast beats fp32 on this CPU: yes with AMX, no without native bf16, and with
    AVX512_BF16 alone as a probe of a second or so measures it, once per process (RNG untouched)."""
    native = cpu_bf16()
    if native != "avx512_bf16":
        return native is not None
    # first asked from inside an evaluation (no_grad, inference_mode) as often as from training: the probe needs grad
    with torch.random.fork_rng(devices=[]), torch.inference_mode(False), torch.enable_grad():
        fp32, bf16 = _conv_step_seconds(False), _conv_step_seconds(True)
    return bf16 < BF16_PROBE_MAX_RATIO * fp32


def uses_bf16(device: torch.device, amp: bool = True) -> bool:
    """bf16 autocast pays on CUDA and on CPUs whose native bf16 is faster than fp32 (`cpu_bf16_pays`);
    elsewhere it is emulated or slower, so those stay in fp32."""
    if not amp:
        return False
    return device.type == "cuda" or (device.type == "cpu" and cpu_bf16_pays())


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
