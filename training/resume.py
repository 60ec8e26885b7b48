"""last.pt: the whole training state saved as a run goes, and a run continued from it.

`--resume auto` continues <out_dir>/<run_name>/last.pt when there is one, `--resume PATH` that file; either
refuses a recipe other than the one the run started with (`training.config.recipe_changes` lists the
fields) unless `--force-resume`. The run keeps its plan (epochs and steps): its schedule was sized for it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from training import distributed
from training.checkpoint import checkpoint_dict, load_checkpoint, save_checkpoint
from training.config import RESUME_AUTO, TrainConfig, recipe_changes
from training.rng import rng_state, set_rng_state

if TYPE_CHECKING:
    from training.run import Run
    from training.runlog import Log


def resume_path(cfg: TrainConfig, run_dir: Path) -> Path | None:
    """The last.pt that `cfg.resume` names: auto, <run_dir>/last.pt; a path, itself; off, None."""
    if not cfg.resume:
        return None
    return run_dir / "last.pt" if cfg.resume == RESUME_AUTO else Path(cfg.resume)


def load_resume_checkpoint(cfg: TrainConfig, run_dir: Path, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint to continue, or None (not resuming, or `auto` and no last.pt yet).

    A named file must exist and hold a training state: best.pt and shipped weights start a run with
    `--init-from` instead."""
    path = resume_path(cfg, run_dir)
    if path is None or (cfg.resume == RESUME_AUTO and not path.is_file()):
        return None
    if not path.is_file():
        raise FileNotFoundError(f"--resume {path}: no such checkpoint")
    ckpt = load_checkpoint(path, map_location=device)
    if "train_state" not in ckpt:
        raise ValueError(f"--resume {path}: not a last.pt (no training state); start from its weights with --init-from")
    return ckpt


def resumed_config(cfg: TrainConfig, ckpt: dict[str, Any], path: Path, log: Log) -> TrainConfig:
    """`cfg` with the plan of the run in `ckpt`; a changed recipe is refused, or with `force_resume` logged."""
    saved = ckpt["config"]
    plan = {"epochs": saved["epochs"], "total_steps": saved.get("total_steps", 0)}
    changes = recipe_changes(cfg, saved)
    if changes and not cfg.force_resume:
        raise ValueError(
            f"--resume {path}: the run was started with another recipe ({'; '.join(changes)}). Give the options it "
            f"was started with (or replay them: --config {path.parent / 'config.json'}), or pass --force-resume"
        )
    if changes:
        log(f"--force-resume: continuing {path} with {'; '.join(changes)}; the run keeps its plan "
            f"({plan['epochs']} epochs, {plan['total_steps'] or 'epochs x batches'} steps) and its saved optimiser "
            "and schedule state")  # fmt: skip
    return replace(cfg, **plan)


def restore(run: Run, ckpt: dict[str, Any], path: Path) -> None:
    """Continue from the `last.pt` at `path`: weights, optimiser, schedule, EMA, RNG and progress."""
    state = ckpt["train_state"]
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    if run.ema is not None and state.get("ema") is not None:
        run.ema.load_state_dict(state["ema"])
    rng = state["rng"]
    if isinstance(rng, list):  # one state per rank (torchrun); a different world size reuses rank 0's
        rng = rng[run.world.rank] if len(rng) == run.world.size else rng[0]
    set_rng_state(rng)
    run.epoch, run.step_in_epoch = ckpt["epoch"], state["step_in_epoch"]
    run.history, run.best_val, run.train_seconds = state["history"], state["best_val"], state["train_seconds"]
    run.log(f"resumed {path} at epoch {run.epoch + 1}, batch {run.step_in_epoch}")


def save_last(run: Run, collective: bool = True) -> None:
    """`last.pt`: the averaged weights to use, plus the whole training state to resume from.

    Under torchrun every rank must call it (`collective`): rank 0 gathers each rank's RNG state
    and writes the file. After Ctrl-C the ranks may not all get here, so only rank 0's state is kept.
    """
    rng = distributed.gather(rng_state(), run.world) if collective else rng_state()
    if not run.world.is_main:
        return
    train_state = {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "ema": run.ema.state_dict() if run.ema is not None else None,
        "rng": rng if run.world.distributed else rng_state(),
        "step_in_epoch": run.step_in_epoch,
        "history": run.history,
        "best_val": run.best_val,
        "train_seconds": run.train_seconds,
    }
    metrics = run.history[-1] if run.history else {}
    ckpt = checkpoint_dict(
        run.eval_model, run.cfg.model, config=run.cfg.to_dict(), epoch=run.epoch, metrics=metrics,
        train_state=train_state,
    )  # fmt: skip
    save_checkpoint(ckpt, run.last_path)
    run.last_saved = time.monotonic()
