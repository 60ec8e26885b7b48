"""One training run from a TrainConfig: `fit` sets up a `Run` (training.run), trains it epoch by epoch
(saving last.pt for `--resume`), and tests its best checkpoint at the end (training.final).

This module is the loop's orchestration only: the step is `training.engine.train_one_epoch`, the optimiser
and schedule come from `training.optim`, the time budget from `training.budget`, saving and resuming
from `training.resume`, and what a run records from `training.runlog`.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from training import distributed
from training.checkpoint import checkpoint_dict, save_checkpoint
from training.config import TrainConfig, validate
from training.device import describe_device, precision
from training.engine import EpochStats, evaluate_levels, train_one_epoch
from training.final import finalize
from training.models.layers import set_dropblock_progress
from training.resume import save_last
from training.run import Run, build_run
from training.runlog import Log, write_history

__all__ = ["fit", "train_epoch", "Run"]


def train_steps(run: Run) -> EpochStats:
    """Train the rest of epoch `run.epoch` (from batch `run.step_in_epoch`), ramping DropBlock as it goes."""
    cfg, epoch, start = run.cfg, run.epoch, run.step_in_epoch
    n_steps = run.steps_in(epoch) - start
    batches = run.loaders.train.batches(epoch, start)
    batches = (b for _, b in zip(range(n_steps), batches))

    def on_step(step: int) -> None:
        run.step_in_epoch = start + step + 1
        set_dropblock_progress(run.model, (epoch * run.steps_per_epoch + run.step_in_epoch) / run.total_steps)

    set_dropblock_progress(run.model, (epoch * run.steps_per_epoch + start) / run.total_steps)
    return train_one_epoch(
        run.train_model, batches, run.optimizer, run.criterion, run.device,
        step_scheduler=run.scheduler if run.sched_when == "step" else None,
        ema=run.ema, aux_weight=cfg.aux_weight, amp=cfg.amp, total=n_steps,
        desc=f"{cfg.name} {epoch + 1}/{cfg.epochs}", progress=cfg.progress and run.world.is_main, on_step=on_step,
        accumulate=cfg.accumulate,
    )  # fmt: skip


def record_epoch(run: Run, stats: EpochStats) -> None:
    """Validate the epoch just trained (no TTA), step an epoch-wise schedule, log and record it, keep the best
    (without validation, val_fraction 0, the latest: the run's weights are its last epoch's)."""
    cfg, epoch = run.cfg, run.epoch
    val = evaluate_levels(run.eval_model, run.loaders.val, run.device, amp=cfg.amp)[0] if run.loaders.val else None
    lr = run.optimizer.param_groups[0]["lr"]
    if run.sched_when == "epoch":
        run.scheduler.step()
    elif run.sched_when == "plateau":
        run.scheduler.step(val.acc)
    row = {
        "epoch": epoch + 1,
        "train_loss": round(stats.loss, 5),
        "train_acc": round(stats.acc, 5),
        "val_loss": round(val.loss, 5) if val else None,
        "val_acc": round(val.acc, 5) if val else None,
        "lr": lr,
        "epoch_seconds": round(stats.seconds, 2),
        "images_per_second": round(stats.images_per_second, 1),
        # Each epoch names its machine: a run resumed across sessions may change CPU and precision.
        "device": describe_device(run.device),
        "precision": precision(run.device, cfg.amp),
    }
    run.history.append(row)
    run.log(
        f"epoch {epoch + 1}/{cfg.epochs}  train loss {stats.loss:.3f} acc {stats.acc:.4f}  "
        + (f"val loss {val.loss:.3f} acc {val.acc:.4f}" if val else "no validation")
        + f"  {stats.images_per_second:.0f} img/s  {stats.seconds:.1f}s"
    )
    run.log.scalars({k: v for k, v in row.items() if v is not None}, epoch + 1)
    improved = val is not None and val.acc > run.best_val
    if improved:
        run.best_val = val.acc
    if improved or val is None:  # without validation, every epoch's weights are the run's latest best
        ckpt = checkpoint_dict(run.eval_model, cfg.model, config=cfg.to_dict(), epoch=epoch + 1, metrics=row)
        save_checkpoint(ckpt, run.best_path)
    write_history(run.history, run.run_dir, plot=run.device.type == "cpu")


def train_epoch(run: Run) -> None:
    """Train the rest of epoch `run.epoch`; rank 0 alone validates, records it and keeps the best weights."""
    stats = train_steps(run)
    run.train_seconds += stats.seconds
    if run.world.is_main:
        record_epoch(run, stats)
    run.epoch, run.step_in_epoch = run.epoch + 1, 0


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (`kill`, a scheduler, the end of a session) handled like Ctrl-C: save last.pt and stop."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train(run: Run) -> None:
    """Epochs until the plan (or `stop_after`) ends, saving last.pt every `save_every` seconds and at the end;
    Ctrl-C and SIGTERM save it too, then stop."""
    cfg, first = run.cfg, run.epoch
    resume_hint = "continue with --resume auto"
    try:
        with sigterm_as_interrupt():
            while run.epoch < cfg.epochs:
                if cfg.stop_after and run.epoch - first >= cfg.stop_after:
                    run.log(f"stopping after {cfg.stop_after} epoch(s) as asked; {resume_hint}")
                    break
                train_epoch(run)
                if distributed.broadcast(time.monotonic() - run.last_saved >= cfg.save_every, run.world):
                    save_last(run)
            save_last(run)
    except KeyboardInterrupt:
        save_last(run, collective=False)
        run.log(
            f"\ninterrupted: saved {run.last_path} (epoch {run.epoch + 1}, batch {run.step_in_epoch}); {resume_hint}"
        )
        raise


def fit(cfg: TrainConfig, log: Log = print) -> dict[str, Any]:
    """Train `cfg.model` as configured; writes <out_dir>/<run_name>/ and returns the final metrics
    ({} on ranks other than 0, and when the run stopped before its end)."""
    validate(cfg)
    run = build_run(cfg, log)
    try:
        train(run)
        try:
            if not run.world.is_main:
                return {}
            write_history(run.history, run.run_dir)
            if run.epoch < run.cfg.epochs or not run.best_path.is_file():
                return {}
            return finalize(run)
        finally:
            distributed.barrier(run.world)
            distributed.teardown(run.world)
    finally:
        run.log.close()
