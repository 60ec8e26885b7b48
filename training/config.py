"""The typed training configuration, its per-net recipes, and its command-line form."""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from training.constants import DEFAULT_SEED

PROFILES = ("full", "cpu", "smoke")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("onecycle", "cosine", "step", "plateau", "constant")


@dataclass
class TrainConfig:
    """Everything one training run depends on; saved in every checkpoint and in config.json."""

    model: str = "se_net"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None  # None: torchvision download into ./data; else an ImageFolder root
    out_dir: str = "runs"
    run_name: str | None = None  # default: the model name
    epochs: int = 30
    batch_size: int = 256
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    warmup_fraction: float = 0.2  # one-cycle: share of steps spent warming up
    step_size: int = 10  # step schedule: epochs between decays
    gamma: float = 0.1  # step and plateau schedules: decay factor
    patience: int = 3  # plateau schedule
    label_smoothing: float = 0.1
    aux_weight: float = 0.3  # weight of each auxiliary loss (InceptionNet)
    augment: str = "fast"
    ema_decay: float = 0.0  # 0 disables the exponential moving average of the weights
    tta: bool = True  # flip test-time augmentation in the final test (per-epoch validation goes without)
    val_fraction: float = 0.2
    seed: int = DEFAULT_SEED
    per_class: int = 0  # >0: use only this many training images per class (smoke runs, tests)
    test_per_class: int = 0  # >0: evaluate on only this many test images per class
    max_steps_per_epoch: int = 0  # >0: cut every epoch short (smoke runs, tests)
    stop_after: int = 0  # >0: stop after this many epochs in this invocation (resume later)
    device: str = "auto"
    amp: bool = True  # bf16 autocast, CUDA only
    channels_last: bool = True
    compile: bool = False
    threads: int = 0  # CPU threads for torch; 0 keeps torch's default
    eval_batch_size: int = 1000
    resume: bool = False
    progress: bool = True

    @property
    def name(self) -> str:
        return self.run_name or self.model

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Per-net recipes. `full` is meant for a GPU, `cpu` for a 2-core machine in about an hour
# for all three nets, `smoke` checks every output in minutes.
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "plain_cnn": dict(epochs=40, lr=0.2, batch_size=512, ema_decay=0.999),
        "inception_net": dict(epochs=30, lr=0.2, batch_size=512, ema_decay=0.999),
        "se_net": dict(epochs=40, lr=0.2, batch_size=512, ema_decay=0.999),
    },
    # About 55 minutes for the three on 2 cores: short one-cycle schedules, light regularisation.
    "cpu": {
        "plain_cnn": dict(
            epochs=7, lr=0.2, batch_size=256, threads=2, model_kwargs={"drop_block": 0.0, "dropout": 0.2}
        ),
        "inception_net": dict(
            epochs=2,
            lr=0.1,
            batch_size=128,
            threads=2,
            model_kwargs={"stem_downsample": 4, "dropout": 0.2, "aux_dropout": 0.3},
        ),
        "se_net": dict(epochs=2, lr=0.1, batch_size=128, threads=2, model_kwargs={"drop_block": 0.0, "dropout": 0.2}),
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
    base = TrainConfig(model=model)
    return replace(base, **{**RECIPES[profile].get(model, {}), **overrides})


def _base_type(tp: Any) -> Any:
    """The non-None type of an annotation such as `str | None`."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One `--option` per TrainConfig field (default: unset, so recipes fill the gaps)."""
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        tp = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        if f.name == "model":
            continue
        if tp is bool:
            parser.add_argument(flag, type=_bool, default=None, metavar="BOOL", help=f"(default {f.default})")
        elif typing.get_origin(tp) is dict or tp is dict:
            parser.add_argument(flag, type=json.loads, default=None, metavar="JSON", help="constructor arguments")
        else:
            default = f.default if f.default is not dataclasses.MISSING else None
            parser.add_argument(flag, type=tp, default=None, help=f"(default {default})")


def config_from_args(args: argparse.Namespace, model: str, profile: str) -> TrainConfig:
    """Recipe of `model` under `profile`, overridden by every option given on the command line."""
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    overrides.pop("model", None)
    cfg = recipe(model, profile, **overrides)
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    """Fail early, with the allowed values, on a config that cannot run."""
    from training.data import AUGMENTATIONS
    from training.models import list_models

    checks = [
        (cfg.model in list_models(), f"model must be one of {list_models()}"),
        (cfg.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}"),
        (cfg.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}"),
        (cfg.augment in AUGMENTATIONS, f"augment must be one of {AUGMENTATIONS}"),
        (cfg.epochs >= 1 and cfg.batch_size >= 1, "epochs and batch_size must be positive"),
        (0.0 <= cfg.ema_decay < 1.0, "ema_decay must be in [0, 1)"),
        (0.0 < cfg.val_fraction < 1.0, "val_fraction must be in (0, 1)"),
    ]
    errors = [msg for ok, msg in checks if not ok]
    if errors:
        raise ValueError("; ".join(errors))
