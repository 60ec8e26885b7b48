"""A time budget turned into a number of steps: the run's own training step, timed on a throwaway copy of the
net, and the cost of validation and of the final test, measured before the run starts."""

from __future__ import annotations

import copy
import itertools
import math
import time
from dataclasses import replace

import torch
from torch import nn

from training.config import TrainConfig
from training.data import Loaders, TensorLoader
from training.device import autocast
from training.engine import train_one_epoch
from training.models.layers import set_dropblock_progress
from training.optim import make_criterion, make_ema, make_optimizer
from training.rng import rng_state, set_rng_state
from training.runlog import Log

# Views per image of the final test (TTA levels 0-2 share the six views of level 2).
TEST_VIEWS = 6


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_seconds(model: nn.Module, cfg: TrainConfig, train: TensorLoader, device: torch.device,
                 warmup: int, timed: int) -> float:  # fmt: skip
    """Seconds per training step here: `train_one_epoch` with the run's optimiser, loss, EMA and batches, on a
    copy of `model` (the run's weights and RNG are untouched), timed after `warmup` steps."""
    probe = copy.deepcopy(model)
    set_dropblock_progress(probe, 0.5)  # masks are sampled as in training
    optimizer = make_optimizer(probe, cfg)
    for group in optimizer.param_groups:
        group["lr"] *= 1e-3  # the copy has no warm-up: small steps keep it finite
    ema, criterion = make_ema(probe, cfg), make_criterion(cfg)
    batches = itertools.chain.from_iterable(train.batches(epoch) for epoch in itertools.count())

    def steps(n: int) -> float:
        stats = train_one_epoch(probe, itertools.islice(batches, n), optimizer, criterion, device, ema=ema,
                                aux_weight=cfg.aux_weight, amp=cfg.amp, progress=False, accumulate=cfg.accumulate)  # fmt: skip
        return stats.seconds / max(stats.steps, 1)

    steps(warmup)
    return steps(timed)


@torch.no_grad()
def eval_images_per_second(model: nn.Module, loader: TensorLoader, device: torch.device, amp: bool) -> float:
    """Eval throughput of `model` on one batch of `loader`, after one untimed pass."""
    was_training = model.training
    model.eval()
    x, _ = next(iter(loader))
    with autocast(device, amp):
        model(x)
        _sync(device)
        start = time.perf_counter()
        model(x)
        _sync(device)
    model.train(was_training)
    return len(x) / (time.perf_counter() - start)


def plan_steps(cfg: TrainConfig, model: nn.Module, loaders: Loaders, device: torch.device, spent: float,
               log: Log) -> TrainConfig:  # fmt: skip
    """With `time_budget`: size the run (total steps, epochs) from the throughput measured in its first
    steps, so that training, per-epoch validation and the final test end at the budget."""
    if not cfg.time_budget:
        return cfg
    warmup, timed = (5, 20) if device.type == "cuda" else (2, 4)
    start, rng = time.perf_counter(), rng_state()
    per_batch = step_seconds(model, cfg, loaders.train, device, warmup, timed)
    eval_ips = eval_images_per_second(model, loaders.val or loaders.test, device, cfg.amp)
    set_rng_state(rng)
    spent += time.perf_counter() - start
    n_train, n_test = len(loaders.train.labels), len(loaders.test.labels)
    n_val = len(loaders.val.labels) if loaders.val is not None else 0
    spe = len(loaders.train)
    per_step = per_batch + (n_val / eval_ips + cfg.epoch_overhead) / spe
    steps = max(1, int((cfg.time_budget - spent - TEST_VIEWS * n_test / eval_ips) / per_step))
    log(
        f"time budget {cfg.time_budget:.0f}s: {cfg.batch_size / per_batch:.0f} img/s training, {eval_ips:.0f} img/s "
        f"eval measured -> {steps} steps ({steps * cfg.batch_size / n_train:.1f} epochs of {n_train} images)"
    )
    return replace(cfg, total_steps=steps, epochs=math.ceil(steps / spe))
