"""One training run from a TrainConfig: data, model, optimiser, schedule, checkpoints, metrics, plots.

`fit` is a short driver over a `Run` (everything the run holds) and small functions that each do
one thing to it: plan the number of steps (from a time budget when one is set), train an epoch,
record it, save `last.pt` for `--resume`, and test the best checkpoint at the end.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import random
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from training import distributed, plots
from training.checkpoint import checkpoint_dict, load_checkpoint, model_from_checkpoint, save_checkpoint
from training.config import TrainConfig, validate
from training.constants import CLASSES
from training.data import CifarData, TensorLoader
from training.device import autocast, describe_device, precision, resolve_device
from training.distributed import World
from training.engine import compute_loss, evaluate_levels, train_one_epoch
from training.models import CifarNet, create_model
from training.models.layers import set_dropblock_progress

__all__ = ["fit", "resolve_device", "Run"]

Log = Callable[[str], Any]
# Views per image of the final test (TTA levels 0-2 share the six views of level 2).
TEST_VIEWS = 6


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_mflops(model: CifarNet) -> float:
    """Forward FLOPs of one image in eval mode (torch.utils.flop_counter), in millions."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, 32, 32, device=device))
    model.train(was_training)
    return counter.get_total_flops() / 1e6


def dirac_init_(model: nn.Module) -> int:
    """Identity-initialise the first `in` filters of every conv with at least as many outputs as inputs.

    Each such conv then starts by passing its input through (plus random filters for the extra
    outputs), which lets a deep stack learn from the first step (airbench). Returns how many convs.
    """
    count = 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.groups == 1 and m.out_channels >= m.in_channels and m.kernel_size[0] % 2:
            with torch.no_grad():
                nn.init.dirac_(m.weight[: m.in_channels])
            count += 1
    return count


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


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    # RNG states are CPU byte tensors; a checkpoint loaded with map_location=cuda moves them to the GPU.
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


HISTORY_FIELDS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "lr",
    "epoch_seconds",
    "images_per_second",
)


def write_history(history: list[dict[str, float]], run_dir: Path, plot: bool = True) -> None:
    """history.csv and history.json every epoch; the loss/accuracy curves when `plot`."""
    with open(run_dir / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        writer.writerows(history)
    (run_dir / "history.json").write_text(json.dumps(history, indent=1))
    if plot and history:
        plots.plot_curves(history, run_dir / "curves.png")


@dataclass
class Run:
    """Everything one `fit` holds: what it was built from, and how far it has got."""

    cfg: TrainConfig
    device: torch.device
    run_dir: Path
    data: CifarData
    model: CifarNet
    train_model: nn.Module  # `model`, or its torch.compile wrapper
    optimizer: torch.optim.Optimizer
    scheduler: Any
    sched_when: str
    criterion: nn.Module
    ema: AveragedModel | None
    steps_per_epoch: int
    total_steps: int
    params: int
    mflops: float
    log: Log = print
    world: World = field(default_factory=World)
    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0  # batches of epoch `epoch` completed
    history: list[dict[str, float]] = field(default_factory=list)
    best_val: float = -1.0
    train_seconds: float = 0.0
    last_saved: float = field(default_factory=time.monotonic)

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"

    def steps_in(self, epoch: int) -> int:
        return max(0, min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch))


def measure_throughput(
    model: nn.Module, cfg: TrainConfig, data: CifarData, device: torch.device, warmup: int, timed: int
) -> tuple[float, float]:
    """Training and eval images/s of `model` here, on a throwaway copy (the run's weights and RNG are untouched)."""
    rng = _rng_state()
    probe = copy.deepcopy(model).train()
    set_dropblock_progress(probe, 0.5)  # masks are sampled as in training
    opt = torch.optim.SGD(probe.parameters(), lr=1e-4, momentum=0.9, nesterov=True)
    ema = AveragedModel(probe, multi_avg_fn=ema_with_warmup(cfg.ema_decay), use_buffers=True) if cfg.ema_decay else None
    criterion = nn.CrossEntropyLoss()
    loader = data.loader("train", cfg)
    batches = loader.batches(0)
    start = 0.0
    for i in range(warmup + timed):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        x, y = next(batches)
        with autocast(device, cfg.amp):
            loss, _ = compute_loss(probe(x), y, criterion)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            ema.update_parameters(probe)
    _sync(device)
    train_ips = timed * cfg.batch_size / (time.perf_counter() - start)
    probe.eval()
    x, _ = next(iter(data.loader("val", cfg)))
    with torch.no_grad(), autocast(device, cfg.amp):
        probe(x)
        _sync(device)
        start = time.perf_counter()
        probe(x)
        _sync(device)
    eval_ips = len(x) / (time.perf_counter() - start)
    _set_rng_state(rng)
    return train_ips, eval_ips


def _quiet(*_: Any) -> None:
    """The log of ranks other than 0."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plan_steps(
    cfg: TrainConfig, model: nn.Module, data: CifarData, device: torch.device, spent: float, log: Log
) -> TrainConfig:
    """With `time_budget`: size the run (total steps, epochs) from the throughput measured in its first
    steps, so that training, per-epoch validation and the final test end at the budget."""
    if not cfg.time_budget:
        return cfg
    warmup, timed = (5, 20) if device.type == "cuda" else (2, 4)
    start = time.perf_counter()
    train_ips, eval_ips = measure_throughput(model, cfg, data, device, warmup, timed)
    spent += time.perf_counter() - start
    n_train, n_val, n_test = (len(data.train[1]), len(data.val[1]), len(data.test[1]))
    spe = len(data.loader("train", cfg))
    test_cost = TEST_VIEWS * n_test / eval_ips
    epoch_overhead = n_val / eval_ips + cfg.epoch_overhead
    per_step = cfg.batch_size / train_ips + epoch_overhead / spe
    steps = max(1, int((cfg.time_budget - spent - test_cost) / per_step))
    epochs = math.ceil(steps / spe)
    log(
        f"time budget {cfg.time_budget:.0f}s: {train_ips:.0f} img/s training, {eval_ips:.0f} img/s eval measured -> "
        f"{steps} steps ({steps * cfg.batch_size / n_train:.1f} epochs of {n_train} images)"
    )
    return replace(cfg, total_steps=steps, epochs=epochs)


def build_run(cfg: TrainConfig, log: Log = print) -> Run:
    """Data, model, optimiser and schedule of `cfg`, restored from `last.pt` when resuming."""
    started = time.perf_counter()
    world, device = distributed.setup(resolve_device(cfg.device))
    if not world.is_main:
        log = _quiet
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    run_dir = Path(cfg.out_dir) / cfg.name
    run_dir.mkdir(parents=True, exist_ok=True)
    last_path = run_dir / "last.pt"
    last = load_checkpoint(last_path, map_location=device) if cfg.resume and last_path.is_file() else None
    if cfg.resume and last is None:
        log(f"--resume: no {last_path} yet, starting from scratch")
    if last is not None:  # keep the plan the run started with (its step count may come from a time budget)
        cfg = replace(cfg, epochs=last["config"]["epochs"], total_steps=last["config"].get("total_steps", 0))

    seed_everything(cfg.seed)
    with distributed.main_first(world):
        data = CifarData(cfg, device, log)
    model = create_model(cfg.model, **cfg.model_kwargs).to(device)
    if cfg.init_from and last is None:
        warm_start(model, cfg.init_from, log)
    elif cfg.dirac_init:
        dirac_init_(model)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)  # faster with oneDNN on CPUs too (measured)
    params, mflops = count_params(model), forward_mflops(model)
    log(
        f"{cfg.model}: {params / 1e6:.3f}M parameters, {mflops:.1f} MFLOPs/image, device {describe_device(device)}, "
        f"{precision(device, cfg.amp)}"
    )
    if last is None and world.is_main:
        cfg = plan_steps(cfg, model, data, device, time.perf_counter() - started, log)
    cfg = distributed.broadcast(cfg, world)  # every rank follows rank 0's plan
    spe = len(data.loader("train", cfg))
    if cfg.max_steps_per_epoch:
        spe = min(spe, cfg.max_steps_per_epoch)
    total_steps = cfg.total_steps or cfg.epochs * spe
    if world.is_main:
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))

    optimizer = make_optimizer(model, cfg)
    scheduler, sched_when = make_scheduler(optimizer, cfg, total_steps)
    ema = AveragedModel(model, multi_avg_fn=ema_with_warmup(cfg.ema_decay), use_buffers=True) if cfg.ema_decay else None
    train_model = model
    if world.distributed:
        if device.type == "cuda":
            train_model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        train_model = nn.parallel.DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None
        )
        log(f"data parallel over {world.size} processes ({'nccl' if device.type == 'cuda' else 'gloo'})")
    run = Run(
        cfg=cfg, device=device, run_dir=run_dir, data=data, model=model,
        train_model=torch.compile(train_model) if cfg.compile else train_model,
        optimizer=optimizer, scheduler=scheduler, sched_when=sched_when,
        criterion=nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing), ema=ema,
        steps_per_epoch=spe, total_steps=total_steps, params=params, mflops=mflops, log=log, world=world,
    )  # fmt: skip
    if last is not None:
        restore(run, last)
    return run


def warm_start(model: nn.Module, path: str, log: Log = print) -> None:
    """Start from the weights of another checkpoint of the same net (e.g. shipped fp16 weights, which
    lack the auxiliary heads: those keep their fresh initialisation)."""
    ckpt = load_checkpoint(path)
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("aux") for k in missing):
        raise ValueError(f"{path} does not match this net: missing {missing}, unexpected {unexpected}")
    log(f"weights from {path} ({ckpt['model']}, epoch {ckpt['epoch']}); {len(missing)} tensors fresh")


def restore(run: Run, ckpt: dict[str, Any]) -> None:
    """Continue from a `last.pt`: weights, optimiser, schedule, EMA, RNG and progress."""
    state = ckpt["train_state"]
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    if run.ema is not None and state.get("ema") is not None:
        run.ema.load_state_dict(state["ema"])
    rng = state["rng"]
    if isinstance(rng, list):  # one state per rank (torchrun); a different world size reuses rank 0's
        rng = rng[run.world.rank] if len(rng) == run.world.size else rng[0]
    _set_rng_state(rng)
    run.epoch, run.step_in_epoch = ckpt["epoch"], state["step_in_epoch"]
    run.history, run.best_val, run.train_seconds = state["history"], state["best_val"], state["train_seconds"]
    run.log(f"resumed {run.last_path} at epoch {run.epoch + 1}, batch {run.step_in_epoch}")


def save_last(run: Run, collective: bool = True) -> None:
    """`last.pt`: the averaged weights to use, plus the whole training state to resume from.

    Under torchrun every rank must call it (`collective`): rank 0 gathers each rank's RNG state
    and writes the file. After Ctrl-C the ranks may not all get here, so only rank 0's state is kept.
    """
    rng = distributed.gather(_rng_state(), run.world) if collective else _rng_state()
    if not run.world.is_main:
        return
    train_state = {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "ema": run.ema.state_dict() if run.ema is not None else None,
        "rng": rng if run.world.distributed else _rng_state(),
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


def train_epoch(run: Run) -> None:
    """Train the rest of epoch `run.epoch`, validate, record it and keep the best weights."""
    cfg, epoch, start = run.cfg, run.epoch, run.step_in_epoch
    n_steps = run.steps_in(epoch) - start
    batches = run.data.loader("train", cfg, run.world.rank, run.world.size).batches(epoch, start)
    batches = (b for _, b in zip(range(n_steps), batches))

    def on_step(step: int) -> None:
        run.step_in_epoch = start + step + 1
        done = epoch * run.steps_per_epoch + run.step_in_epoch
        set_dropblock_progress(run.model, done / run.total_steps)

    set_dropblock_progress(run.model, (epoch * run.steps_per_epoch + start) / run.total_steps)
    stats = train_one_epoch(
        run.train_model, batches, run.optimizer, run.criterion, run.device,
        step_scheduler=run.scheduler if run.sched_when == "step" else None,
        ema=run.ema, aux_weight=cfg.aux_weight, amp=cfg.amp, total=n_steps,
        desc=f"{cfg.name} {epoch + 1}/{cfg.epochs}", progress=cfg.progress and run.world.is_main, on_step=on_step,
        accumulate=cfg.accumulate,
    )  # fmt: skip
    run.train_seconds += stats.seconds
    if not run.world.is_main:  # rank 0 alone validates, records and keeps the best weights
        run.epoch, run.step_in_epoch = epoch + 1, 0
        return
    # Per-epoch validation without TTA (a sixth of the cost); the final test uses every TTA level.
    val = evaluate_levels(run.eval_model, run.data.loader("val", cfg), run.device, amp=cfg.amp)[0]
    lr = run.optimizer.param_groups[0]["lr"]
    if run.sched_when == "epoch":
        run.scheduler.step()
    elif run.sched_when == "plateau":
        run.scheduler.step(val.acc)
    row = {
        "epoch": epoch + 1,
        "train_loss": round(stats.loss, 5),
        "train_acc": round(stats.acc, 5),
        "val_loss": round(val.loss, 5),
        "val_acc": round(val.acc, 5),
        "lr": lr,
        "epoch_seconds": round(stats.seconds, 2),
        "images_per_second": round(stats.images_per_second, 1),
    }
    run.history.append(row)
    run.log(
        f"epoch {epoch + 1}/{cfg.epochs}  train loss {stats.loss:.3f} acc {stats.acc:.4f}  "
        f"val loss {val.loss:.3f} acc {val.acc:.4f}  {stats.images_per_second:.0f} img/s  {stats.seconds:.1f}s"
    )
    run.epoch, run.step_in_epoch = epoch + 1, 0
    if val.acc > run.best_val:
        run.best_val = val.acc
        ckpt = checkpoint_dict(run.eval_model, cfg.model, config=cfg.to_dict(), epoch=epoch + 1, metrics=row)
        save_checkpoint(ckpt, run.best_path)
    write_history(run.history, run.run_dir, plot=run.device.type == "cpu")


def fit(cfg: TrainConfig, log: Log = print) -> dict[str, Any]:
    """Train `cfg.model` as configured; writes runs/<name>/ and returns the final metrics."""
    validate(cfg)
    run = build_run(cfg, log)
    cfg = run.cfg
    first = run.epoch
    # SIGTERM (e.g. `kill`, a scheduler) is handled like Ctrl-C: save `last` and stop.
    previous_sigterm = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while run.epoch < cfg.epochs:
            if cfg.stop_after and run.epoch - first >= cfg.stop_after:
                log(f"stopping after {cfg.stop_after} epoch(s) as asked; continue with --resume true")
                break
            train_epoch(run)
            if distributed.broadcast(time.monotonic() - run.last_saved >= cfg.save_every, run.world):
                save_last(run)
        save_last(run)
    except KeyboardInterrupt:
        save_last(run, collective=False)
        log(f"\ninterrupted: saved {run.last_path} (epoch {run.epoch + 1}, batch {run.step_in_epoch}); "
            "continue with --resume true")  # fmt: skip
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
    try:
        if not run.world.is_main:
            return {}
        write_history(run.history, run.run_dir)
        if run.epoch < cfg.epochs or not run.best_path.is_file():
            return {}
        return finalize(run)
    finally:
        distributed.barrier(run.world)
        distributed.teardown(run.world)


def test_levels(model: nn.Module, loader: TensorLoader, device: torch.device, amp: bool) -> dict[str, Any]:
    """Test accuracy without TTA, with the mirror, and with mirror plus +-1 px shifts (one pass)."""
    results = evaluate_levels(model, loader, device, levels=(0, 1, 2), amp=amp)
    names = {0: "none", 1: "flip", 2: "flip_translate"}
    return {names[lv]: r for lv, r in results.items()}


def finalize(run: Run) -> dict[str, Any]:
    """Test the best checkpoint once, then write metrics.json and confusion.png."""
    cfg, device = run.cfg, run.device
    ckpt = load_checkpoint(run.best_path)
    model, _ = model_from_checkpoint(ckpt, device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    by_tta = test_levels(model, run.data.loader("test", cfg), device, cfg.amp)
    test = by_tta["flip" if cfg.tta else "none"]
    history = run.history
    images = sum(r["images_per_second"] * r["epoch_seconds"] for r in history)
    metrics = {
        "model": cfg.model,
        "val_acc": ckpt["metrics"]["val_acc"],
        "test_acc": round(test.acc, 5),
        "test_acc_no_tta": round(by_tta["none"].acc, 5),
        "test_acc_flip_translate_tta": round(by_tta["flip_translate"].acc, 5),
        "best_epoch": ckpt["epoch"],
        "epochs": len(history),
        "steps": run.total_steps,
        "images_seen": int(round(images)),
        "train_seconds": round(run.train_seconds, 1),
        "images_per_second": round(images / max(sum(r["epoch_seconds"] for r in history), 1e-9), 1),
        "device": describe_device(device),
        "precision": precision(device, cfg.amp),
        "params": run.params,
        "mflops": round(run.mflops, 2),
        "tta": cfg.tta,
        "test_images": test.images,
        "per_class_test_acc": {c: round(a, 4) for c, a in zip(CLASSES, test.per_class_acc)},
        "profile_config": {k: v for k, v in asdict(cfg).items() if k not in ("progress", "resume")},
    }
    (run.run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    plots.plot_confusion(
        test.confusion, run.run_dir / "confusion.png", title=f"{cfg.model}: test accuracy {test.acc:.4f}"
    )
    keep = ("test_acc", "test_acc_no_tta", "params", "mflops", "device", "precision")
    ckpt["metrics"] = {**ckpt["metrics"], **{k: metrics[k] for k in keep}, "epochs": len(history)}
    save_checkpoint(ckpt, run.best_path)
    run.log(
        f"{cfg.model}: val {metrics['val_acc']:.4f}  test {metrics['test_acc']:.4f} (flip TTA; "
        f"{metrics['test_acc_no_tta']:.4f} without, {metrics['test_acc_flip_translate_tta']:.4f} flip+translate)  "
        f"({run.train_seconds:.0f}s training)"
    )
    return metrics
