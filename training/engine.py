"""The training loop, written once for every net: `train_one_epoch` and `evaluate`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from cifarlens_runtime.constants import NUM_CLASSES
from training.device import autocast

# Test-time augmentation levels: 0 none, 1 mirror, 2 mirror and +-1 px translation (airbench's).
TTA_LEVELS = (0, 1, 2)


def split_outputs(outputs: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(logits, auxiliary logits) of a net's training-mode output, whatever its form."""
    if isinstance(outputs, (tuple, list)):
        return outputs[0], list(outputs[1:])
    return outputs, []


def compute_loss(
    outputs: torch.Tensor | tuple[torch.Tensor, ...],
    targets: torch.Tensor,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    aux_weight: float = 0.3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Main loss plus `aux_weight` times each auxiliary loss; also returns the main logits."""
    logits, aux = split_outputs(outputs)
    loss = criterion(logits, targets)
    for a in aux:
        loss = loss + aux_weight * criterion(a, targets)
    return loss, logits


@dataclass
class EpochStats:
    loss: float = 0.0
    acc: float = 0.0
    images: int = 0
    seconds: float = 0.0
    steps: int = 0

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    device: torch.device,
    *,
    step_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    ema: torch.optim.swa_utils.AveragedModel | None = None,
    aux_weight: float = 0.3,
    amp: bool = True,
    total: int | None = None,
    desc: str = "train",
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
    accumulate: int = 1,
) -> EpochStats:
    """One pass over `batches`; the scheduler steps per batch when given. Returns loss, accuracy, speed.

    `accumulate` > 1 splits each batch into that many chunks with one backward each (batch-norm
    statistics per chunk): one step of a single process then equals one step of that many
    data-parallel ranks, each given one chunk.
    """
    model.train()
    stats = EpochStats()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    start = time.perf_counter()
    bar = tqdm(batches, total=total, desc=desc, leave=False, disable=not progress, dynamic_ncols=True)
    for step, (x, y) in enumerate(bar):
        optimizer.zero_grad(set_to_none=True)
        loss, logits = _backward(model, x, y, criterion, aux_weight, accumulate, device, amp)
        optimizer.step()
        if step_scheduler is not None:
            step_scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        stats.images += len(y)
        stats.steps += 1
        if on_step is not None:
            on_step(step)
        if progress and (step % 10 == 0 or step + 1 == total):
            rate = stats.images / max(time.perf_counter() - start, 1e-9)
            bar.set_postfix(loss=f"{loss_sum.item() / stats.images:.3f}",
                            acc=f"{correct.item() / stats.images:.3f}", img_s=f"{rate:.0f}")  # fmt: skip
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    stats.seconds = time.perf_counter() - start
    if stats.images:
        stats.loss = loss_sum.item() / stats.images
        stats.acc = correct.item() / stats.images
    return stats


def _backward(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    aux_weight: float,
    chunks: int,
    device: torch.device,
    amp: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward one batch (in `chunks` parts when > 1); returns its loss and main logits."""
    if chunks > 1:
        return _accumulate(model, x, y, criterion, aux_weight, chunks, device, amp)
    with autocast(device, amp):
        loss, logits = compute_loss(model(x), y, criterion, aux_weight)
    loss.backward()
    return loss, logits


def _accumulate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    aux_weight: float,
    chunks: int,
    device: torch.device,
    amp: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward the mean loss of `chunks` equal parts of the batch; returns the loss and the logits."""
    losses, logits = [], []
    for xc, yc in zip(x.chunk(chunks), y.chunk(chunks)):
        with autocast(device, amp):
            loss, lg = compute_loss(model(xc), yc, criterion, aux_weight)
        (loss / chunks).backward()
        losses.append(loss.detach())
        logits.append(lg.detach())
    return torch.stack(losses).mean(), torch.cat(logits)


@dataclass
class EvalResult:
    loss: float
    acc: float
    per_class_acc: list[float]
    confusion: list[list[int]] = field(repr=False)
    images: int = 0
    seconds: float = 0.0


def tta_logits(model: nn.Module, x: torch.Tensor, level: int) -> dict[int, torch.Tensor]:
    """Float logits of `x` for every TTA level up to `level`, sharing the views they have in common.

    Level 1 averages the image and its mirror; level 2 averages that with the mirrored pair
    shifted one pixel up-left and down-right (reflect padding), six views in all.
    """
    plain = model(x).float()
    out = {0: plain}
    if level >= 1:
        out[1] = (plain + model(torch.flip(x, dims=[3])).float()) / 2
    if level >= 2:
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        h, w = x.shape[-2:]
        shifted = [padded[..., :h, :w], padded[..., 2:, 2:]]
        views = [model(v).float() + model(torch.flip(v, dims=[3])).float() for v in shifted]
        out[2] = 0.5 * out[1] + 0.5 * (views[0] + views[1]) / 4
    return out


@torch.no_grad()
def evaluate_levels(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    *,
    levels: Iterable[int] = (0,),
    amp: bool = True,
    num_classes: int = NUM_CLASSES,
    progress: bool = False,
    desc: str = "eval",
) -> dict[int, EvalResult]:
    """`evaluate` at several TTA levels in one pass: {level: loss, accuracy, per-class accuracy, confusion}."""
    levels = sorted(set(levels))
    if any(lv not in TTA_LEVELS for lv in levels):
        raise ValueError(f"TTA levels must be among {TTA_LEVELS}, got {levels}")
    model.eval()
    confusion = {lv: torch.zeros(num_classes, num_classes, dtype=torch.long, device=device) for lv in levels}
    loss_sum = {lv: torch.zeros((), device=device) for lv in levels}
    n = 0
    start = time.perf_counter()
    for x, y in tqdm(batches, desc=desc, leave=False, disable=not progress, dynamic_ncols=True):
        with autocast(device, amp):
            logits = tta_logits(model, x, max(levels))
        for lv in levels:
            loss_sum[lv] += F.cross_entropy(logits[lv], y, reduction="sum")
            pred = logits[lv].argmax(1)
            confusion[lv] += torch.bincount(y * num_classes + pred, minlength=num_classes**2).view(
                num_classes, num_classes
            )
        n += len(y)
    seconds = time.perf_counter() - start
    results = {}
    for lv in levels:
        conf = confusion[lv].cpu()
        per_class = (conf.diag().float() / conf.sum(1).clamp_min(1).float()).tolist()
        acc = conf.diag().sum().item() / max(n, 1)
        results[lv] = EvalResult(loss_sum[lv].item() / max(n, 1), acc, per_class, conf.tolist(), n, seconds)
    return results


def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    *,
    tta: int | bool = 0,
    amp: bool = True,
    num_classes: int = NUM_CLASSES,
    progress: bool = False,
    desc: str = "eval",
) -> EvalResult:
    """Loss, accuracy, per-class accuracy and confusion matrix at TTA level `tta` (True: mirror)."""
    level = int(tta)
    return evaluate_levels(
        model, batches, device, levels=(level,), amp=amp, num_classes=num_classes, progress=progress, desc=desc
    )[level]
