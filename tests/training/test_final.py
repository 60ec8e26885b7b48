"""The end of a run: one test at every TTA level, named as metrics.json names them."""

import torch
from torch import nn

from training import final
from training.data import TensorLoader


class LeftHalf(nn.Module):
    """Says class 1 when the left half of the image is brighter, else 0: the mirror swaps its answer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right = x[..., :16].mean((1, 2, 3)), x[..., 16:].mean((1, 2, 3))
        return torch.stack([right - left, left - right], 1) * 10


def test_levels_are_none_flip_and_flip_translate() -> None:
    images = torch.zeros(8, 32, 32, 3, dtype=torch.uint8)
    images[:, :, :16] = 255  # all brighter on the left
    labels = torch.ones(8, dtype=torch.long)
    results = final.test_levels(LeftHalf(), TensorLoader(images, labels, 4), torch.device("cpu"), amp=False)
    assert list(results) == ["none", "flip", "flip_translate"]
    assert results["none"].acc == 1.0 and results["none"].images == 8
    # With the mirror averaged in, the two answers cancel out; argmax of a tie is class 0.
    assert results["flip"].acc == 0.0
