"""Figures people would rather look at than read: curves, confusion matrices, sample grids, bars."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cifarlens_runtime.constants import CLASSES  # noqa: E402
from cifarlens_runtime.files import replacing  # noqa: E402


def _save(fig: Any, path: Path) -> Path:
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_curves(history: Sequence[dict[str, float]], path: Path) -> Path:
    """Loss and accuracy per epoch, train against val (train alone for a run without validation)."""
    epochs = [r["epoch"] for r in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, style in (("train", "-o"), ("val", "-s")):
        if any(r.get(f"{key}_acc") is None for r in history):
            continue
        ax1.plot(epochs, [r[f"{key}_loss"] for r in history], style, label=key, markersize=3)
        ax2.plot(epochs, [r[f"{key}_acc"] for r in history], style, label=key, markersize=3)
    ax1.set(xlabel="epoch", ylabel="loss", title="loss")
    ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def plot_confusion(confusion: Sequence[Sequence[int]], path: Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (true class by row) with counts in the cells."""
    m = np.asarray(confusion, dtype=np.float64)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=45, ha="right")
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(
                j, i, int(m[i, j]), ha="center", va="center", fontsize=7, color="white" if norm[i, j] > 0.5 else "black"
            )
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def plot_image_grid(images: np.ndarray, titles: Sequence[str], path: Path, cols: int = 10) -> Path:
    """uint8 (N, 32, 32, 3) images in a grid, each with its caption."""
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.35), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, title in zip(axes.flat, images, titles):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=7)
    return _save(fig, path)


def plot_report_bars(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Val and test accuracy per net (test alone for a net trained on every training image), and training time."""
    names = [r["model"] for r in rows]
    x = np.arange(len(names))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    val = [(i, r["val_acc"]) for i, r in enumerate(rows) if r.get("val_acc") is not None]  # none: all trained on
    if val:
        ax1.bar([i - 0.2 for i, _ in val], [a for _, a in val], 0.4, label="val")
    ax1.bar(x + 0.2, [r["test_acc"] for r in rows], 0.4, label="test")
    for i, r in enumerate(rows):
        ax1.text(i + 0.2, r["test_acc"], f"{r['test_acc']:.3f}", ha="center", va="bottom", fontsize=8)
    ax1.set_xticks(x, names)
    ax1.set(ylabel="accuracy", ylim=(0, 1), title="accuracy")
    ax1.legend()
    ax2.bar(x, [r["train_seconds"] / 60 for r in rows], 0.5, color="tab:gray")
    ax2.set_xticks(x, names)
    ax2.set(ylabel="minutes", title="training time")
    return _save(fig, path)
