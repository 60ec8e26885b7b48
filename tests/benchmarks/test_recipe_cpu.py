"""`make train-all` recorded as a user runs it: a profile resumed across sessions keeps one entry per session
(a session killed with its machine too), sums their wall time and trains nothing twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import recipe_cpu
from training.models import list_models


@pytest.mark.heavy  # three nets trained through `make`, twice: about 3 minutes
def test_a_resumed_profile_records_every_session_and_trains_nothing_twice(cifar10_dir, tmp_path: Path) -> None:
    if cifar10_dir is None:
        pytest.skip("CIFAR-10 not found: set DATA_DIR")
    runs, results = tmp_path / "runs", tmp_path / "results"
    results.mkdir()
    args = ["--profile", "smoke", "--resume", "--data-dir", str(cifar10_dir), "--runs", str(runs),
            "--results", str(results)]  # fmt: skip
    assert recipe_cpu.main(args) == 0
    first = json.loads((results / "recipe_smoke.json").read_text())
    assert list(first["models"]) == list_models() and len(first["sessions"]) == 1
    assert first["sessions"][0]["rc"] == 0 and first["total_seconds"] == first["sessions"][0]["wall_seconds"] > 0
    epochs = {m: (runs / m / "train.log").read_text().count("epoch 1/1 ") for m in list_models()}
    assert set(epochs.values()) == {1}

    sessions = json.loads((runs / recipe_cpu.SESSIONS).read_text())
    killed = {**sessions[0], "wall_seconds": None, "rc": None}  # as a session that ended with its machine leaves it
    (runs / recipe_cpu.SESSIONS).write_text(json.dumps([*sessions, killed]))
    assert recipe_cpu.main(args) == 0
    again = json.loads((results / "recipe_smoke.json").read_text())
    assert {m: (runs / m / "train.log").read_text().count("epoch 1/1 ") for m in list_models()} == epochs
    assert [s["rc"] for s in again["sessions"]] == [0, None, 0]
    assert again["total_seconds"] == pytest.approx(sum(s["wall_seconds"] or 0 for s in again["sessions"]), abs=0.2)
    assert again["models"] == first["models"]
    md = (results / "recipe_smoke.md").read_text()
    assert md.startswith("Machine: ") and "over 3 sessions" in md and "ended with the session" in md
    assert "resumed" in (runs / "train_smoke.log").read_text()  # one log, appended by every session


def test_models_narrows_the_make_call_to_the_nets_named_in_their_order(tmp_path: Path) -> None:
    args = recipe_cpu._parser().parse_args(["--profile", "long", "--resume", "--models", "se_net", "plain_cnn"])
    train_args = next(a for a in recipe_cpu.command(args, tmp_path) if a.startswith("TRAIN_ARGS="))
    assert train_args.endswith("--resume --models se_net plain_cnn")
    every = recipe_cpu.command(recipe_cpu._parser().parse_args(["--profile", "long"]), tmp_path)
    assert "--models" not in " ".join(every)
    with pytest.raises(SystemExit):
        recipe_cpu._parser().parse_args(["--models", "resnet50"])
