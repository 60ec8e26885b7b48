"""Building blocks shared by the three nets: ConvBNAct, SqueezeExcite, Inception, DropBlock."""

from __future__ import annotations

import torch
from dropblock import DropBlock2D
from torch import nn

__all__ = [
    "ConvBNAct",
    "DropBlock",
    "Inception",
    "InceptionAux",
    "SqueezeExcite",
    "LEAF_MODULES",
    "set_dropblock_progress",
]


class ConvBNAct(nn.Sequential):
    """Conv (no bias, BN follows) -> BatchNorm -> activation, 'same' padding."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        act: type[nn.Module] | None = nn.ReLU,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if act is not None:
            layers.append(act(inplace=True))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Channel attention of Hu et al. (2018): global pool, bottleneck MLP, sigmoid gate."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))
        return x * s


class DropBlock(DropBlock2D):
    """DropBlock (Ghiasi et al., 2018) from the `dropblock` package, with a linear ramp.

    The drop probability is set by `set_dropblock_progress` (the fraction of training done)
    rather than by counting calls, so resumed, short and long runs see the same schedule. It is
    held in a non-persistent buffer, not a Python float: `torch.compile` then sees one graph for
    the whole ramp instead of recompiling at every new value, and checkpoints keep no extra key.
    The mask is sampled on the input's device (the package samples on the CPU and copies, a
    host-device sync per call on a GPU). In eval mode, and for a net built without DropBlock
    (`drop_prob=0`), the identity.
    """

    drop_prob: torch.Tensor

    def __init__(self, drop_prob: float, block_size: int) -> None:
        super().__init__(drop_prob=0.0, block_size=block_size)
        del self.drop_prob
        self.register_buffer("drop_prob", torch.zeros(()), persistent=False)
        self.max_drop_prob = drop_prob

    def set_progress(self, fraction: float) -> None:
        self.drop_prob.fill_(self.max_drop_prob * min(max(fraction, 0.0), 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.max_drop_prob == 0.0:
            return x
        gamma = self.drop_prob.to(x.dtype) / self.block_size**2
        seeds = (torch.rand(x.shape[0], 1, *x.shape[2:], device=x.device) < gamma).to(x.dtype)
        pad = self.block_size // 2
        dropped = nn.functional.max_pool2d(seeds, self.block_size, stride=1, padding=pad)
        keep = 1.0 - dropped[..., : x.shape[2], : x.shape[3]]  # an even block size pools one row and column more
        return x * keep * (keep.numel() / keep.sum().clamp_min(1.0))

    def extra_repr(self) -> str:
        return f"max_drop_prob={self.max_drop_prob}, block_size={self.block_size}"


# Modules that torch.fx must not trace into (DropBlock branches on the training mode).
LEAF_MODULES: list[type[nn.Module]] = [DropBlock2D]


def set_dropblock_progress(model: nn.Module, fraction: float) -> None:
    """Set every DropBlock of `model` to `fraction` (0..1) of its final drop probability."""
    for m in model.modules():
        if isinstance(m, DropBlock):
            m.set_progress(fraction)


class Inception(nn.Module):
    """GoogLeNet inception module (the paper's four branches: 1x1, 1x1->3x3, 1x1->5x5, pool->1x1)."""

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
    ) -> None:
        super().__init__()
        self.branch1 = ConvBNAct(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(ConvBNAct(in_channels, ch3x3red, 1), ConvBNAct(ch3x3red, ch3x3, 3))
        self.branch3 = nn.Sequential(ConvBNAct(in_channels, ch5x5red, 1), ConvBNAct(ch5x5red, ch5x5, 5))
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), ConvBNAct(in_channels, pool_proj, 1)
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """GoogLeNet auxiliary classifier: pool to 4x4, 1x1 conv to 128, FC 1024, dropout, FC."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.conv = ConvBNAct(in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.act = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(self.pool(x)), 1)
        return self.fc2(self.dropout(self.act(self.fc1(x))))
