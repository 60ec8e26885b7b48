"""`python -m training publish`: a run's net is shipped only where its recorded test accuracy beats the shipped
one's, with its whole record; an unfinished or missing run is refused in words."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from training.checkpoint import checkpoint_dict, load_checkpoint, save_checkpoint
from training.models import create_model
from training.publish import RECORD, publish

REPO = Path(__file__).resolve().parents[2]


def fake_run(folder: Path, model: str, test_acc: float | None) -> Path:
    """A finished run's folder as `fit` leaves it: best.pt, metrics.json (unless None: unfinished), the log."""
    folder.mkdir(parents=True)
    net = create_model(model)
    save_checkpoint(checkpoint_dict(net, model, epoch=3, metrics={"test_acc": test_acc}), folder / "best.pt")
    if test_acc is not None:
        metrics = {"model": model, "test_acc": test_acc, "val_acc": None, "params": 1e6, "mflops": 80.0, "epochs": 3,
                   "train_seconds": 60.0, "images_per_second": 500.0, "device": "cpu (test)", "tta": True}  # fmt: skip
        (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "train.log").write_text("epoch 3/3 ...\n")
    (folder / "history.json").write_text("[]")
    return folder


def test_ships_only_what_beats_the_shipped_net(tmp_path: Path) -> None:
    runs, weights, lines = tmp_path / "runs", tmp_path / "weights", []
    fake_run(runs / "plain_cnn", "plain_cnn", 0.80)
    fake_run(runs / "se_net", "se_net", 0.70)
    fake_run(weights / "se_net", "se_net", 0.75)
    assert publish(runs, weights, ["plain_cnn", "se_net"], log=lines.append) == ["plain_cnn"]
    assert "kept" in lines[1] and "0.7500" in lines[1] and "0.7000" in lines[1] and "--force" in lines[1]
    shipped = load_checkpoint(weights / "plain_cnn" / "best.pt")
    assert {v.dtype for v in shipped["state_dict"].values() if v.is_floating_point()} == {torch.float16}
    assert {"metrics.json", "train.log", "history.json"} <= {p.name for p in (weights / "plain_cnn").iterdir()}
    assert set(RECORD) >= {"train.log", "history.json", "curves.png"}
    assert json.loads((weights / "se_net" / "metrics.json").read_text())["test_acc"] == 0.75  # untouched
    report = (weights / "report.md").read_text()  # the shipped pair compared, not the run's one net alone
    assert "| plain_cnn |" in report and "| se_net |" in report and "0.7500" in report
    assert publish(runs, weights, ["se_net"], force=True, log=lines.append) == ["se_net"]
    assert json.loads((weights / "se_net" / "metrics.json").read_text())["test_acc"] == 0.70


def test_an_unfinished_or_missing_run_is_refused_in_words(tmp_path: Path) -> None:
    runs, weights = tmp_path / "runs", tmp_path / "weights"
    fake_run(runs / "se_net", "se_net", None)
    proc = subprocess.run([sys.executable, "-m", "training", "publish", "--runs", str(runs), "--out", str(weights)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "plain_cnn: no " in proc.stdout and "train it first" in proc.stdout
    assert "se_net: " in proc.stdout and "no recorded test accuracy" in proc.stdout
    assert not weights.exists()
