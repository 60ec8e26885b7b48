"""torchrun data parallelism on the CPU (gloo): two ranks equal one process with the same global batch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training.checkpoint import load_checkpoint

ARGS = [
    "--model", "plain_cnn", "--profile", "smoke", "--per-class", "0", "--test-per-class", "0", "--epochs", "2",
    "--batch-size", "16", "--augment", "none", "--model-kwargs", '{"drop_block": 0.0, "dropout": 0.0}',
    "--progress", "false", "--threads", "1", "--lr", "0.05", "--eval-batch-size", "40",
]  # fmt: skip


def _train(
    cmd: list[str], data: Path, out: Path, *extra: str, cache: Path | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"} | ({"CIFARLENS_CACHE": str(cache)} if cache else {})
    proc = subprocess.run([*cmd, "-m", "training", "train", *ARGS, "--data-dir", str(data), "--out-dir", str(out), *extra],
                          capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


# Real torchrun launches, about 1.75 minutes together on a 2-core AVX2 EPYC: `make test-heavy`, not `make test`.
pytestmark = pytest.mark.heavy


def test_two_ranks_match_one_process_with_the_same_global_batch(tiny_image_folder: Path, tmp_path: Path) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun not found beside the interpreter")
    cache = tmp_path / "cache"  # empty: one rank decodes the images into it, the other reads them back
    ddp = _train([torchrun, "--standalone", "--nproc_per_node=2"], tiny_image_folder, tmp_path / "ddp", cache=cache)
    assert ddp.stderr.count("decode train: 100%") == 1 and ddp.stderr.count("decode test: 100%") == 1
    assert sorted(p.suffix for p in cache.iterdir()) == [".npz", ".npz"]
    # One process, each batch in the same two halves (one backward each, batch-norm statistics per half).
    _train([sys.executable], tiny_image_folder, tmp_path / "one", "--accumulate", "2")
    a = load_checkpoint(tmp_path / "ddp" / "plain_cnn" / "last.pt")
    b = load_checkpoint(tmp_path / "one" / "plain_cnn" / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    compared = 0
    for key, value in a["train_state"]["model"].items():
        if "running" in key or "num_batches" in key:
            continue  # DDP keeps rank 0's batch-norm running statistics; the single process saw both halves
        torch.testing.assert_close(value, b["train_state"]["model"][key], rtol=1e-4, atol=1e-5, msg=key)
        compared += 1
    assert compared > 10
    # Rank 0 alone logs and writes: one line per epoch, and rank 1's RNG state is kept for an exact resume.
    assert ddp.stdout.count("epoch 2/2") == 1 and "data parallel over 2 processes (gloo)" in ddp.stdout
    assert isinstance(a["train_state"]["rng"], list) and len(a["train_state"]["rng"]) == 2


def test_torchrun_resume_continues_exactly(tiny_image_folder: Path, tmp_path: Path) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun not found beside the interpreter")
    cmd = [torchrun, "--standalone", "--nproc_per_node=2"]
    aug = ("--augment", "fast", "--translate", "2")  # per-rank augmentation RNG must be restored too
    _train(cmd, tiny_image_folder, tmp_path / "a", *aug)
    _train(cmd, tiny_image_folder, tmp_path / "b", *aug, "--stop-after", "1")
    _train(cmd, tiny_image_folder, tmp_path / "b", *aug, "--resume", "true")
    a = load_checkpoint(tmp_path / "a" / "plain_cnn" / "last.pt")["train_state"]["model"]
    b = load_checkpoint(tmp_path / "b" / "plain_cnn" / "last.pt")["train_state"]["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
