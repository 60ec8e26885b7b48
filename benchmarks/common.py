"""What every benchmark records and checks: the machine it ran on and how busy it was, and the results.

Numbers from a shared or different machine cannot be compared with committed ones, so each run
records, before and after: the CPU model and its vector instruction sets, the load average and the
busiest other processes. A run that starts on a busy machine refuses to overwrite the committed
results unless forced.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cifarlens_runtime.files import atomic_write
from training.device import cpu_bf16, cpu_flags, cpu_isa, cpu_model

RESULTS = Path(__file__).resolve().parent / "results"
# Above this 1-minute load average at the start, a run does not overwrite committed results unless forced.
QUIET_LOAD = 0.5
BUSIEST = 5
# /proc/cpuinfo flags of the vector instruction sets that decide how fast the CPU kernels are.
ISA_FLAGS = {"AVX2": "avx2", "AVX-512": "avx512f", "AVX512-VNNI": "avx512_vnni", "AMX": "amx_tile"}


def cpu_extensions() -> list[str]:
    """The vector instruction sets this CPU has, of AVX2, AVX-512, AVX512-VNNI and AMX."""
    return [name for name, flag in ISA_FLAGS.items() if flag in cpu_flags()]


def busiest_processes(n: int = BUSIEST, interval: float = 0.5) -> list[dict[str, Any]]:
    """The `n` processes other than this one (and its children) that used the most CPU over `interval`
    seconds: pid, name, % of one core, and the start of the command line."""
    import psutil

    own = {os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
    procs = []
    for p in psutil.process_iter(["pid", "name"]):
        if p.pid in own:
            continue
        try:
            p.cpu_percent(None)
            procs.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    time.sleep(interval)
    rows = []
    for p in procs:
        try:
            cpu = p.cpu_percent(None)
            if cpu > 0:
                cmd = " ".join(p.cmdline())[:120] or p.info["name"]
                rows.append({"pid": p.pid, "name": p.info["name"], "cpu_percent": round(cpu, 1), "cmdline": cmd})
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return sorted(rows, key=lambda r: -r["cpu_percent"])[:n]


def snapshot() -> dict[str, Any]:
    """How busy the machine is right now: load averages (1, 5, 15 min) and the busiest other processes."""
    return {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "busiest": busiest_processes(),
    }


def machine() -> dict[str, Any]:
    """CPU (model, instruction sets), cores, memory, library versions and how busy the machine is at the start."""
    import torch

    start = snapshot()
    info: dict[str, Any] = {
        "date": start["time"],
        "cpu": cpu_model(),
        "cpu_isa": cpu_isa(),
        "cpu_extensions": cpu_extensions(),
        "cpu_bf16": cpu_bf16(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_at_start": start["load_average"],
        "at_start": start,
    }
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return info


def finish(info: dict[str, Any]) -> dict[str, Any]:
    """Add the end-of-run snapshot (load, busiest processes, and the CPU again: a run may have moved) to `info`."""
    end = snapshot()
    info["at_end"] = {**end, "cpu": cpu_model(), "cpu_extensions": cpu_extensions()}
    info["load_average_at_end"] = end["load_average"]
    return info


def describe_machine(m: dict[str, Any]) -> str:
    """One line naming the CPU and how busy the run found the machine, for Markdown and the README."""
    # Results recorded before the extensions were have none to name.
    ext = (", ".join(m["cpu_extensions"]) or "no AVX2") + "; " if "cpu_extensions" in m else ""
    load = f"load average at start {m['load_average_at_start'][0]:.2f}"
    if m.get("load_average_at_end"):
        load += f", at end {m['load_average_at_end'][0]:.2f}"
    return (
        f"{m['cpu']} ({ext}torch kernels {m.get('cpu_isa', '?')}, {m.get('cpu_bf16') or 'no native bf16'}), "
        f"{m['cores']} cores, {m.get('memory_gib', '?')} GiB; {load}"
    )


def check_quiet(out_dir: Path, force: bool, info: dict[str, Any], limit: float = QUIET_LOAD) -> None:
    """Refuse (SystemExit) to overwrite the committed results from a busy machine, naming what keeps it busy."""
    load = info["load_average_at_start"][0]
    if load <= limit or force or out_dir.resolve() != RESULTS.resolve():
        return
    busy = "; ".join(f"{p['name']} (pid {p['pid']}, {p['cpu_percent']:.0f} % CPU)" for p in info["at_start"]["busiest"])
    raise SystemExit(
        f"error: load average {load:.2f} > {limit} at the start: the machine is busy ({busy or 'no single process'}), "
        f"so these numbers would not be comparable with {RESULTS}. Wait for a quiet machine, pass --out DIR to "
        "write elsewhere, or --force to overwrite anyway."
    )


def median_of(values: Sequence[float]) -> float:
    """The median of per-round values (NaN when none), rounded for the tables."""
    vals = [v for v in values if v == v]
    return round(float(statistics.median(vals)), 3) if vals else float("nan")


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _head(m: dict[str, Any]) -> str:
    """The line every result file starts with: the machine, its load before and after, and the date."""
    return (
        f"Machine: {describe_machine(m)}; torch {m['torch']}"
        f"{', onnxruntime ' + m['onnxruntime'] if m.get('onnxruntime') else ''}; {m['date']}.\n\n"
    )


def write_results(name: str, payload: dict[str, Any], markdown: str, out_dir: Path = RESULTS) -> tuple[Path, Path]:
    """<out_dir>/<name>.json and .md (the Markdown starts with the machine), each written atomically."""
    js = atomic_write(out_dir / f"{name}.json", json.dumps(payload, indent=1))
    md = atomic_write(out_dir / f"{name}.md", _head(payload["machine"]) + markdown + "\n")
    return js, md
