"""What a training run recorded, read without torch: the page's demo and `training publish` both choose between
a run's net and the shipped one by it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cifarlens_runtime.constants import CHECKPOINT_FILE, METRICS_FILE


def recorded_metrics(checkpoint: Path) -> dict[str, Any]:
    """The metrics.json its training run wrote beside the checkpoint ({} when there is none, it is unreadable or
    it holds no test accuracy)."""
    path = checkpoint.parent / METRICS_FILE if checkpoint.name == CHECKPOINT_FILE else checkpoint.with_suffix(".json")
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    acc = metrics.get("test_acc") if isinstance(metrics, dict) else None
    return metrics if isinstance(acc, (int, float)) and not isinstance(acc, bool) else {}
