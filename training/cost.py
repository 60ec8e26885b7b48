"""What a net costs, as metrics.json records it: parameters and forward FLOPs per image."""

from __future__ import annotations

import torch
from torch import nn

from cifarlens_runtime.constants import IMAGE_SIZE, IN_CHANNELS


def count_params(model: nn.Module) -> int:
    """Every parameter, auxiliary heads included."""
    return sum(p.numel() for p in model.parameters())


def forward_mflops(model: nn.Module) -> float:
    """Forward FLOPs of one image in eval mode (torch.utils.flop_counter), in millions."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, IN_CHANNELS, IMAGE_SIZE, IMAGE_SIZE, device=device))
    model.train(was_training)
    return counter.get_total_flops() / 1e6
