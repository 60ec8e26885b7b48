"""Parameters and forward FLOPs, as metrics.json records them."""

import pytest
import torch

from training.cost import count_params, forward_mflops


def test_a_conv_costs_what_its_shape_says() -> None:
    """3 -> 4 channels, 3x3, on 32x32: 2 x 32 x 32 x 4 x 27 FLOPs (a multiply and an add each)."""
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=True).train()
    assert count_params(conv) == 4 * 27 + 4
    assert forward_mflops(conv) == pytest.approx(2 * 32 * 32 * 4 * 27 / 1e6)
    assert conv.training  # measured in eval mode, handed back in the mode it came in
