"""What turns a run's gradients into updates: the loss, the optimiser, the LR schedule and the EMA of the weights,
each built from the TrainConfig."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from training.config import TrainConfig


def make_criterion(cfg: TrainConfig) -> nn.Module:
    """Cross-entropy with the recipe's label smoothing."""
    return nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov) or Adam(W). Biases and norm weights: no weight decay, `norm_bias_lr_scale` x the lr."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay, "lr": cfg.lr},
        {"params": no_decay, "weight_decay": 0.0, "lr": cfg.lr * cfg.norm_bias_lr_scale},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def linear_warmup_decay(total_steps: int, warmup_fraction: float, start: float = 0.2) -> Callable[[int], float]:
    """LR factor: linear from `start` to 1 over the warm-up, then linear to 0 at `total_steps` (airbench)."""
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return start + (1.0 - start) * step / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> tuple[Any, str]:
    """The LR schedule and when it steps: 'step' (every batch), 'epoch', 'plateau' or 'never'."""
    sched = torch.optim.lr_scheduler
    if cfg.schedule == "linear":
        return sched.LambdaLR(optimizer, linear_warmup_decay(total_steps, cfg.warmup_fraction)), "step"
    if cfg.schedule == "onecycle":
        max_lr = [g["lr"] for g in optimizer.param_groups]
        return sched.OneCycleLR(
            optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=cfg.warmup_fraction
        ), "step"
    if cfg.schedule == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=total_steps), "step"
    if cfg.schedule == "step":
        return sched.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma), "epoch"
    if cfg.schedule == "plateau":
        return sched.ReduceLROnPlateau(optimizer, mode="max", factor=cfg.gamma, patience=cfg.patience), "plateau"
    return sched.LambdaLR(optimizer, lambda _: 1.0), "never"


def ema_with_warmup(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]:
    """EMA update whose decay grows as min(decay, (1 + n) / (10 + n)) with the number of updates n,
    so short runs are not dominated by their random initialisation."""

    @torch.no_grad()
    def update(ema_params: list[torch.Tensor], params: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        n = float(n_averaged.item()) if n_averaged.device.type == "cpu" else float(n_averaged.cpu())
        d = min(decay, (1.0 + n) / (10.0 + n))
        if ema_params[0].is_floating_point():
            torch._foreach_lerp_(ema_params, params, 1.0 - d)
        else:
            for e, p in zip(ema_params, params):
                e.copy_(p)

    return update


def make_ema(model: nn.Module, cfg: TrainConfig) -> AveragedModel | None:
    """The moving average of `model`'s weights and buffers, or None when `ema_decay` is 0."""
    if not cfg.ema_decay:
        return None
    return AveragedModel(model, multi_avg_fn=ema_with_warmup(cfg.ema_decay), use_buffers=True)
