"""`build_run`: one set-up per run, its loaders built once and kept on the `Run`."""

import json
from pathlib import Path

import pytest

from tests.training.conftest import tiny_config
from training.data import CifarData
from training.run import build_run
from training.trainer import fit


def test_loaders_are_built_once_per_run(
    tiny_image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Time-budget probe, every epoch's training and validation, and the final test share three loaders."""
    built: list[str] = []
    real = CifarData.loader

    def loader(self: CifarData, part: str, *args, **kwargs):
        built.append(part)
        return real(self, part, *args, **kwargs)

    monkeypatch.setattr(CifarData, "loader", loader)
    metrics = fit(tiny_config(tiny_image_folder, tmp_path, time_budget=20.0, epochs=1000, eval_batch_size=40))
    assert metrics["epochs"] >= 2 and sorted(built) == ["test", "train", "val"]


def test_build_run_plans_the_steps_and_writes_the_config(tiny_image_folder: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_image_folder, tmp_path, epochs=3, max_steps_per_epoch=2)
    run = build_run(cfg, log=lambda _: None)
    try:
        assert len(run.loaders.train) == 6 and run.steps_per_epoch == 2 and run.total_steps == 6
        assert [run.steps_in(e) for e in range(4)] == [2, 2, 2, 0]
        assert len(run.loaders.val.labels) == 20 and len(run.loaders.test.labels) == 40
        assert json.loads((tmp_path / "plain_cnn" / "config.json").read_text()) == cfg.to_dict()
        assert run.ema is not None and run.eval_model is run.ema.module and run.epoch == 0
    finally:
        run.log.close()
    assert "val       20 images" in (tmp_path / "plain_cnn" / "train.log").read_text()
