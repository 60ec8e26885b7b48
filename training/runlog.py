"""What a run records as it goes, beside its checkpoints: history.csv/json and curves.png, train.log (every
line it prints, time-stamped) and TensorBoard events (`tensorboard --logdir runs`)."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from training import plots

Log = Callable[[str], Any]
HISTORY_FIELDS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "lr",
    "epoch_seconds",
    "images_per_second",
    "device",
    "precision",
)
# TensorBoard tag of each history column (train and val side by side under one name each).
SCALAR_TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "train_acc": "acc/train",
    "val_acc": "acc/val",
    "lr": "lr",
    "epoch_seconds": "speed/epoch_seconds",
    "images_per_second": "speed/images_per_second",
}


def write_history(history: list[dict[str, Any]], run_dir: Path, plot: bool = True) -> None:
    """history.csv and history.json every epoch; the loss/accuracy curves when `plot`."""
    with open(run_dir / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)  # epochs from before `device` existed: left blank
        writer.writeheader()
        writer.writerows(history)
    (run_dir / "history.json").write_text(json.dumps(history, indent=1))
    if plot and history:
        plots.plot_curves(history, run_dir / "curves.png")


def _quiet(*_: Any) -> None:
    """The echo of ranks other than 0."""


class RunLog:
    """A run's log: each line goes to `echo` (print) and to <run_dir>/train.log (appended across resumes);
    `scalars` writes TensorBoard events into <run_dir>. Without a `run_dir` (ranks other than 0) it is silent.

    `purge_step`: when resuming at epoch k, k + 1, so TensorBoard drops what an interrupted invocation logged
    after its last save (the resumed run logs those epochs again).
    """

    def __init__(self, run_dir: Path | None = None, echo: Log = print, purge_step: int | None = None) -> None:
        self.echo = echo if run_dir is not None else _quiet
        self.file: IO[str] | None = None
        self.writer: Any = None
        if run_dir is None:
            return
        self.file = open(run_dir / "train.log", "a", buffering=1)  # noqa: SIM115 (closed by `close`)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # tensorboard is a dependency; a bare environment still trains
            self(f"no TensorBoard events ({exc}): pip install tensorboard")
            return
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge_step)

    def __call__(self, message: str) -> None:
        self.echo(message)
        if self.file is not None:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            self.file.writelines(f"{stamp} {line}\n" for line in message.strip("\n").splitlines())

    def scalars(self, values: Mapping[str, float], step: int, tags: Mapping[str, str] = SCALAR_TAGS) -> None:
        """TensorBoard scalars at `step` (the epoch): each value whose key `tags` names, under that tag."""
        if self.writer is None:
            return
        for key, tag in tags.items():
            if key in values:
                self.writer.add_scalar(tag, values[key], step)
        self.writer.flush()

    def text(self, tag: str, text: str) -> None:
        """A TensorBoard text entry (e.g. the run's config), shown as Markdown."""
        if self.writer is not None:
            self.writer.add_text(tag, text)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.file is not None:
            self.file.close()
            self.file = None
