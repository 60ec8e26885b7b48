"""`python -m training publish`: a run's nets into weights/, only where they beat what is shipped.

The issue's rule: ship whichever weights are better, the GPU's or a CPU run's, by each one's own recorded test
accuracy (metrics.json). A shipped net is half-precision weights of the inference net (`publishable`) beside
the run's full record: metrics, config, log, history and curves, so the README can say what made it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cifarlens_runtime.constants import CHECKPOINT_FILE, METRICS_FILE
from cifarlens_runtime.runs import recorded_metrics
from training.checkpoint import load_checkpoint, publishable, save_checkpoint
from training.report import write_report

# What travels with a shipped checkpoint: its numbers, its recipe, and how it got there.
RECORD = (METRICS_FILE, "config.json", "train.log", "history.csv", "history.json", "curves.png", "confusion.png")


def _test_acc(checkpoint: Path) -> float | None:
    return recorded_metrics(checkpoint).get("test_acc")


def verdict(src: Path, dst: Path, force: bool) -> str | None:
    """None when `src` should replace `dst`; otherwise why not, in words."""
    if not (src / CHECKPOINT_FILE).is_file():
        return f"no {src / CHECKPOINT_FILE}: train it first"
    ours, shipped = _test_acc(src / CHECKPOINT_FILE), _test_acc(dst / CHECKPOINT_FILE)
    if ours is None:
        return f"{src} has no recorded test accuracy (an unfinished run?): finish it (--resume) first"
    if force or shipped is None or ours > shipped:
        return None
    return f"kept {dst}: its test accuracy {shipped:.4f} is not beaten by {src}'s {ours:.4f} (--force ships anyway)"


def publish(
    runs: Path, out: Path, models: Sequence[str], force: bool = False, log: Callable[[str], Any] = print
) -> list[str]:
    """Ship each net of `runs` that beats `out`'s; returns the nets shipped. The comparison report of `out`
    is rebuilt from the nets it then holds (a run of one net must not replace the three's report with its own)."""
    shipped = []
    for model in models:
        src, dst = runs / model, out / model
        why = verdict(src, dst, force)
        if why is not None:
            log(f"{model}: {why}")
            continue
        ckpt = publishable(load_checkpoint(src / CHECKPOINT_FILE))
        save_checkpoint(ckpt, dst / CHECKPOINT_FILE)
        for name in RECORD:
            if (src / name).is_file():
                shutil.copy2(src / name, dst / name)
        shipped.append(model)
        log(f"{model}: {dst / CHECKPOINT_FILE} ({(dst / CHECKPOINT_FILE).stat().st_size / 2**20:.1f} MiB), test acc "
            f"{ckpt['metrics'].get('test_acc')} from {src}")  # fmt: skip
    if shipped:  # the comparison is of what is shipped now, whichever runs each net came from
        log(f"rewrote {write_report(out)}")
    return shipped
