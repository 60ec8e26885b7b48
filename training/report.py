"""runs/report.md: the three nets compared, from each run's metrics.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cifarlens_runtime.constants import METRICS_FILE
from training import plots
from training.models import list_models


def _acc(value: float | None) -> str:
    """An accuracy to 4 places; — where the run did not measure it (no validation)."""
    return "—" if value is None else f"{value:.4f}"


def collect(runs_dir: Path, models: list[str] | None = None) -> list[dict[str, Any]]:
    """metrics.json of every net that has one, in registry order."""
    rows = []
    for name in models or list_models():
        path = runs_dir / name / METRICS_FILE
        if path.is_file():
            rows.append(json.loads(path.read_text()))
    return rows


def write_report(runs_dir: Path, models: list[str] | None = None) -> Path:
    """Write report.md and report.png under `runs_dir`; fails if no net has metrics yet."""
    rows = collect(runs_dir, models)
    if not rows:
        raise FileNotFoundError(f"no {runs_dir}/<model>/metrics.json found: train first")
    plots.plot_report_bars(rows, runs_dir / "report.png")
    lines = [
        "# CIFAR-10: the three nets compared",
        "",
        "Test accuracy is measured once, on the best checkpoint by validation accuracy (the last epoch's weights "
        "where nothing was held out: val acc —)"
        + (" with flip test-time augmentation." if all(r.get("tta") for r in rows) else "."),
        "",
        "| model | params | MFLOPs/image | val acc | test acc | epochs | training time | images/s | device |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['params'] / 1e6:.2f}M | {r['mflops']:.1f} | {_acc(r['val_acc'])} | {r['test_acc']:.4f} "
            f"| {r['epochs']} | {r['train_seconds'] / 60:.1f} min | {r['images_per_second']:.0f} | {r['device']} |"
        )
    lines += ["", "![accuracy and training time](report.png)", ""]
    for r in rows:
        m = r["model"]
        lines.append(f"- **{m}**: [curves]({m}/curves.png), [confusion matrix]({m}/confusion.png), "
                     f"[history]({m}/history.csv), [metrics]({m}/metrics.json)")  # fmt: skip
    path = runs_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


# Per-net fields of a run summary (train_all.json, benchmarks/results/recipe_cpu.json and train_gpu.json).
SUMMARY_FIELDS = (
    "test_acc",
    "test_acc_no_tta",
    "test_acc_flip_translate_tta",
    "val_acc",
    "epochs",
    "train_seconds",
    "images_per_second",
    "images_seen",
    "precision",
)


def summary(rows: list[dict[str, Any]], total_seconds: float, device: str) -> dict[str, Any]:
    """{"device", "total_seconds", "models": {name: {test_acc, val_acc, epochs, train_seconds, ...}}}:
    the shape every committed training result uses. Accuracies are fractions; `test_acc` is with flip TTA."""
    return {
        "device": device,
        "total_seconds": round(total_seconds, 1),
        "models": {r["model"]: {k: r[k] for k in SUMMARY_FIELDS if k in r} for r in rows},
    }


def write_summary(runs_dir: Path, models: list[str], total_seconds: float) -> Path:
    """runs/train_all.json: the summary of the nets just trained, with the wall time of the whole command."""
    rows = collect(runs_dir, models)
    device = rows[0]["device"] if rows else "unknown"
    if rows and "precision" in rows[0]:
        device = f"{device}, {rows[0]['precision']}"
    path = runs_dir / "train_all.json"
    path.write_text(json.dumps(summary(rows, total_seconds, device), indent=1))
    return path
