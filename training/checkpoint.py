"""Self-describing checkpoints: weights plus everything export, serving and the UI need.

A checkpoint is a plain dict of tensors, strings and numbers (loadable with
`torch.load(weights_only=True)`, the default since torch 2.6), never a pickled module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cifarlens_runtime.constants import CLASSES, normalization
from cifarlens_runtime.files import replacing
from training.models import MODELS, CifarNet, create_model

FORMAT = "cifarlens-checkpoint/1"


def checkpoint_dict(
    model: CifarNet,
    model_name: str,
    *,
    config: dict[str, Any] | None = None,
    epoch: int = 0,
    metrics: dict[str, Any] | None = None,
    half: bool = False,
    **training_state: Any,
) -> dict[str, Any]:
    """Describe `model` fully; `training_state` (optimizer, scheduler, rng, ...) rides along for --resume."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    return {
        "format": FORMAT,
        "model": model_name,
        "model_kwargs": dict(model.arch_kwargs),
        "state_dict": state,
        "config": dict(config or {}),
        "epoch": int(epoch),
        "metrics": dict(metrics or {}),
        "classes": list(CLASSES),
        "normalization": normalization(),
        "feature_layers": list(model.feature_layers),
        **training_state,
    }


def save_checkpoint(ckpt: dict[str, Any], path: str | Path) -> Path:
    """Write atomically (temp file then rename), so a crash never leaves a truncated checkpoint."""
    with replacing(path) as tmp:
        torch.save(ckpt, tmp)
    return Path(path)


def publishable(ckpt: dict[str, Any]) -> dict[str, Any]:
    """A copy to ship: half-precision weights of the inference net only (no auxiliary heads), no
    optimiser or RNG state. It loads with `model_from_checkpoint` like any other checkpoint."""
    kwargs = {**ckpt["model_kwargs"], **MODELS[ckpt["model"]].inference_kwargs}
    keep = create_model(ckpt["model"], **kwargs).state_dict().keys()
    state = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items() if k in keep}
    shipped = {k: v for k, v in ckpt.items() if k != "train_state"}
    return shipped | {"state_dict": state, "model_kwargs": kwargs}


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`; anything else fails with a clear message."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a cifarlens checkpoint (expected format {FORMAT!r})")
    return ckpt


def model_from_checkpoint(
    source: str | Path | dict[str, Any], device: str | torch.device = "cpu"
) -> tuple[CifarNet, dict[str, Any]]:
    """Rebuild the net of a checkpoint (path or loaded dict) in eval mode, in float32."""
    ckpt = source if isinstance(source, dict) else load_checkpoint(source)
    model = create_model(ckpt["model"], **ckpt["model_kwargs"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()})
    return model.to(device).eval(), ckpt
