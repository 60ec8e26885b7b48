"""The typed training configuration, each field's meaning and allowed values, and the per-net recipes.

Every field carries its own help (`field(metadata=...)`), so `--help` says what each option does and
which values it takes; `training.options` turns the fields into command-line options.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any

from cifarlens_runtime.constants import DEFAULT_SEED

PROFILES = ("full", "cpu", "long", "finetune", "smoke")
# `--profile auto` (the default): the recipe made for the device the run will use, by device type; any other
# device (a CPU, MPS) gets AUTO_OTHER.
AUTO = "auto"
AUTO_PROFILES = {"cuda": "full"}
AUTO_OTHER = "cpu"
# Profiles that refine a trained net: they need `init_from`.
WARM_START_PROFILES = ("finetune",)
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("linear", "onecycle", "cosine", "step", "plateau", "constant")
AUGMENTATIONS = ("none", "fast", "seed")
FLIPS = ("none", "random", "alternate")
# `resume` spellings: "auto" continues <out_dir>/<run_name>/last.pt when there is one, "" starts afresh;
# anything else is the path of a last.pt. true/false are kept as aliases (and True/False from Python).
RESUME_AUTO = "auto"
RESUME_ALIASES = {"true": RESUME_AUTO, "false": "", "auto": RESUME_AUTO, "": ""}
# Fields that say where and how a run goes, not what it trains: resuming ignores them when it compares
# the command line's recipe with the one a last.pt was started with (see `recipe_changes`).
NOT_RECIPE = (
    "data_dir", "out_dir", "run_name", "device", "threads", "compile", "channels_last", "eval_batch_size",
    "progress", "save_every", "stop_after", "resume", "force_resume", "init_from", "epoch_overhead",
)  # fmt: skip
# Fields a time budget sets (the run's plan): a budgeted run keeps the plan it started with.
PLAN = ("epochs", "total_steps")


def _opt(default: Any, help: str, choices: tuple[str, ...] | None = None, metavar: str | None = None) -> Any:
    """A field whose help, allowed values and argument name reach `--help` (metadata, as HfArgumentParser
    reads it)."""
    metadata = {"help": help, "choices": choices, "metavar": metavar}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Everything one training run depends on; saved in every checkpoint and in config.json."""

    model: str = _opt("se_net", "the net to train")
    model_kwargs: dict[str, Any] = _opt({}, "constructor arguments of the net, as JSON")
    data_dir: str | None = _opt(
        None, "ImageFolder root with train/ and test/; unset: torchvision download into data/", metavar="DIR"
    )
    out_dir: str = _opt("runs", "runs are written to <out_dir>/<run_name>/", metavar="DIR")
    run_name: str | None = _opt(None, "the run's folder name (unset: the model name)", metavar="NAME")
    epochs: int = _opt(30, "epochs to train (with a time budget: set from the measured throughput)")
    total_steps: int = _opt(0, ">0: stop after this many optimiser steps (set from time_budget); 0: epochs x batches")
    time_budget: float = _opt(
        0.0, ">0: seconds for the whole run, sized from the throughput measured at its start", metavar="SECONDS"
    )
    epoch_overhead: float = _opt(
        0.5, "time budget: seconds each epoch spends beyond training and validation", metavar="SECONDS"
    )
    batch_size: int = _opt(256, "the global batch: under torchrun each of N ranks takes batch_size / N of it")
    accumulate: int = _opt(1, ">1: one backward per chunk of the batch (as that many torchrun ranks would)")
    optimizer: str = _opt("sgd", "sgd (Nesterov by default), adam or adamw", OPTIMIZERS)
    lr: float = _opt(0.1, "peak learning rate")
    momentum: float = _opt(0.9, "SGD momentum")
    nesterov: bool = _opt(True, "Nesterov momentum (SGD)")
    weight_decay: float = _opt(5e-4, "weight decay of conv and linear weights (biases and norm weights get none)")
    norm_bias_lr_scale: float = _opt(1.0, "lr multiplier of biases and norm weights")
    schedule: str = _opt("onecycle", "learning-rate schedule", SCHEDULES)
    warmup_fraction: float = _opt(0.2, "linear and onecycle schedules: share of the steps spent warming up")
    step_size: int = _opt(10, "step schedule: epochs between decays")
    gamma: float = _opt(0.1, "step and plateau schedules: decay factor")
    patience: int = _opt(3, "plateau schedule: epochs without a better val accuracy before a decay")
    label_smoothing: float = _opt(0.2, "label smoothing of the cross-entropy loss")
    aux_weight: float = _opt(0.3, "weight of each auxiliary loss (InceptionNet)")
    augment: str = _opt("fast", "fast: random shift (+ cutout); seed: shift, rotation, colour jitter, erasing "
                        "(kornia); none", AUGMENTATIONS)  # fmt: skip
    translate: int = _opt(2, "random shift of up to this many pixels (reflect padding)")
    cutout: int = _opt(0, ">0: fill a random square of this side with the mean colour (augment fast)")
    flip: str = _opt("alternate", "random: each image mirrored with p=1/2; alternate: every other epoch", FLIPS)
    dirac_init: bool = _opt(False, "identity-initialise convs with as many outputs as inputs or more")
    ema_decay: float = _opt(0.0, ">0: validate and keep an exponential moving average of the weights")
    tta: bool = _opt(True, "headline test accuracy with flip TTA (metrics.json holds every TTA level)")
    val_fraction: float = _opt(
        0.2,
        "share of the training set held out for validation (stratified); 0: train on all "
        "of it, no validation, best.pt is the last epoch's weights",
    )
    seed: int = _opt(DEFAULT_SEED, "seed of the split, the init, the batch order and the augmentation")
    per_class: int = _opt(0, ">0: only this many training images per class (smoke runs, tests)")
    test_per_class: int = _opt(0, ">0: only this many test images per class")
    max_steps_per_epoch: int = _opt(0, ">0: cut every epoch short (smoke runs, tests)")
    stop_after: int = _opt(0, ">0: stop after this many epochs in this invocation (continue with --resume)")
    device: str = _opt("auto", "auto (CUDA when there is one, else the CPU), cpu, cuda, cuda:N, mps", metavar="DEVICE")
    amp: bool = _opt(True, "bf16 autocast on CUDA and on CPUs with native bf16 (AMX, AVX512_BF16)")
    channels_last: bool = _opt(True, "channels-last memory format (faster with cuDNN and oneDNN)")
    compile: bool = _opt(False, "torch.compile the training net")
    threads: int = _opt(0, "CPU threads for torch; 0 keeps torch's default")
    eval_batch_size: int = _opt(1000, "batch of validation and test")
    save_every: float = _opt(
        60.0, "seconds between last.pt saves (also saved at the end, on Ctrl-C and SIGTERM)", metavar="SECONDS"
    )
    resume: str = _opt("", "PATH of a last.pt to continue, or auto: <out_dir>/<run_name>/last.pt if it exists "
                       "(true/false: aliases of auto/off); refuses a changed recipe")  # fmt: skip
    force_resume: bool = _opt(False, "resume even though the recipe differs from the one the run started with")
    init_from: str | None = _opt(
        None, "a checkpoint whose weights start this run (fresh optimiser and schedule)", metavar="CHECKPOINT"
    )
    progress: bool = _opt(True, "progress bars")

    def __post_init__(self) -> None:
        self.resume = normalize_resume(self.resume)

    @property
    def name(self) -> str:
        return self.run_name or self.model

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """A config saved by `to_dict` (config.json, a checkpoint); fields it lacks take their defaults."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown config fields {unknown}")
        return cls(**data)


def normalize_resume(value: str | bool | None) -> str:
    """`resume` as stored: "auto", "" (off) or a path; True/"true" mean auto, False/"false"/None off."""
    if value is None or isinstance(value, bool):
        return RESUME_AUTO if value else ""
    return RESUME_ALIASES.get(value.lower(), value)


def field_default(name: str) -> Any:
    """TrainConfig's own default of field `name` (what a saved config that lacks the field meant)."""
    f = next(f for f in fields(TrainConfig) if f.name == name)
    return f.default_factory() if f.default_factory is not MISSING else f.default


def recipe_changes(cfg: TrainConfig, saved: Mapping[str, Any]) -> list[str]:
    """The recipe fields where `cfg` differs from the `saved` config, as `name: saved -> cfg` (NOT_RECIPE aside;
    a budgeted run's plan aside)."""
    ignored = set(NOT_RECIPE) | (set(PLAN) if saved.get("time_budget") else set())
    changes = []
    for f in fields(TrainConfig):
        before = saved.get(f.name, field_default(f.name))
        if f.name not in ignored and before != getattr(cfg, f.name):
            changes.append(f"{f.name}: {before!r} -> {getattr(cfg, f.name)!r}")
    changes += [f"{k}: {saved[k]!r} -> (no such field)" for k in sorted(set(saved) - {f.name for f in fields(cfg)})]
    return changes


# Per-net recipes, all time-budgeted (see `time_budget`). What they share comes from the ablation in
# benchmarks/results/recipe_ablation.md: label smoothing 0.2, alternating flips, 8x lr on biases and norm
# weights, a one-cycle schedule; no EMA and no dirac init (neither helped there).
_FAST = dict(
    schedule="onecycle", label_smoothing=0.2, flip="alternate", norm_bias_lr_scale=8.0, ema_decay=0.0, dirac_init=False
)
_GPU = dict(_FAST, batch_size=512, lr=0.4, norm_bias_lr_scale=4.0, translate=4)
_CPU = dict(_FAST, batch_size=128, lr=0.1, translate=2, threads=2)
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    # A GPU: batch 512 (lr scaled linearly from 0.1 at 128), a 4 px shift for the longer runs, the nets as
    # designed (DropBlock, dropout, InceptionNet's stem at /2); 50 + 100 + 110 s, under 5 GPU-minutes in all.
    # This is the recipe of the shipped weights (benchmarks/results/train_gpu.md).
    "full": {
        "plain_cnn": dict(_GPU, time_budget=50.0),
        "inception_net": dict(_GPU, time_budget=100.0),
        "se_net": dict(_GPU, time_budget=110.0),
    },
    # A 2-core CPU in under an hour for the three: batch 128, a 2 px shift, light regularisation, and
    # InceptionNet's stem at /4 (a quarter of the FLOPs of /2).
    "cpu": {
        "plain_cnn": dict(_CPU, time_budget=600.0, model_kwargs={"drop_block": 0.0, "dropout": 0.2}),
        "inception_net": dict(
            _CPU, time_budget=1200.0, model_kwargs={"stem_downsample": 4, "dropout": 0.2, "aux_dropout": 0.3}
        ),
        "se_net": dict(_CPU, time_budget=1380.0, model_kwargs={"drop_block": 0.0, "dropout": 0.2}),
    },
    # As far as a CPU allows, resumable across sessions (`--resume`; `make train-all PROFILE=long
    # TRAIN_ARGS=--resume` continues every net where it stopped). The final weights: trained on all 50,000
    # training images (val_fraction 0, nothing held out, best.pt is the last epoch), with the recipe chosen
    # on the 40k/10k split. The fairness rule of the comparison is the same images seen by every net: 40
    # epochs of the 50,000 each (2.0 M, near the GPU run's SENet at 2.1 M), sized by epochs and not by time,
    # so that a run continued on another machine keeps its schedule. A 4 px shift as for the GPU's longer runs. Compiled where it did not lose
    # (benchmarks/results/train_cpu.md, AVX2 EPYC: PlainCNN 1.06x, SENet 1.02x, InceptionNet 0.92x, so
    # InceptionNet runs eager). Regularisation: the CPU recipe's, except SENet's weight decay, 1e-3 instead
    # of 5e-4, the one change of the 15-epoch SENet ablation (benchmarks/results/recipe_ablation_long.md)
    # that gained more than its half-point noise (+0.58 val); cutout, EMA, DropBlock 0.1 + dropout 0.6 and
    # label smoothing 0.1 did not. The other nets keep the CPU recipe's: nothing was measured on them at length.
    "long": {
        name: dict(RECIPE, time_budget=0.0, epochs=40, translate=4, val_fraction=0.0, compile=name != "inception_net")
        for name, RECIPE in (
            ("plain_cnn", dict(_CPU, model_kwargs={"drop_block": 0.0, "dropout": 0.2})),
            ("inception_net", dict(_CPU, model_kwargs={"stem_downsample": 4, "dropout": 0.2, "aux_dropout": 0.3})),
            ("se_net", dict(_CPU, weight_decay=1e-3, model_kwargs={"drop_block": 0.0, "dropout": 0.2})),
        )
    },
    # Refine a trained net on one CPU core beside other work: warm start from --init-from (required), a short
    # warm-up to 0.04 at batch 128 (the GPU recipe's lr per image, scaled down 2.5x), then one-cycle decay to
    # zero over the budget. Measured (benchmarks/results/finetune_cpu.md): 110 minutes on the shipped SENet
    # of the GPU recipe added 0.25 test points, within one standard error, so it was not shipped.
    "finetune": {
        "se_net": dict(
            _CPU, lr=0.04, warmup_fraction=0.1, translate=4, norm_bias_lr_scale=4.0, threads=1, time_budget=6600.0
        ),
    },
    "smoke": {
        name: dict(epochs=1, per_class=40, test_per_class=20, batch_size=50, eval_batch_size=200, tta=False)
        for name in ("plain_cnn", "inception_net", "se_net")
    },
}


def recipe(model: str, profile: str = "full", **overrides: Any) -> TrainConfig:
    """The default config of `model` under `profile`, with `overrides` applied last."""
    if profile not in RECIPES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    if model not in RECIPES[profile]:
        raise ValueError(f"profile {profile!r} has no recipe for {model}; it has {', '.join(RECIPES[profile])}")
    cfg = replace(TrainConfig(model=model), **{**RECIPES[profile][model], **overrides})
    if profile in WARM_START_PROFILES and not cfg.init_from:
        raise ValueError(f"profile {profile!r} refines a trained net: pass --init-from CHECKPOINT")
    return cfg


def resolve_profile(profile: str, device_type: str, device_option: str = "auto") -> tuple[str, str]:
    """The profile a run uses, and how to show it: `auto` follows the device, so a CPU does not get a
    GPU-sized recipe. `device_type` is the resolved device's type; `device_option` what --device said."""
    if profile != AUTO:
        return profile, profile
    name = AUTO_PROFILES.get(device_type, AUTO_OTHER)
    if device_type == "cuda":
        why = "CUDA device"
    elif device_option == AUTO:
        why = "no CUDA device"
    else:
        why = f"--device {device_option}"
    return name, f"{name} ({AUTO}: {why})"


def validate(cfg: TrainConfig) -> None:
    """Fail early, with the allowed values, on a config that cannot run."""
    from training.models import list_models

    checks = [
        (cfg.model in list_models(), f"model must be one of {list_models()}"),
        (cfg.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}"),
        (cfg.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}"),
        (cfg.augment in AUGMENTATIONS, f"augment must be one of {AUGMENTATIONS}"),
        (cfg.flip in FLIPS, f"flip must be one of {FLIPS}"),
        (cfg.time_budget >= 0 and cfg.total_steps >= 0, "time_budget and total_steps must not be negative"),
        (cfg.epochs >= 1 and cfg.batch_size >= 1, "epochs and batch_size must be positive"),
        (0.0 <= cfg.ema_decay < 1.0, "ema_decay must be in [0, 1)"),
        (0.0 <= cfg.val_fraction < 1.0, "val_fraction must be in [0, 1)"),
        (cfg.val_fraction > 0 or cfg.schedule != "plateau", "the plateau schedule needs validation: val_fraction > 0"),
        (cfg.accumulate >= 1 and cfg.batch_size % cfg.accumulate == 0, "batch_size must be a multiple of accumulate"),
    ]
    errors = [msg for ok, msg in checks if not ok]
    if errors:
        raise ValueError("; ".join(errors))
