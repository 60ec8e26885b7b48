"""InceptionNet: GoogLeNet (Szegedy et al., 2015) with a stem adapted to 32x32 inputs."""

from __future__ import annotations

import torch
from torch import nn

from cifarlens_runtime.constants import IN_CHANNELS, NUM_CLASSES
from training.models.base import CifarNet
from training.models.layers import ConvBNAct, Inception, InceptionAux

# (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj), table 1 of the paper.
INCEPTION_WIDTHS: dict[str, tuple[int, ...]] = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}
# Max-pool (stride 2) before these modules, as in the paper. The auxiliary heads pool to 4x4,
# so they also work on the 2 px and 1 px maps of the paper's stem.
POOL_BEFORE = ("inception4a", "inception5a")


def make_stem(downsample: int) -> nn.Sequential:
    """GoogLeNet's stem (conv1, conv2 1x1, conv3 3x3 to 192 channels) shrinking 32 px by `downsample`.

    8 is the paper's stem unchanged (7x7/2 conv and two 2x pools: inception 3 runs at 4 px),
    4 and 2 use a 3x3/1 conv1 and keep one or two pools, 1 keeps full resolution (as in the
    common CIFAR ports of GoogLeNet).
    """
    if downsample not in STEM_DOWNSAMPLE:
        raise ValueError(f"stem_downsample must be one of {STEM_DOWNSAMPLE}, got {downsample}")
    if downsample == 8:
        conv1 = [ConvBNAct(IN_CHANNELS, 64, 7, stride=2), nn.MaxPool2d(2)]
    elif downsample == 4:
        conv1 = [ConvBNAct(IN_CHANNELS, 64, 3), nn.MaxPool2d(2)]
    else:
        conv1 = [ConvBNAct(IN_CHANNELS, 64, 3)]
    tail = [nn.MaxPool2d(2)] if downsample >= 2 else []
    return nn.Sequential(*conv1, ConvBNAct(64, 64, 1), ConvBNAct(64, 192, 3), *tail)


STEM_DOWNSAMPLE = (1, 2, 4, 8)


class InceptionNet(CifarNet):
    """GoogLeNet body (inception 3a..5b, the paper's widths) and its two auxiliary heads.

    The ImageNet stem shrinks 224 px to 28 px before inception 3a; on 32 px inputs the same
    stem leaves 4 px. `stem_downsample` (see `make_stem`) picks how much the stem shrinks;
    the default 2 runs inception 3, 4 and 5 at 16, 8 and 4 px. The auxiliary classifiers
    (after 4a and 4d) are used in training mode only; in eval mode the net returns the logits.
    """

    feature_layers = ("stem", *INCEPTION_WIDTHS)
    # benchmarks/results/cam_cpu.md, 1,000 test images: Grad-CAM at inception4e was blank for 29 %; HiResCAM at
    # inception4d for none, with the largest deletion margin of the candidates and no worse localisation.
    cam_method, cam_layer = "hirescam", "inception4d"
    inference_kwargs = {"aux_logits": False}

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        aux_logits: bool = True,
        dropout: float = 0.4,
        aux_dropout: float = 0.7,
        stem_downsample: int = 2,
    ) -> None:
        super().__init__()
        self._record(
            num_classes=num_classes,
            aux_logits=aux_logits,
            dropout=dropout,
            aux_dropout=aux_dropout,
            stem_downsample=stem_downsample,
        )
        self.stem = make_stem(stem_downsample)
        for name, widths in INCEPTION_WIDTHS.items():
            self.add_module(name, Inception(*widths))
        self.pool = nn.MaxPool2d(2)
        self.aux1 = InceptionAux(512, num_classes, aux_dropout) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes, aux_dropout) if aux_logits else None
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(1024, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        aux: list[torch.Tensor] = []
        for name in INCEPTION_WIDTHS:
            if name in POOL_BEFORE:
                x = self.pool(x)
            x = getattr(self, name)(x)
            if self.training and self.aux1 is not None and self.aux2 is not None:
                if name == "inception4a":
                    aux.append(self.aux1(x))
                elif name == "inception4d":
                    aux.append(self.aux2(x))
        logits = self.head(x)
        if aux:
            return logits, aux[0], aux[1]
        return logits
