"""PlainCNN: five Conv-BN-ReLU(-DropBlock)-AvgPool blocks and a wide MLP head."""

from __future__ import annotations

import torch
from torch import nn

from cifarlens_runtime.constants import IN_CHANNELS, NUM_CLASSES
from training.models.base import CifarNet
from training.models.layers import ConvBNAct, DropBlock

WIDTHS = (32, 64, 128, 256, 512)
KERNELS = (7, 5, 5, 3, 3)
# DropBlock only where the map is large enough for a 3x3 block to mean something (32, 16, 8 px).
DROPBLOCK_BLOCKS = (1, 2, 3)


class PlainCNN(CifarNet):
    """A VGG-like stack that halves the resolution after every block (32 -> 1)."""

    feature_layers = ("block1", "block2", "block3", "block4", "block5")
    # benchmarks/results/cam_cpu.md, 1,000 test images: Grad-CAM at block2 was blank for 1.1 %; LayerCAM at the
    # 4x4 block3 for none, with the largest deletion margin of the candidates and the same localisation.
    cam_method, cam_layer = "layercam", "block3"

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        drop_block: float = 0.1,
        block_size: int = 3,
        dropout: float = 0.4,
        hidden: int = 2000,
    ) -> None:
        super().__init__()
        self._record(
            num_classes=num_classes, drop_block=drop_block, block_size=block_size, dropout=dropout, hidden=hidden
        )
        in_ch = IN_CHANNELS
        for i, (width, k) in enumerate(zip(WIDTHS, KERNELS), start=1):
            layers: list[nn.Module] = [ConvBNAct(in_ch, width, k)]
            if i in DROPBLOCK_BLOCKS:
                layers.append(DropBlock(drop_block, block_size))
            layers.append(nn.AvgPool2d(2))
            self.add_module(f"block{i}", nn.Sequential(*layers))
            in_ch = width
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_ch, hidden),
            nn.LeakyReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.feature_layers:
            x = getattr(self, name)(x)
        return self.head(x)
