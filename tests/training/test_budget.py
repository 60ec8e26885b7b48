"""A time budget sized from the run's own training step, timed on a throwaway copy of the net."""

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.training.conftest import tiny_config
from training import budget
from training.config import recipe
from training.data import Loaders, TensorLoader
from training.trainer import fit


class BatchRecorder(nn.Module):
    """A tiny net that records the batch size of every forward in training mode (in a list its copies share)."""

    seen: list[int] = []

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            BatchRecorder.seen.append(len(x))
        return self.conv(x).mean((2, 3))


def _loaders(n: int = 64, batch: int = 16) -> Loaders:
    images = torch.randint(0, 255, (n, 32, 32, 3), dtype=torch.uint8)
    labels = torch.arange(n) % 10
    train = TensorLoader(images, labels, batch, shuffle=True)
    return Loaders(train, TensorLoader(images[:32], labels[:32], 32), TensorLoader(images[:20], labels[:20], 20))


def test_the_probe_runs_the_real_step_and_leaves_the_run_untouched() -> None:
    """`accumulate` 2 splits each probe batch in two, as the run's step does: the probe is `train_one_epoch`.
    It cycles the epochs of a loader shorter than the probe, and neither the weights nor the RNG move."""
    torch.manual_seed(0)
    model = BatchRecorder()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = replace(recipe("plain_cnn", "smoke"), batch_size=16, accumulate=2, ema_decay=0.9, time_budget=60.0)
    loaders, lines = _loaders(n=48), []
    BatchRecorder.seen.clear()
    rng = torch.get_rng_state()
    planned = budget.plan_steps(cfg, model, loaders, torch.device("cpu"), 0.0, lines.append)
    assert BatchRecorder.seen == [8] * 12  # 2 + 4 steps (CPU) of two chunks, over two epochs of 3 batches
    assert planned.total_steps > 0 and "time budget 60s" in lines[0]
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())


def test_plan_fills_the_budget_with_steps_validation_and_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """100 s, 10 s already spent, 0.1 s a step, 1,000 eval images/s: a 20-image test takes 6 views x 0.02 s,
    each of the 4 batches per epoch carries a quarter of (32 val images + 0.5 s overhead)."""
    monkeypatch.setattr(budget, "step_seconds", lambda *a: 0.1)
    monkeypatch.setattr(budget, "eval_images_per_second", lambda *a: 1000.0)
    cfg = replace(recipe("plain_cnn", "smoke"), time_budget=100.0, batch_size=16, epoch_overhead=0.5)
    lines: list[str] = []
    planned = budget.plan_steps(cfg, BatchRecorder(), _loaders(), torch.device("cpu"), 10.0, lines.append)
    per_step = 0.1 + (32 / 1000 + 0.5) / 4
    expected = int((100 - 10 - 6 * 20 / 1000) / per_step)
    assert planned.total_steps in (expected - 1, expected) and planned.epochs == -(-planned.total_steps // 4)
    assert "160 img/s training" in lines[0]
    assert (
        budget.plan_steps(
            replace(cfg, time_budget=0.0), BatchRecorder(), _loaders(), torch.device("cpu"), 0, print
        ).total_steps
        == 0
    )


def test_time_budget_sizes_the_run_to_end_on_time(tiny_image_folder: Path, tmp_path: Path) -> None:
    budget_s = 25.0
    cfg = replace(tiny_config(tiny_image_folder, tmp_path), epochs=1000, time_budget=budget_s, eval_batch_size=40)
    start = time.perf_counter()
    metrics = fit(cfg)
    wall = time.perf_counter() - start
    saved = json.loads((tmp_path / "plain_cnn" / "config.json").read_text())
    assert saved["total_steps"] > 0 and saved["epochs"] < 1000  # sized from the measured throughput
    assert metrics["steps"] == saved["total_steps"]
    assert budget_s * 0.5 < wall < budget_s * 1.3, wall
