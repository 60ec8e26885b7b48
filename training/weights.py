"""Where a fresh run's weights start: the nets' own initialisation, identity convs, or another checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from training.checkpoint import load_checkpoint


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


def warm_start(model: nn.Module, path: str, log: Callable[[str], Any] = print) -> None:
    """Start from the weights of another checkpoint of the same net (e.g. shipped fp16 weights, which
    lack the auxiliary heads: those keep their fresh initialisation)."""
    ckpt = load_checkpoint(path)
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("aux") for k in missing):
        raise ValueError(f"{path} does not match this net: missing {missing}, unexpected {unexpected}")
    log(f"weights from {path} ({ckpt['model']}, epoch {ckpt['epoch']}); {len(missing)} tensors fresh")
