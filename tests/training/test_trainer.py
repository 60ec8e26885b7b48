"""`fit` end to end on a tiny ImageFolder: every output of a run, and a warm start."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.training.conftest import tiny_config
from training.checkpoint import load_checkpoint
from training.trainer import fit

OUTPUTS = ("best.pt", "last.pt", "metrics.json", "history.csv", "history.json", "curves.png", "confusion.png",
           "config.json", "train.log")  # fmt: skip


def test_run_writes_every_output(tiny_image_folder: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_image_folder, tmp_path)
    metrics = fit(cfg)
    run = tmp_path / "plain_cnn"
    for name in OUTPUTS:
        assert (run / name).is_file(), name
    saved = json.loads((run / "metrics.json").read_text())
    for key in ("model", "val_acc", "test_acc", "test_acc_no_tta", "epochs", "images_seen", "train_seconds",
                "images_per_second", "device", "precision", "params", "mflops"):  # fmt: skip
        assert key in saved, key
    assert saved == metrics and saved["epochs"] == 2 and saved["test_images"] == 40
    best = load_checkpoint(run / "best.pt")
    assert best["metrics"]["test_acc"] == saved["test_acc"]
    assert best["config"]["model"] == "plain_cnn" and "train_state" not in best
    history = json.loads((run / "history.json").read_text())
    assert {(r["device"], r["precision"]) for r in history} == {(saved["device"], saved["precision"])}
    assert saved["epochs_by_device"] == {f"{saved['device']}, {saved['precision']}": 2}
    log = (run / "train.log").read_text()
    assert "train    100 images" in log and "epoch 2/2" in log and f"test {saved['test_acc']:.4f}" in log
    events = EventAccumulator(str(run))
    events.Reload()
    assert [(e.step, round(e.value, 5)) for e in events.Scalars("acc/val")] == [
        (r["epoch"], r["val_acc"]) for r in history
    ]
    assert [e.value for e in events.Scalars("test/acc")] == pytest.approx([saved["test_acc"]])


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


def test_a_run_without_validation_trains_on_every_image(tiny_image_folder: Path, tmp_path: Path) -> None:
    """val_fraction 0 (the final weights of PROFILE=long): every training image is trained on, nothing is
    validated, best.pt is the last epoch's weights, and the report and curves say so instead of failing."""
    from training.report import write_report

    cfg = tiny_config(tiny_image_folder, tmp_path, val_fraction=0.0, ema_decay=0.0)
    metrics = fit(cfg)
    run = tmp_path / "plain_cnn"
    log = (run / "train.log").read_text()
    assert "train    120 images" in log and "val        0 images" in log and "no validation" in log
    history = json.loads((run / "history.json").read_text())
    assert [r["val_acc"] for r in history] == [None, None]
    assert metrics["val_acc"] is None and metrics["best_epoch"] == 2 and (run / "curves.png").is_file()
    assert load_checkpoint(run / "best.pt")["epoch"] == 2
    assert "| plain_cnn |" in (report := write_report(tmp_path).read_text()) and "| — |" in report
    with pytest.raises(ValueError, match="plateau schedule needs validation"):
        fit(replace(cfg, schedule="plateau"))
