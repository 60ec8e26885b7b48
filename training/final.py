"""The end of a run: its best checkpoint tested once at every TTA level, metrics.json, confusion.png, and the
test numbers added to best.pt."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from cifarlens_runtime.constants import CLASSES, METRICS_FILE
from training import plots
from training.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from training.data import TensorLoader
from training.device import describe_device, precision
from training.engine import EvalResult, evaluate_levels

if TYPE_CHECKING:
    from training.run import Run

TTA_NAMES = {0: "none", 1: "flip", 2: "flip_translate"}
# metrics.json's copy of the config leaves out what only steered one invocation.
NOT_IN_METRICS = ("progress", "resume", "force_resume")
# TensorBoard tags of the final test, logged at the last epoch.
TEST_TAGS = {
    "test_acc": "test/acc",
    "test_acc_no_tta": "test/acc_no_tta",
    "test_acc_flip_translate_tta": "test/acc_flip_translate",
}


def test_levels(model: nn.Module, loader: TensorLoader, device: torch.device, amp: bool) -> dict[str, EvalResult]:
    """Test accuracy without TTA, with the mirror, and with mirror plus +-1 px shifts (one pass)."""
    results = evaluate_levels(model, loader, device, levels=tuple(TTA_NAMES), amp=amp)
    return {TTA_NAMES[lv]: r for lv, r in results.items()}


def epochs_by_device(history: list[dict[str, Any]]) -> dict[str, int]:
    """How many epochs each machine and precision trained, in the order they came: a run resumed across
    sessions on other CPUs says so (epochs recorded before history named its device count as `unrecorded`)."""
    return dict(Counter(f"{r['device']}, {r['precision']}" if r.get("device") else "unrecorded" for r in history))


def run_metrics(run: Run, best: dict[str, Any], by_tta: dict[str, EvalResult]) -> dict[str, Any]:
    """metrics.json of a finished run whose best checkpoint `best` tested as `by_tta`."""
    cfg, history = run.cfg, run.history
    test = by_tta["flip" if cfg.tta else "none"]
    timed = sum(r["images_per_second"] * r["epoch_seconds"] for r in history)  # resumed epochs: after the resume
    return {
        "model": cfg.model,
        "val_acc": best["metrics"]["val_acc"],
        "test_acc": round(test.acc, 5),
        "test_acc_no_tta": round(by_tta["none"].acc, 5),
        "test_acc_flip_translate_tta": round(by_tta["flip_translate"].acc, 5),
        "best_epoch": best["epoch"],
        "epochs": len(history),
        "steps": run.total_steps,
        "images_seen": sum(run.images_in(int(r["epoch"]) - 1) for r in history),
        "train_seconds": round(run.train_seconds, 1),
        "images_per_second": round(timed / max(sum(r["epoch_seconds"] for r in history), 1e-9), 1),
        "device": describe_device(run.device),
        "precision": precision(run.device, cfg.amp),
        "epochs_by_device": epochs_by_device(history),
        "params": run.params,
        "mflops": round(run.mflops, 2),
        "tta": cfg.tta,
        "test_images": test.images,
        "per_class_test_acc": {c: round(a, 4) for c, a in zip(CLASSES, test.per_class_acc)},
        "profile_config": {k: v for k, v in asdict(cfg).items() if k not in NOT_IN_METRICS},
    }


def finalize(run: Run) -> dict[str, Any]:
    """Test the best checkpoint once, then write metrics.json and confusion.png; returns the metrics."""
    cfg, device = run.cfg, run.device
    best = load_checkpoint(run.best_path)
    model, _ = model_from_checkpoint(best, device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    by_tta = test_levels(model, run.loaders.test, device, cfg.amp)
    metrics = run_metrics(run, best, by_tta)
    test = by_tta["flip" if cfg.tta else "none"]
    (run.run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=1))
    plots.plot_confusion(
        test.confusion, run.run_dir / "confusion.png", title=f"{cfg.model}: test accuracy {test.acc:.4f}"
    )
    keep = ("test_acc", "test_acc_no_tta", "params", "mflops", "device", "precision")
    best["metrics"] = {**best["metrics"], **{k: metrics[k] for k in keep}, "epochs": len(run.history)}
    save_checkpoint(best, run.best_path)
    run.log.scalars(metrics, len(run.history), TEST_TAGS)
    val = "no val" if metrics["val_acc"] is None else f"val {metrics['val_acc']:.4f}"
    run.log(
        f"{cfg.model}: {val}  test {metrics['test_acc']:.4f} (flip TTA; "
        f"{metrics['test_acc_no_tta']:.4f} without, {metrics['test_acc_flip_translate_tta']:.4f} flip+translate)  "
        f"({run.train_seconds:.0f}s training)"
    )
    return metrics
