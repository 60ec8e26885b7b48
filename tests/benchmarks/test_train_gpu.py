"""The GPU run's script, rehearsed on the CPU; train_gpu.md names the GPU machine's host CPU and load, or says in
words that they were not recorded."""

from __future__ import annotations

import json
import sys
import tarfile

import pytest

from benchmarks.common import RESULTS, machine
from benchmarks.train_gpu import host_line, main, record
from cifarlens_runtime.constants import CHECKPOINT_FILE
from training.checkpoint import load_checkpoint


def test_the_host_line_names_the_cpu_and_load_or_says_why_not() -> None:
    assert host_line(machine()).startswith("Host: ") and "load average at start" in host_line(machine())
    committed = json.loads((RESULTS / "train_gpu.json").read_text())["machine"]
    line = host_line(committed)
    assert "not recorded" in line and committed["why"] in line
    assert line in (RESULTS / "train_gpu.md").read_text()
    assert "not recorded" in host_line({})


def test_the_device_run_rehearsed_on_the_cpu_packs_a_net_and_records_it(cifar10_dir, tmp_path, monkeypatch) -> None:
    """The device script's own training and recording steps, with the smoke recipe on this CPU: what comes back
    is a loadable shipped checkpoint with its record, and the Markdown names the net and the host."""
    if cifar10_dir is None:
        pytest.skip("CIFAR-10 not found: set DATA_DIR")
    out, results = tmp_path / "out", tmp_path / "results"
    results.mkdir()
    argv = ["train_gpu", "--profile", "smoke", "--data-dir", str(cifar10_dir), "--out", str(out),
            "--runs", str(tmp_path / "runs"), "--models", "plain_cnn"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    assert main() == 0
    with tarfile.open(out / "plain_cnn.tar") as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "unpacked", filter="data")
    assert f"plain_cnn/{CHECKPOINT_FILE}" in names and "plain_cnn/metrics.json" in names
    assert load_checkpoint(tmp_path / "unpacked" / "plain_cnn" / CHECKPOINT_FILE)["model"] == "plain_cnn"
    summary = json.loads((out / "train_gpu.json").read_text())
    assert summary["profile"] == "smoke" and summary["machine"]["cpu"] and "load_average_at_end" in summary["machine"]
    js, md = record(out, note="A rehearsal.", results=results)
    text = md.read_text()
    assert js.parent == results and "| plain_cnn |" in text and text.count("| plain_cnn |") == 1
    assert host_line(summary["machine"]) in text and text.rstrip().endswith("A rehearsal.")
