"""SENet: five convolutions, each followed by a Squeeze-Excitation block."""

from __future__ import annotations

import torch
from torch import nn

from cifarlens_runtime.constants import IN_CHANNELS, NUM_CLASSES
from training.models.base import CifarNet
from training.models.layers import ConvBNAct, DropBlock, SqueezeExcite

WIDTHS = (64, 96, 144, 192, 272)
KERNELS = (7, 5, 5, 3, 3)
REDUCTIONS = (8, 12, 16, 16, 32)
# AvgPool + DropBlock follow conv 1, 3 and 5 (32 -> 16 -> 8 -> 4 px).
POOLED = (1, 3, 5)


class SENet(CifarNet):
    """Conv-BN-ReLU-SE stages; pooling and DropBlock after stages 1, 3 and 5; MLP head."""

    feature_layers = ("se1", "se2", "se3", "se4", "se5")
    # benchmarks/results/cam_cpu.md, 1,000 test images: Grad-CAM at se5 was never blank; LayerCAM at se4 neither,
    # with a deletion margin as large (0.113 against 0.110) and more of its mass on the object (65 % against 58 %).
    cam_method, cam_layer = "layercam", "se4"

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        drop_block: float = 0.1,
        block_size: int = 3,
        dropout: float = 0.6,
        hidden: int = 1000,
    ) -> None:
        super().__init__()
        self._record(
            num_classes=num_classes, drop_block=drop_block, block_size=block_size, dropout=dropout, hidden=hidden
        )
        in_ch = IN_CHANNELS
        for i, (width, k, r) in enumerate(zip(WIDTHS, KERNELS, REDUCTIONS), start=1):
            self.add_module(f"se{i}", nn.Sequential(ConvBNAct(in_ch, width, k), SqueezeExcite(width, r)))
            self.add_module(
                f"down{i}",
                nn.Sequential(nn.AvgPool2d(2), DropBlock(drop_block, block_size)) if i in POOLED else nn.Identity(),
            )
            in_ch = width
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(in_ch, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, len(WIDTHS) + 1):
            x = getattr(self, f"down{i}")(getattr(self, f"se{i}")(x))
        return self.head(x)
