import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from training.checkpoint import checkpoint_dict, load_checkpoint, model_from_checkpoint, save_checkpoint
from training.config import TrainConfig, recipe
from training.constants import CLASSES, MEAN
from training.models import create_model
from training.trainer import fit


def tiny_config(data_dir: Path, out_dir: Path, **kw) -> TrainConfig:
    base = recipe("plain_cnn", "smoke")
    defaults = dict(epochs=2, batch_size=16, per_class=0, test_per_class=0, augment="seed", ema_decay=0.9,
                    progress=False, threads=1)  # fmt: skip
    return replace(base, data_dir=str(data_dir), out_dir=str(out_dir), **{**defaults, **kw})


def test_resume_ends_with_the_same_weights(tiny_image_folder: Path, tmp_path: Path) -> None:
    straight = tiny_config(tiny_image_folder, tmp_path / "a")
    fit(straight)
    first_half = tiny_config(tiny_image_folder, tmp_path / "b", stop_after=1)
    fit(first_half)
    assert load_checkpoint(tmp_path / "b" / "plain_cnn" / "last.pt")["epoch"] == 1
    fit(replace(first_half, stop_after=0, resume=True))
    a = load_checkpoint(tmp_path / "a" / "plain_cnn" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "plain_cnn" / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    for key, value in a["train_state"]["model"].items():
        torch.testing.assert_close(value, b["train_state"]["model"][key], rtol=1e-5, atol=1e-6, msg=key)
    assert a["train_state"]["history"][1]["val_acc"] == b["train_state"]["history"][1]["val_acc"]


def test_run_writes_every_output(tiny_image_folder: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_image_folder, tmp_path)
    metrics = fit(cfg)
    run = tmp_path / "plain_cnn"
    for name in ("best.pt", "last.pt", "metrics.json", "history.csv", "curves.png", "confusion.png", "config.json"):
        assert (run / name).is_file(), name
    saved = json.loads((run / "metrics.json").read_text())
    for key in ("model", "val_acc", "test_acc", "epochs", "train_seconds", "images_per_second", "device", "params",
                "mflops"):  # fmt: skip
        assert key in saved, key
    assert saved == metrics and saved["epochs"] == 2 and saved["test_images"] == 40
    best = load_checkpoint(run / "best.pt")
    assert best["metrics"]["test_acc"] == saved["test_acc"]
    assert best["config"]["model"] == "plain_cnn" and "train_state" not in best


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
    from training.checkpoint import publishable

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


def test_time_budget_sizes_the_run_to_end_on_time(tiny_image_folder: Path, tmp_path: Path) -> None:
    import time

    budget = 25.0
    cfg = replace(tiny_config(tiny_image_folder, tmp_path), epochs=1000, time_budget=budget, eval_batch_size=40)
    start = time.perf_counter()
    metrics = fit(cfg)
    wall = time.perf_counter() - start
    saved = json.loads((tmp_path / "plain_cnn" / "config.json").read_text())
    assert saved["total_steps"] > 0 and saved["epochs"] < 1000  # sized from the measured throughput
    assert metrics["steps"] == saved["total_steps"]
    assert budget * 0.5 < wall < budget * 1.3, wall


def test_linear_schedule_warms_up_then_reaches_zero_at_the_end() -> None:
    from training.trainer import linear_warmup_decay

    f = linear_warmup_decay(100, 0.2)
    assert f(0) == pytest.approx(0.2) and f(20) == pytest.approx(1.0) and f(100) == 0.0
    assert all(f(i) >= f(i + 1) for i in range(20, 100))


def test_dirac_init_makes_square_convs_pass_their_input_through() -> None:
    from training.trainer import dirac_init_

    conv = torch.nn.Conv2d(8, 12, 5, padding=2, bias=False)
    assert dirac_init_(conv) == 1
    x = torch.randn(2, 8, 9, 9)
    torch.testing.assert_close(conv(x)[:, :8], x)
    shrinking = torch.nn.Conv2d(8, 4, 3, padding=1)
    before = shrinking.weight.clone()
    assert dirac_init_(shrinking) == 0 and torch.equal(before, shrinking.weight)


def test_optimizer_gives_biases_and_norms_their_own_lr_and_no_decay() -> None:
    from training.trainer import make_optimizer

    model = create_model("se_net")
    opt = make_optimizer(model, replace(recipe("se_net", "smoke"), lr=0.1, norm_bias_lr_scale=8.0, weight_decay=5e-4))
    decay, no_decay = opt.param_groups
    assert decay["lr"] == 0.1 and decay["weight_decay"] == 5e-4 and all(p.ndim > 1 for p in decay["params"])
    assert no_decay["lr"] == pytest.approx(0.8) and no_decay["weight_decay"] == 0.0
    assert all(p.ndim <= 1 for p in no_decay["params"])


def test_shipped_inception_checkpoint_has_no_auxiliary_heads(tmp_path: Path) -> None:
    from training.checkpoint import publishable

    torch.manual_seed(0)
    model = create_model("inception_net", stem_downsample=4).eval()
    shipped = publishable(checkpoint_dict(model, "inception_net"))
    assert not any(k.startswith(("aux1.", "aux2.")) for k in shipped["state_dict"])
    assert shipped["model_kwargs"]["aux_logits"] is False
    restored, _ = model_from_checkpoint(save_checkpoint(shipped, tmp_path / "i.pt"))
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(restored(x), model(x), rtol=1e-2, atol=1e-2)


def test_warm_start_loads_a_shipped_checkpoint_and_refuses_another_net(tmp_path: Path) -> None:
    """`--init-from`: the weights of a (half-precision, aux-less) shipped checkpoint start a training net; the
    auxiliary heads keep their fresh initialisation; a checkpoint of another net is refused, in words."""
    from training.checkpoint import publishable
    from training.trainer import warm_start

    torch.manual_seed(0)
    source = create_model("inception_net", stem_downsample=4)
    path = save_checkpoint(publishable(checkpoint_dict(source, "inception_net")), tmp_path / "i.pt")
    torch.manual_seed(1)
    target = create_model("inception_net", stem_downsample=4)
    fresh_aux = target.aux1.fc2.weight.detach().clone()
    warm_start(target, str(path), log=lambda _: None)
    for key, value in source.state_dict().items():
        if not key.startswith("aux"):
            torch.testing.assert_close(target.state_dict()[key], value.half().to(value.dtype), msg=key)
    torch.testing.assert_close(target.aux1.fc2.weight, fresh_aux)
    with pytest.raises(ValueError, match="does not match this net"):
        warm_start(create_model("se_net"), str(path), log=lambda _: None)


def test_fit_with_init_from_starts_where_the_checkpoint_ends(tiny_image_folder: Path, tmp_path: Path) -> None:
    """A warm-started run begins at the source's validation accuracy, not at chance."""
    fit(tiny_config(tiny_image_folder, tmp_path / "a", ema_decay=0.0))
    source = tmp_path / "a" / "plain_cnn" / "best.pt"
    cfg = tiny_config(tiny_image_folder, tmp_path / "b", ema_decay=0.0, init_from=str(source), epochs=1, lr=0.0)
    fit(cfg)
    cold = fit(replace(cfg, init_from=None, out_dir=str(tmp_path / "c")))
    history = json.loads((tmp_path / "b" / "plain_cnn" / "history.json").read_text())
    source_val = load_checkpoint(source)["metrics"]["val_acc"]
    assert history[0]["val_acc"] == pytest.approx(source_val, abs=0.05)  # measured: 0.6 and 0.6
    assert cold["val_acc"] < source_val - 0.2  # the same run without the warm start (measured: 0.1)
    assert json.loads((tmp_path / "b" / "plain_cnn" / "config.json").read_text())["init_from"] == str(source)
