"""The long ablation end to end on a few images: every candidate trains once, a second start trains nothing,
the report says when its candidates ran at different precisions (machines of different sessions), and it
plots each candidate's curves; --collect rebuilds the report without training; rows already in the results JSON stand
for run folders a new machine does not have."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from benchmarks import recipe_ablation_long as ablation


def _run(monkeypatch: pytest.MonkeyPatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["recipe_ablation_long", *args])
    ablation.main()


def test_every_candidate_runs_once_and_the_report_names_each(cifar10_dir, tmp_path: Path, monkeypatch) -> None:
    if cifar10_dir is None:
        pytest.skip("CIFAR-10 not found: set DATA_DIR")
    common = ["--data-dir", str(cifar10_dir), "--out", str(tmp_path / "runs"), "--results", str(tmp_path),
              "--epochs", "1", "--per-class", "4", "--compile", "false"]  # fmt: skip
    _run(monkeypatch, *common)
    payload = json.loads((tmp_path / "recipe_ablation_long.json").read_text())
    assert [r["candidate"] for r in payload["runs"]] == [name for name, _ in ablation.CANDIDATES]
    assert payload["pending"] == [] and all(r["images_seen"] == 30 for r in payload["runs"])  # 3 of 4 per class
    md = (tmp_path / "recipe_ablation_long.md").read_text()
    assert md.startswith("Machine: ") and all(f"| {name} |" in md for name, _ in ablation.CANDIDATES)
    assert "different precisions" not in md and payload["runs"][0]["device"] in md
    assert all(len(r["val_curve"]) == len(r["train_curve"]) == 1 for r in payload["runs"])  # one epoch each
    assert "](recipe_ablation_long.png)" in md and (tmp_path / "recipe_ablation_long.png").stat().st_size > 10_000

    finished = [p.stat().st_mtime_ns for p in sorted((tmp_path / "runs").glob("*/metrics.json"))]
    _run(monkeypatch, *common)  # started again: nothing left to train
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "runs").glob("*/metrics.json"))] == finished

    payload["runs"][1]["precision"] = "bf16-autocast"  # as if a later session's CPU had bf16
    del payload["runs"][2]["val_curve"], payload["runs"][2]["train_curve"]  # as if written before curves were kept
    (tmp_path / "recipe_ablation_long.json").write_text(json.dumps(payload))
    _run(monkeypatch, "--render", "--results", str(tmp_path))
    md = (tmp_path / "recipe_ablation_long.md").read_text()
    assert "different precisions (bf16-autocast, fp32" in md
    assert "Not in the plot, for want of a per-epoch record" in md and f"recorded): {ablation.CANDIDATES[2][0]}\n" in md

    (tmp_path / "recipe_ablation_long.png").unlink()  # --collect rebuilds the report from the runs alone
    _run(monkeypatch, *common, "--collect")
    assert (tmp_path / "recipe_ablation_long.png").is_file()
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "runs").glob("*/metrics.json"))] == finished

    # A new machine has no runs/: candidates whose rows are in the results JSON are not trained again.
    kept = json.loads((tmp_path / "recipe_ablation_long.json").read_text())["runs"]
    for gone in ("00", "01"):
        shutil.rmtree(tmp_path / "runs" / gone)
    _run(monkeypatch, *common)
    assert not (tmp_path / "runs" / "00").exists() and not (tmp_path / "runs" / "01").exists()
    assert json.loads((tmp_path / "recipe_ablation_long.json").read_text())["runs"][:2] == kept[:2]


def test_amp_false_keeps_a_candidate_in_fp32_and_unset_keeps_the_recipes_choice() -> None:
    import argparse

    from training.config import recipe

    args = dict(epochs=15, data_dir=None, out="runs/x", compile=False, per_class=0)
    forced = ablation.candidate_config(5, {"label_smoothing": 0.1}, argparse.Namespace(**args, amp=False))
    assert forced.amp is False and forced.label_smoothing == 0.1
    unset = ablation.candidate_config(5, {}, argparse.Namespace(**args, amp=None))
    assert unset.amp == recipe(ablation.MODEL, "cpu").amp is True
