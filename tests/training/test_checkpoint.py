"""Self-describing checkpoints: round trips, half-precision copies, and what a shipped copy leaves out."""

from pathlib import Path

import pytest
import torch

from cifarlens_runtime.constants import CLASSES, MEAN
from training.checkpoint import checkpoint_dict, load_checkpoint, model_from_checkpoint, publishable, save_checkpoint
from training.models import create_model


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("se_net", drop_block=0.2).eval()
    ckpt = checkpoint_dict(model, "se_net", config={"lr": 0.1}, epoch=3, metrics={"val_acc": 0.5})
    path = save_checkpoint(ckpt, tmp_path / "x.pt")
    restored, loaded = model_from_checkpoint(path)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(restored(x), model(x), rtol=0, atol=0)
    assert loaded["classes"] == list(CLASSES) and loaded["normalization"]["mean"] == list(MEAN)
    assert loaded["model_kwargs"]["drop_block"] == 0.2 and loaded["epoch"] == 3
    assert loaded["feature_layers"] == list(model.feature_layers)
    # Half-precision copies (the shipped weights) load back into float32.
    half, _ = model_from_checkpoint(save_checkpoint(checkpoint_dict(model, "se_net", half=True), tmp_path / "h.pt"))
    torch.testing.assert_close(half(x), model(x), rtol=1e-2, atol=1e-2)


def test_publishable_copy_is_half_precision_without_training_state(tmp_path: Path) -> None:
    model = create_model("plain_cnn").eval()
    ckpt = checkpoint_dict(model, "plain_cnn", metrics={"test_acc": 0.5}, train_state={"optimizer": {}})
    shipped = publishable(ckpt)
    assert "train_state" not in shipped and shipped["metrics"] == {"test_acc": 0.5}
    floats = [v for v in shipped["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert ckpt["state_dict"]["head.1.weight"].dtype == torch.float32  # the original is untouched
    restored, _ = model_from_checkpoint(save_checkpoint(shipped, tmp_path / "p.pt"))
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(restored(x), model(x), rtol=1e-2, atol=1e-2)


def test_shipped_inception_checkpoint_has_no_auxiliary_heads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("inception_net", stem_downsample=4).eval()
    shipped = publishable(checkpoint_dict(model, "inception_net"))
    assert not any(k.startswith(("aux1.", "aux2.")) for k in shipped["state_dict"])
    assert shipped["model_kwargs"]["aux_logits"] is False
    restored, _ = model_from_checkpoint(save_checkpoint(shipped, tmp_path / "i.pt"))
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(restored(x), model(x), rtol=1e-2, atol=1e-2)


def test_anything_else_is_refused_in_words(tmp_path: Path) -> None:
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a cifarlens checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
