"""`Run`: everything one training run holds, and `build_run`, which sets it up from a TrainConfig.

Setting up is: join the process group (torchrun) and pick the device; find the checkpoint to resume and
check its recipe; open the run's log; load the data and build its loaders (once per run); build and
initialise the net; size the run from a time budget; build the optimiser, schedule and EMA; wrap the net
for data parallelism and `torch.compile`; restore the saved state when resuming.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from cifarlens_runtime.constants import CHECKPOINT_FILE
from training import distributed
from training.budget import plan_steps
from training.config import TrainConfig
from training.cost import count_params, forward_mflops
from training.data import CifarData, Loaders
from training.device import describe_device, precision, resolve_device
from training.distributed import World
from training.models import CifarNet, create_model
from training.optim import make_criterion, make_ema, make_optimizer, make_scheduler
from training.resume import load_resume_checkpoint, restore, resume_path, resumed_config
from training.rng import seed_everything
from training.runlog import Log, RunLog
from training.weights import dirac_init_, warm_start


@dataclass
class Run:
    """Everything one `fit` holds: what it was built from, and how far it has got."""

    cfg: TrainConfig
    device: torch.device
    run_dir: Path
    loaders: Loaders
    model: CifarNet
    train_model: nn.Module  # `model`, or its DDP and torch.compile wrappers
    optimizer: torch.optim.Optimizer
    scheduler: Any
    sched_when: str
    criterion: nn.Module
    ema: AveragedModel | None
    steps_per_epoch: int
    total_steps: int
    params: int
    mflops: float
    log: RunLog = field(default_factory=RunLog)
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
        return self.run_dir / CHECKPOINT_FILE

    def steps_in(self, epoch: int) -> int:
        return max(0, min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch))

    def images_in(self, epoch: int) -> int:
        """Training images of epoch `epoch` (0-based, all ranks), from the schedule: a resumed epoch counts whole,
        where its timing covers only the part after the resume."""
        train = self.loaders.train
        return min(len(train.labels), self.steps_in(epoch) * train.batch_size)


def _setup_process(cfg: TrainConfig) -> tuple[World, torch.device]:
    """This process's rank and device, with torch's thread count and cuDNN autotuning set."""
    world, device = distributed.setup(resolve_device(cfg.device))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return world, device


def _open(cfg: TrainConfig, world: World, device: torch.device, echo: Log) -> tuple[TrainConfig, dict | None, RunLog]:
    """The config to run (a resumed run's plan), the checkpoint to resume (or None) and the run's log, opened
    only once the resume's recipe is accepted (a refused resume leaves the run's folder as it was)."""
    run_dir = Path(cfg.out_dir) / cfg.name
    last, path, notes = load_resume_checkpoint(cfg, run_dir, device), resume_path(cfg, run_dir), []
    if last is not None:
        cfg = resumed_config(cfg, last, path, notes.append)
    elif cfg.resume:
        notes.append(f"--resume: no {path} yet, starting from scratch")
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    log = RunLog(run_dir if world.is_main else None, echo, purge_step=last["epoch"] + 1 if last else None)
    for note in notes:
        log(note)
    return cfg, last, log


def _build_model(cfg: TrainConfig, device: torch.device, resuming: bool, log: Log) -> CifarNet:
    """The net on `device`, initialised (warm start or dirac) unless its weights come from last.pt."""
    model = create_model(cfg.model, **cfg.model_kwargs).to(device)
    if cfg.init_from and not resuming:
        warm_start(model, cfg.init_from, log)
    elif cfg.dirac_init:
        dirac_init_(model)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)  # faster with oneDNN on CPUs too (measured)
    return model


def _training_module(model: nn.Module, cfg: TrainConfig, world: World, device: torch.device, log: Log) -> nn.Module:
    """What the steps run: `model`, wrapped in DistributedDataParallel under torchrun, compiled if asked."""
    train_model = model
    if world.distributed:
        if device.type == "cuda":
            train_model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        train_model = nn.parallel.DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None
        )
        log(f"data parallel over {world.size} processes ({'nccl' if device.type == 'cuda' else 'gloo'})")
    return torch.compile(train_model) if cfg.compile else train_model


def build_run(cfg: TrainConfig, log: Log = print) -> Run:
    """Data, model, optimiser and schedule of `cfg`, restored from its last.pt when resuming."""
    started = time.perf_counter()
    world, device = _setup_process(cfg)
    cfg, last, runlog = _open(cfg, world, device, log)
    try:
        return _assemble(cfg, world, device, last, runlog, started)
    except BaseException:  # e.g. a missing data folder: close train.log and the event file, then fail
        runlog.close()
        raise


def _assemble(
    cfg: TrainConfig, world: World, device: torch.device, last: dict | None, runlog: RunLog, started: float
) -> Run:
    """`build_run` once the run's folder and log are open: everything from the data on."""
    seed_everything(cfg.seed)
    with distributed.main_first(world):
        data = CifarData(cfg, device, runlog)
    loaders = data.loaders(cfg, world.rank, world.size)
    model = _build_model(cfg, device, last is not None, runlog)
    params, mflops = count_params(model), forward_mflops(model)
    runlog(f"{cfg.model}: {params / 1e6:.3f}M parameters, {mflops:.1f} MFLOPs/image, device "
           f"{describe_device(device)}, {precision(device, cfg.amp)}")  # fmt: skip
    if last is None and world.is_main:
        cfg = plan_steps(cfg, model, loaders, device, time.perf_counter() - started, runlog)
    cfg = distributed.broadcast(cfg, world)  # every rank follows rank 0's plan
    spe = min(len(loaders.train), cfg.max_steps_per_epoch or len(loaders.train))
    total_steps = cfg.total_steps or cfg.epochs * spe
    run_dir = Path(cfg.out_dir) / cfg.name
    if world.is_main:
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
        runlog.text("config", "```\n" + json.dumps(cfg.to_dict(), indent=1) + "\n```")
    optimizer = make_optimizer(model, cfg)
    scheduler, sched_when = make_scheduler(optimizer, cfg, total_steps)
    ema = make_ema(model, cfg)  # before the DDP wrapper, which may convert the net's batch norms
    run = Run(
        cfg=cfg, device=device, run_dir=run_dir, loaders=loaders, model=model,
        train_model=_training_module(model, cfg, world, device, runlog), optimizer=optimizer, scheduler=scheduler,
        sched_when=sched_when, criterion=make_criterion(cfg), ema=ema, steps_per_epoch=spe,
        total_steps=total_steps, params=params, mflops=mflops, log=runlog, world=world,
    )  # fmt: skip
    if last is not None:
        restore(run, last, resume_path(cfg, run_dir))
    return run
