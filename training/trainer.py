"""One training run from a TrainConfig: data, model, optimiser, schedule, checkpoints, metrics, plots."""

from __future__ import annotations

import csv
import json
import platform
import random
import signal
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from training import plots
from training.checkpoint import checkpoint_dict, load_checkpoint, save_checkpoint
from training.config import TrainConfig, validate
from training.constants import CLASSES
from training.data import (
    TensorLoader,
    build_augmentation,
    class_counts,
    load_cifar10,
    per_class_subset,
    stratified_split,
)
from training.engine import evaluate, train_one_epoch
from training.models import CifarNet, create_model
from training.models.layers import set_dropblock_progress


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cpu_model() -> str:
    """The CPU's marketing name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_device(device: torch.device) -> str:
    """A human description of where a run happened, stored with its metrics."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({cpu_model()}, {torch.get_num_threads()} threads)"


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


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov) or Adam(W); no weight decay on biases and normalisation weights."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> tuple[Any, str]:
    """The LR schedule and when it steps: 'step' (every batch), 'epoch', 'plateau' or 'never'."""
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler
    if cfg.schedule == "onecycle":
        return sched.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total, pct_start=cfg.warmup_fraction), "step"
    if cfg.schedule == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=total), "step"
    if cfg.schedule == "step":
        return sched.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma), "epoch"
    if cfg.schedule == "plateau":
        return sched.ReduceLROnPlateau(optimizer, mode="max", factor=cfg.gamma, patience=cfg.patience), "plateau"
    return sched.LambdaLR(optimizer, lambda _: 1.0), "never"


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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


def write_history(history: list[dict[str, float]], run_dir: Path) -> None:
    """history.csv and history.json, and the loss/accuracy curves, rewritten every epoch."""
    with open(run_dir / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        writer.writerows(history)
    (run_dir / "history.json").write_text(json.dumps(history, indent=1))
    plots.plot_curves(history, run_dir / "curves.png")


class Data:
    """The three parts of CIFAR-10 for one run, as uint8 tensors on the training device."""

    def __init__(self, cfg: TrainConfig, device: torch.device, log: Any = print) -> None:
        images, labels = load_cifar10(cfg.data_dir, "train")
        if cfg.per_class:
            keep = per_class_subset(labels, cfg.per_class, cfg.seed)
            images, labels = images[keep], labels[keep]
        train_idx, val_idx = stratified_split(labels, cfg.val_fraction, cfg.seed)
        test_images, test_labels = load_cifar10(cfg.data_dir, "test")
        if cfg.test_per_class:
            keep = per_class_subset(test_labels, cfg.test_per_class, cfg.seed)
            test_images, test_labels = test_images[keep], test_labels[keep]

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(device)

        self.train = (t(images[train_idx]), t(labels[train_idx]))
        self.val = (t(images[val_idx]), t(labels[val_idx]))
        self.test = (t(test_images), t(test_labels))
        for part, lab in (("train", labels[train_idx]), ("val", labels[val_idx]), ("test", test_labels)):
            log(f"{part:5s} {len(lab):6d} images  " + " ".join(f"{k}={v}" for k, v in class_counts(lab).items()))

    def loader(self, part: str, cfg: TrainConfig, channels_last: bool) -> TensorLoader:
        images, labels = getattr(self, part)
        if part == "train":
            return TensorLoader(
                images,
                labels,
                cfg.batch_size,
                shuffle=True,
                augment=build_augmentation(cfg.augment).to(images.device),
                drop_last=len(labels) >= 2 * cfg.batch_size,
                seed=cfg.seed,
                channels_last=channels_last,
            )
        return TensorLoader(images, labels, cfg.eval_batch_size, channels_last=channels_last)


def fit(cfg: TrainConfig, log: Any = print) -> dict[str, Any]:
    """Train `cfg.model` as configured; writes runs/<name>/ and returns the final metrics."""
    validate(cfg)
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run_dir = Path(cfg.out_dir) / cfg.name
    run_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    resume = cfg.resume and last_path.is_file()
    if cfg.resume and not resume:
        log(f"--resume: no {last_path} yet, starting from scratch")
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))

    seed_everything(cfg.seed)
    data = Data(cfg, device, log)
    channels_last = cfg.channels_last
    train_loader = data.loader("train", cfg, channels_last)
    val_loader = data.loader("val", cfg, channels_last)
    steps_per_epoch = len(train_loader)
    if cfg.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    total_steps = cfg.epochs * steps_per_epoch

    model = create_model(cfg.model, **cfg.model_kwargs).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # faster with oneDNN on CPUs too (measured)
    params, mflops = count_params(model), forward_mflops(model)
    log(f"{cfg.model}: {params / 1e6:.3f}M parameters, {mflops:.1f} MFLOPs/image, device {describe_device(device)}")
    optimizer = make_optimizer(model, cfg)
    scheduler, sched_when = make_scheduler(optimizer, cfg, steps_per_epoch)
    ema = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        if cfg.ema_decay
        else None
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    train_model: nn.Module = torch.compile(model) if cfg.compile else model

    start_epoch, start_step, history, best_val, train_seconds = 0, 0, [], -1.0, 0.0
    if resume:
        ckpt = load_checkpoint(last_path, map_location=device)
        state = ckpt["train_state"]
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        _set_rng_state(state["rng"])
        start_epoch, start_step = ckpt["epoch"], state["step_in_epoch"]
        history, best_val, train_seconds = state["history"], state["best_val"], state["train_seconds"]
        log(f"resumed {last_path} at epoch {start_epoch + 1}, batch {start_step}")

    eval_model = ema.module if ema is not None else model
    progress = {"epoch": start_epoch, "step": start_step}

    def save_last() -> None:
        train_state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "rng": _rng_state(),
            "step_in_epoch": progress["step"],
            "history": history,
            "best_val": best_val,
            "train_seconds": train_seconds,
        }
        metrics = history[-1] if history else {}
        save_checkpoint(
            checkpoint_dict(
                eval_model,
                cfg.model,
                config=cfg.to_dict(),
                epoch=progress["epoch"],
                metrics=metrics,
                train_state=train_state,
            ),
            last_path,
        )

    def on_step(step: int) -> None:
        progress["step"] = step + 1 + start_step_this_epoch
        set_dropblock_progress(model, (progress["epoch"] * steps_per_epoch + progress["step"]) / total_steps)

    # SIGTERM (e.g. `kill`, a scheduler) is handled like Ctrl-C: save `last` and stop.
    previous_sigterm = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        for epoch in range(start_epoch, cfg.epochs):
            if cfg.stop_after and epoch - start_epoch >= cfg.stop_after:
                log(f"stopping after {cfg.stop_after} epoch(s) as asked; continue with --resume true")
                break
            progress["epoch"] = epoch
            start_step_this_epoch = start_step if epoch == start_epoch else 0
            batches = train_loader.batches(epoch, start_step_this_epoch)
            n_steps = steps_per_epoch - start_step_this_epoch
            batches = (b for _, b in zip(range(n_steps), batches))
            set_dropblock_progress(model, (epoch * steps_per_epoch + start_step_this_epoch) / total_steps)
            stats = train_one_epoch(
                train_model, batches, optimizer, criterion, device,
                step_scheduler=scheduler if sched_when == "step" else None,
                ema=ema, aux_weight=cfg.aux_weight, amp=cfg.amp, total=n_steps,
                desc=f"{cfg.name} {epoch + 1}/{cfg.epochs}", progress=cfg.progress, on_step=on_step,
            )  # fmt: skip
            train_seconds += stats.seconds
            # Per-epoch validation without TTA (half the cost); the final test uses cfg.tta.
            val = evaluate(eval_model, val_loader, device, amp=cfg.amp)
            lr = optimizer.param_groups[0]["lr"]
            if sched_when == "epoch":
                scheduler.step()
            elif sched_when == "plateau":
                scheduler.step(val.acc)
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
            history.append(row)
            log(
                f"epoch {epoch + 1}/{cfg.epochs}  train loss {stats.loss:.3f} acc {stats.acc:.4f}  "
                f"val loss {val.loss:.3f} acc {val.acc:.4f}  {stats.images_per_second:.0f} img/s  {stats.seconds:.0f}s"
            )
            write_history(history, run_dir)
            progress["epoch"], progress["step"] = epoch + 1, 0
            if val.acc > best_val:
                best_val = val.acc
                save_checkpoint(
                    checkpoint_dict(eval_model, cfg.model, config=cfg.to_dict(), epoch=epoch + 1, metrics=row),
                    best_path,
                )
            save_last()
    except KeyboardInterrupt:
        save_last()
        log(f"\ninterrupted: saved {last_path} (epoch {progress['epoch'] + 1}, batch {progress['step']}); "
            "continue with --resume true")  # fmt: skip
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)

    if not history or not best_path.is_file():
        return {}
    return finalize(cfg, run_dir, data, device, params, mflops, train_seconds, history, log)


def finalize(
    cfg: TrainConfig,
    run_dir: Path,
    data: Data,
    device: torch.device,
    params: int,
    mflops: float,
    train_seconds: float,
    history: list[dict[str, float]],
    log: Any = print,
) -> dict[str, Any]:
    """Test the best checkpoint once, then write metrics.json and confusion.png."""
    from training.checkpoint import model_from_checkpoint

    ckpt = load_checkpoint(run_dir / "best.pt")
    model, _ = model_from_checkpoint(ckpt, device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    test = evaluate(model, data.loader("test", cfg, cfg.channels_last), device, tta=cfg.tta, amp=cfg.amp)
    images = sum(r["images_per_second"] * r["epoch_seconds"] for r in history)
    metrics = {
        "model": cfg.model,
        "val_acc": ckpt["metrics"]["val_acc"],
        "test_acc": round(test.acc, 5),
        "best_epoch": ckpt["epoch"],
        "epochs": len(history),
        "train_seconds": round(train_seconds, 1),
        "images_per_second": round(images / max(sum(r["epoch_seconds"] for r in history), 1e-9), 1),
        "device": describe_device(device),
        "params": params,
        "mflops": round(mflops, 2),
        "tta": cfg.tta,
        "test_images": test.images,
        "per_class_test_acc": {c: round(a, 4) for c, a in zip(CLASSES, test.per_class_acc)},
        "profile_config": {k: v for k, v in asdict(cfg).items() if k not in ("progress", "resume")},
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    plots.plot_confusion(test.confusion, run_dir / "confusion.png", title=f"{cfg.model}: test accuracy {test.acc:.4f}")
    ckpt["metrics"] = {**ckpt["metrics"], **{k: metrics[k] for k in ("test_acc", "params", "mflops", "device")}}
    ckpt["metrics"]["epochs"] = len(history)
    save_checkpoint(ckpt, run_dir / "best.pt")
    log(f"{cfg.model}: val {metrics['val_acc']:.4f}  test {metrics['test_acc']:.4f}  ({train_seconds:.0f}s training)")
    return metrics
