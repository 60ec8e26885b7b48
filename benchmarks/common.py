"""What every benchmark records: the machine it ran on, and JSON plus Markdown results."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from training.device import cpu_bf16, cpu_isa, cpu_model

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """CPU, cores, memory, library versions and load at the start: enough to judge the numbers."""
    import torch

    info: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cpu_isa": cpu_isa(),
        "cpu_bf16": cpu_bf16(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_at_start": os.getloadavg(),
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


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _head(m: dict[str, Any]) -> str:
    """The line every result file starts with: the machine, its load before and after, and the date."""
    return (
        f"Machine: {m['cpu']} ({m.get('cpu_isa', '?')}, {m.get('cpu_bf16') or 'no native bf16'}), {m['cores']} cores, "
        f"{m.get('memory_gib', '?')} GiB; torch {m['torch']}"
        f"{', onnxruntime ' + m['onnxruntime'] if m.get('onnxruntime') else ''}; "
        f"load average at start {m['load_average_at_start'][0]:.2f}"
        f"{', at end ' + format(m['load_average_at_end'][0], '.2f') if m.get('load_average_at_end') else ''}; "
        f"{m['date']}.\n\n"
    )


def write_results(name: str, payload: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """benchmarks/results/<name>.json and .md (the Markdown starts with the machine)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    js, md = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    js.write_text(json.dumps(payload, indent=1))
    head = _head(payload["machine"])
    md.write_text(head + markdown + "\n")
    return js, md
