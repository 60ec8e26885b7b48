"""The command line and `make train-all PROFILE=smoke`, end to end, on small parts of the shared copy."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.conftest import REPO


def run(args: list[str], **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, **kw)


def test_bad_data_dir_fails_with_a_clear_message(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_folder"
    proc = run([sys.executable, "-m", "training", "train", "--model", "plain_cnn", "--data-dir", str(missing),
                "--out-dir", str(tmp_path / "runs")])  # fmt: skip
    assert proc.returncode != 0
    assert "error:" in proc.stderr and str(missing) in proc.stderr and "train/" in proc.stderr


def test_make_train_all_with_a_bad_data_dir_fails(tmp_path: Path) -> None:
    proc = run(["make", "train-all", f"DATA_DIR={tmp_path / 'missing'}", "PROFILE=smoke"])
    assert proc.returncode != 0
    assert str(tmp_path / "missing") in proc.stderr


def test_cli_train_evaluate_featuremaps(shared_cifar10: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    proc = run([sys.executable, "-m", "training", "train", "--model", "se_net", "--profile", "smoke",
                "--data-dir", str(shared_cifar10), "--out-dir", str(out), "--per-class", "8",
                "--test-per-class", "5", "--progress", "false", "--threads", "1"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "val       20 images" in proc.stdout and "airplane=2" in proc.stdout
    ckpt = out / "se_net" / "best.pt"
    # 20 per class: all 10,000 test images (twice, with flip TTA) took over 4 minutes on a 2-core AVX2 EPYC.
    proc = run([sys.executable, "-m", "training", "evaluate", str(ckpt), "--out", str(tmp_path / "eval"),
                "--per-class", "20"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test accuracy" in proc.stdout and (tmp_path / "eval" / "confusion.png").is_file()
    assert json.loads((tmp_path / "eval" / "evaluation.json").read_text())["test_acc"] >= 0.0
    image = shared_cifar10 / "test" / "cat" / "0000.jpg"
    proc = run([sys.executable, "-m", "training", "featuremaps", str(ckpt), str(image), "--layer", "se3",
                "--out", str(tmp_path / "fm")])  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [p.name for p in (tmp_path / "fm").iterdir()] == ["0000_se3.png"]
    proc = run([sys.executable, "-m", "training", "featuremaps", str(ckpt), str(image), "--layer", "block1"])
    assert proc.returncode == 2 and "unknown layer" in proc.stderr


def test_make_train_all_smoke(shared_cifar10: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    proc = run(["make", "train-all", "PROFILE=smoke", f"DATA_DIR={shared_cifar10}",
                f"TRAIN_ARGS=--out-dir {out} --per-class 6 --test-per-class 4 --progress false --threads 1"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for model in ("plain_cnn", "inception_net", "se_net"):
        for name in ("best.pt", "last.pt", "metrics.json", "history.csv", "curves.png", "confusion.png"):
            assert (out / model / name).is_file(), f"{model}/{name}"
        metrics = json.loads((out / model / "metrics.json").read_text())
        assert metrics["model"] == model and metrics["test_images"] == 40
    report = (out / "report.md").read_text()
    assert all(m in report for m in ("plain_cnn", "inception_net", "se_net")) and (out / "report.png").is_file()


@pytest.mark.parametrize("augment", ["seed"])
def test_samples_command(shared_cifar10: Path, tmp_path: Path, augment: str) -> None:
    proc = run([sys.executable, "-m", "training", "samples", "--data-dir", str(shared_cifar10), "--out", str(tmp_path),
                "--augment", augment, "--per-class", "2"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "samples.png").is_file() and (tmp_path / f"augmented_{augment}.png").is_file()
