"""`make demo`'s choice of checkpoints, and the command lines of the page."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gradio_ui.demo import checkpoint_source, main

MODELS = ["plain_cnn", "inception_net", "se_net"]
REPO = Path(__file__).resolve().parents[2]


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"ckpt")


def test_runs_win_when_every_net_has_one(tmp_path: Path) -> None:
    for m in MODELS:
        _touch(tmp_path / "runs" / m / "best.pt")
        _touch(tmp_path / "weights" / m / "best.pt")
    assert checkpoint_source(tmp_path / "runs", tmp_path / "weights", MODELS) == ("runs", tmp_path / "runs")


def test_committed_weights_when_runs_are_incomplete(tmp_path: Path) -> None:
    _touch(tmp_path / "runs" / "plain_cnn" / "best.pt")
    for m in MODELS:
        _touch(tmp_path / "weights" / m / "best.pt")
    assert checkpoint_source(tmp_path / "runs", tmp_path / "weights", MODELS) == ("weights", tmp_path / "weights")


def test_flat_weights_are_copied_into_runs(tmp_path: Path) -> None:
    for m in MODELS:
        _touch(tmp_path / "weights" / f"{m}.pt")
    source, folder = checkpoint_source(tmp_path / "runs", tmp_path / "weights", MODELS)
    assert (source, folder) == ("weights", tmp_path / "runs")
    assert all((tmp_path / "runs" / m / "best.pt").is_file() for m in MODELS)


def test_smoke_training_without_any_checkpoint(tmp_path: Path, capsys) -> None:
    assert checkpoint_source(tmp_path / "runs", tmp_path / "weights", MODELS) == ("train", None)
    assert main(["--runs", str(tmp_path / "runs"), "--weights", str(tmp_path / "w"), "--dry-run"]) == 0
    assert "smoke training" in capsys.readouterr().out


def test_cli_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gradio_ui", "--help"], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert out.returncode == 0
    for flag in ("--backend", "--port", "--host", "--artifacts"):
        assert flag in out.stdout


def test_make_dry_run_only_prints() -> None:
    """`make -n demo` must print the command, not run the demo (no literal $(MAKE) in the recipe)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(
        ["make", "-n", "demo", "ui", "STAMP=pyproject.toml"], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "gradio_ui.demo" in out.stdout and "-m gradio_ui --backend torchserve" in out.stdout
    assert "checkpoints:" not in out.stdout
