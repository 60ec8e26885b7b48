import pytest
import torch

from training.featuremaps import extract
from training.models import create_model, list_models
from training.models.layers import DropBlock, set_dropblock_progress

# Measured parameter counts without the auxiliary heads (about 2.78M, 6.0M and 1.53M).
EXPECTED_PARAMS = {"plain_cnn": 2_783_258, "inception_net": 5_983_402, "se_net": 1_526_927}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("name", list_models())
def test_output_shape_and_parameter_count(name: str) -> None:
    model = create_model(name).eval()
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 10)
    params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("aux"))
    assert params == EXPECTED_PARAMS[name]


@pytest.mark.parametrize("name", list_models())
def test_eval_mode_is_deterministic(name: str) -> None:
    model = create_model(name).eval()
    set_dropblock_progress(model, 1.0)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("name", ["plain_cnn", "se_net"])
def test_dropblock_active_only_in_training(name: str) -> None:
    model = create_model(name, drop_block=0.3, dropout=0.0)
    blocks = [m for m in model.modules() if isinstance(m, DropBlock)]
    assert blocks, "the net should contain DropBlock layers"
    set_dropblock_progress(model, 1.0)
    assert all(b.drop_prob == pytest.approx(0.3) for b in blocks)
    x = torch.randn(4, 3, 32, 32)
    block = blocks[0].train()
    y = block(torch.ones(4, 8, 16, 16))
    assert (y == 0).any(), "DropBlock should zero blocks in training mode"
    assert torch.equal(block.eval()(torch.ones(4, 8, 16, 16)), torch.ones(4, 8, 16, 16))
    model.eval()
    assert torch.equal(model(x), model(x))
    set_dropblock_progress(model, 0.0)
    assert all(b.drop_prob == 0.0 for b in blocks)


def test_inception_returns_auxiliary_logits_only_in_training() -> None:
    model = create_model("inception_net")
    x = torch.randn(2, 3, 32, 32)
    out = model.train()(x)
    assert isinstance(out, tuple) and len(out) == 3 and all(o.shape == (2, 10) for o in out)
    assert isinstance(model.eval()(x), torch.Tensor)


@pytest.mark.parametrize("stem", [1, 2, 4, 8])
def test_inception_stem_variants(stem: int) -> None:
    model = create_model("inception_net", stem_downsample=stem).eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize("name", list_models())
def test_declared_layers_extract_with_logits_equal_to_forward(name: str) -> None:
    model = create_model(name).eval()
    x = torch.randn(2, 3, 32, 32)
    acts = extract(model, x)
    assert list(acts) == ["logits", *model.feature_layers]
    torch.testing.assert_close(acts["logits"], model(x))
    for layer in model.feature_layers:
        assert acts[layer].ndim == 4 and acts[layer].shape[0] == 2


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="plain_cnn"):
        create_model("resnet")


def test_dropblock_matches_the_package() -> None:
    """Same seed, same blocks dropped and same rescaling as `dropblock.DropBlock2D` at that probability."""
    from dropblock import DropBlock2D

    x = torch.randn(3, 4, 16, 16)
    for block_size in (3, 4):
        ours = DropBlock(0.4, block_size).train()
        ours.set_progress(0.5)
        theirs = DropBlock2D(drop_prob=0.2, block_size=block_size).train()
        torch.manual_seed(1)
        expected = theirs(x)
        torch.manual_seed(1)
        assert torch.allclose(ours(x), expected)


def test_dropblock_ramp_does_not_recompile() -> None:
    """The probability is a buffer, so torch.compile keeps one graph over the ramp (a float would
    recompile at each new value); and no buffer reaches the state dict, so old weights load strictly."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    block = DropBlock(0.3, 3).train()
    assert "drop_prob" not in block.state_dict()
    compiled = torch.compile(block, backend="eager")
    x = torch.ones(2, 4, 8, 8)
    for fraction in (0.0, 0.25, 0.5, 1.0):
        block.set_progress(fraction)
        compiled(x)
    assert counters["stats"]["unique_graphs"] == 1
    assert not counters["recompiles"]
    block.set_progress(1.0)
    torch.manual_seed(0)
    assert (compiled(torch.ones(64, 4, 8, 8)) == 0).any()
