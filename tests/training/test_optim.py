"""The loss, optimiser, schedules and EMA a run builds from its config."""

from dataclasses import replace

import pytest
import torch

from training.config import SCHEDULES, recipe
from training.models import create_model
from training.optim import (
    linear_warmup_decay,
    make_criterion,
    make_ema,
    make_optimizer,
    make_scheduler,
)


def test_linear_schedule_warms_up_then_reaches_zero_at_the_end() -> None:
    f = linear_warmup_decay(100, 0.2)
    assert f(0) == pytest.approx(0.2) and f(20) == pytest.approx(1.0) and f(100) == 0.0
    assert all(f(i) >= f(i + 1) for i in range(20, 100))


def test_optimizer_gives_biases_and_norms_their_own_lr_and_no_decay() -> None:
    model = create_model("se_net")
    opt = make_optimizer(model, replace(recipe("se_net", "smoke"), lr=0.1, norm_bias_lr_scale=8.0, weight_decay=5e-4))
    decay, no_decay = opt.param_groups
    assert decay["lr"] == 0.1 and decay["weight_decay"] == 5e-4 and all(p.ndim > 1 for p in decay["params"])
    assert no_decay["lr"] == pytest.approx(0.8) and no_decay["weight_decay"] == 0.0
    assert all(p.ndim <= 1 for p in no_decay["params"])
    assert isinstance(opt, torch.optim.SGD) and decay["nesterov"]
    adamw = make_optimizer(model, replace(recipe("se_net", "smoke"), optimizer="adamw"))
    assert isinstance(adamw, torch.optim.AdamW)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_schedule_steps_when_it_says(schedule: str) -> None:
    """Per-step schedules span `total_steps` (one-cycle and linear end near zero); the others step per epoch,
    on the val accuracy, or never."""
    model = torch.nn.Linear(2, 2)
    cfg = replace(recipe("plain_cnn", "smoke"), schedule=schedule, lr=0.1, step_size=1, gamma=0.5)
    opt = make_optimizer(model, cfg)
    scheduler, when = make_scheduler(opt, cfg, total_steps=50)
    expected = {"plateau": "plateau", "step": "epoch", "constant": "never"}.get(schedule, "step")
    assert when == expected
    if when == "step":
        lrs = []
        for _ in range(50):
            opt.step()
            scheduler.step()
            lrs.append(opt.param_groups[0]["lr"])
        assert max(lrs) == pytest.approx(0.1, rel=0.05) and lrs[-1] < 0.01, lrs[-5:]
    elif when == "epoch":
        opt.step()
        scheduler.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_ema_warms_up_then_follows_its_decay() -> None:
    """The first update copies the weights; the next ones move by 1 - min(decay, (1 + n) / (10 + n))."""
    cfg = replace(recipe("plain_cnn", "smoke"), ema_decay=0.99)
    assert make_ema(torch.nn.Linear(1, 1), replace(cfg, ema_decay=0.0)) is None
    model = torch.nn.Linear(1, 1, bias=False)
    ema = make_ema(model, cfg)
    with torch.no_grad():
        model.weight.fill_(1.0)
        ema.update_parameters(model)  # n = 0: a copy
        assert ema.module.weight.item() == pytest.approx(1.0)
        model.weight.fill_(0.0)
        ema.update_parameters(model)  # n = 1: decay 2 / 11
    assert ema.module.weight.item() == pytest.approx(2 / 11)


def test_criterion_smooths_labels_as_configured() -> None:
    logits, target = torch.tensor([[10.0, 0.0]]), torch.tensor([0])
    sharp = make_criterion(replace(recipe("plain_cnn", "smoke"), label_smoothing=0.0))(logits, target)
    smooth = make_criterion(replace(recipe("plain_cnn", "smoke"), label_smoothing=0.2))(logits, target)
    assert smooth > sharp + 0.5
