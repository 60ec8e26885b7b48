"""`make demo`'s choice of checkpoints (per net, by the test accuracy each recorded), and the command lines
of the page."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gradio_ui.demo import STAGE, checkpoint_folder, choose_checkpoints, main

MODELS = ["inception_net", "plain_cnn", "se_net"]  # as the demo lists them: by name
REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "weights"


def _touch(path: Path, content: bytes = b"ckpt") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def _shipped(folder: Path) -> dict[str, dict]:
    """The committed weights' metrics.json files, each beside a stand-in checkpoint, in `folder`."""
    metrics = {}
    for m in MODELS:
        _touch(folder / m / "best.pt", f"shipped {m}".encode())
        shutil.copy2(SHIPPED / m / "metrics.json", folder / m / "metrics.json")
        metrics[m] = json.loads((folder / m / "metrics.json").read_text())
    return metrics


def _run(folder: Path, model: str, test_acc: float | None, epochs: int = 1, images: int = 200) -> None:
    """runs/<model>/ as a training run leaves it (metrics.json written at the end; none when interrupted)."""
    _touch(folder / model / "best.pt", f"run {model}".encode())
    if test_acc is not None:
        metrics = {"model": model, "test_acc": test_acc, "epochs": epochs, "test_images": images, "val_acc": 0.4}
        (folder / model / "metrics.json").write_text(json.dumps(metrics, indent=1))


def test_committed_weights_win_over_worse_runs(tmp_path: Path) -> None:
    runs, weights = tmp_path / "runs", tmp_path / "weights"
    shipped = _shipped(weights)
    for m in MODELS:
        _run(runs, m, 0.41)
    choices = choose_checkpoints(runs, weights)
    assert [c.checkpoint for c in choices] == [weights / m / "best.pt" for m in MODELS]
    se = shipped["se_net"]
    assert choices[2].why == (
        f"se_net: {weights}/ (test {100 * se['test_acc']:.1f} % on 10000 images, {se['epochs']} epochs) "
        f"over {runs}/ (test 41.0 % on 200 images, 1 epoch)"
    )
    assert checkpoint_folder(choices, runs) == weights and not (runs / STAGE).exists()


def test_a_better_run_wins_for_its_net_only(tmp_path: Path) -> None:
    runs, weights = tmp_path / "runs", tmp_path / "weights"
    shipped = _shipped(weights)
    _run(runs, "se_net", shipped["se_net"]["test_acc"] + 0.01, epochs=60, images=10000)
    _run(runs, "plain_cnn", shipped["plain_cnn"]["test_acc"])  # a tie is not better
    choices = {c.net: c for c in choose_checkpoints(runs, weights)}
    assert choices["se_net"].checkpoint == runs / "se_net" / "best.pt"
    assert choices["se_net"].why.startswith(f"se_net: {runs}/ (test ") and f"over {weights}/" in choices["se_net"].why
    assert choices["plain_cnn"].checkpoint == weights / "plain_cnn" / "best.pt"
    assert choices["inception_net"].why.endswith(f"; none in {runs}/")
    folder = checkpoint_folder(list(choices.values()), runs)
    assert folder == runs / STAGE  # mixed sources: gathered into one folder for `make export`
    assert (folder / "se_net" / "best.pt").read_bytes() == b"run se_net"
    assert (folder / "plain_cnn" / "best.pt").read_bytes() == b"shipped plain_cnn"
    assert (runs / "se_net" / "best.pt").read_bytes() == b"run se_net"  # the run itself is untouched


def test_a_run_without_metrics_loses(tmp_path: Path) -> None:
    runs, weights = tmp_path / "runs", tmp_path / "weights"
    _shipped(weights)
    _run(runs, "se_net", None)
    (runs / "plain_cnn" / "metrics.json").parent.mkdir(parents=True)
    _touch(runs / "plain_cnn" / "best.pt")
    (runs / "plain_cnn" / "metrics.json").write_text("{not json")
    choices = {c.net: c for c in choose_checkpoints(runs, weights)}
    assert all(c.checkpoint.parent.parent == weights for c in choices.values())
    assert choices["se_net"].why.endswith(f"over {runs}/ (no recorded test accuracy)")
    assert choices["plain_cnn"].why.endswith(f"over {runs}/ (no recorded test accuracy)")


def test_runs_win_when_the_weights_record_nothing(tmp_path: Path) -> None:
    runs, weights = tmp_path / "runs", tmp_path / "weights"
    for m in MODELS:
        _touch(weights / m / "best.pt")
        _run(runs, m, 0.3)
    choices = choose_checkpoints(runs, weights)
    assert [c.checkpoint for c in choices] == [runs / m / "best.pt" for m in MODELS]
    assert checkpoint_folder(choices, runs) == runs


def test_flat_weights_are_gathered_in_one_folder(tmp_path: Path) -> None:
    runs, weights = tmp_path / "runs", tmp_path / "weights"
    for m in MODELS:
        _touch(weights / f"{m}.pt", m.encode())
    folder = checkpoint_folder(choose_checkpoints(runs, weights), runs)
    assert folder == runs / STAGE
    assert [(folder / m / "best.pt").read_bytes() for m in MODELS] == [m.encode() for m in MODELS]


def test_dry_run_says_per_net_what_it_would_serve_and_writes_nothing(tmp_path: Path, capsys) -> None:
    runs, weights = tmp_path / "runs", tmp_path / "weights"
    _shipped(weights)
    _run(runs, "se_net", 0.41)
    assert main(["--runs", str(runs), "--weights", str(weights), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == MODELS
    assert lines[2].startswith(f"se_net: {weights}/ (test 88.") and lines[2].endswith(
        "(test 41.0 % on 200 images, 1 epoch)"
    )
    assert not (runs / STAGE).exists()


def test_smoke_training_without_any_checkpoint(tmp_path: Path, capsys) -> None:
    assert choose_checkpoints(tmp_path / "runs", tmp_path / "weights") == []
    assert main(["--runs", str(tmp_path / "runs"), "--weights", str(tmp_path / "w"), "--dry-run"]) == 0
    assert "smoke training" in capsys.readouterr().out


def test_the_choice_loads_neither_torch_nor_training() -> None:
    """A fresh interpreter: the demo judges the committed weights by their JSON alone."""
    code = (
        "import sys\nfrom gradio_ui.demo import main\nmain(['--runs', 'no_such_runs', '--dry-run'])\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    *choices, modules = out.stdout.splitlines()
    assert [line.split(":")[0] for line in choices] == MODELS
    assert not {"torch", "training"} & set(modules.split())


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
