"""Where a fresh run's weights start: identity convs, or another checkpoint of the same net."""

from pathlib import Path

import pytest
import torch

from training.checkpoint import checkpoint_dict, publishable, save_checkpoint
from training.models import create_model
from training.weights import dirac_init_, warm_start


def test_dirac_init_makes_square_convs_pass_their_input_through() -> None:
    conv = torch.nn.Conv2d(8, 12, 5, padding=2, bias=False)
    assert dirac_init_(conv) == 1
    x = torch.randn(2, 8, 9, 9)
    torch.testing.assert_close(conv(x)[:, :8], x)
    shrinking = torch.nn.Conv2d(8, 4, 3, padding=1)
    before = shrinking.weight.clone()
    assert dirac_init_(shrinking) == 0 and torch.equal(before, shrinking.weight)


def test_warm_start_loads_a_shipped_checkpoint_and_refuses_another_net(tmp_path: Path) -> None:
    """`--init-from`: the weights of a (half-precision, aux-less) shipped checkpoint start a training net; the
    auxiliary heads keep their fresh initialisation; a checkpoint of another net is refused, in words."""
    torch.manual_seed(0)
    source = create_model("inception_net", stem_downsample=4)
    path = save_checkpoint(publishable(checkpoint_dict(source, "inception_net")), tmp_path / "i.pt")
    torch.manual_seed(1)
    target = create_model("inception_net", stem_downsample=4)
    fresh_aux = target.aux1.fc2.weight.detach().clone()
    lines: list[str] = []
    warm_start(target, str(path), log=lines.append)
    for key, value in source.state_dict().items():
        if not key.startswith("aux"):
            torch.testing.assert_close(target.state_dict()[key], value.half().to(value.dtype), msg=key)
    torch.testing.assert_close(target.aux1.fc2.weight, fresh_aux)
    assert lines and str(path) in lines[0] and "fresh" in lines[0]
    with pytest.raises(ValueError, match="does not match this net"):
        warm_start(create_model("se_net"), str(path), log=lambda _: None)
