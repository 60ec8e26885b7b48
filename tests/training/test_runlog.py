"""What a run records beside its checkpoints: train.log, TensorBoard events, history.csv/json."""

import csv
import json
import re
import time
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from training.runlog import HISTORY_FIELDS, RunLog, write_history

ROW = {"epoch": 1, "train_loss": 2.0, "train_acc": 0.25, "val_loss": 2.1, "val_acc": 0.2, "lr": 0.1,
       "epoch_seconds": 3.0, "images_per_second": 40.0}  # fmt: skip


def _scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return [(e.step, round(e.value, 5)) for e in events.Scalars(tag)]


def test_every_line_is_echoed_and_appended_to_train_log(tmp_path: Path) -> None:
    echoed: list[str] = []
    log = RunLog(tmp_path, echoed.append)
    log("train   96 images")
    log("\ninterrupted: saved last.pt\n")
    log.close()
    again = RunLog(tmp_path, echoed.append)  # a resumed run appends
    again("resumed at epoch 2")
    again.close()
    lines = (tmp_path / "train.log").read_text().splitlines()
    assert echoed == ["train   96 images", "\ninterrupted: saved last.pt\n", "resumed at epoch 2"]
    assert [line.split(" ", 2)[2] for line in lines] == ["train   96 images", "interrupted: saved last.pt",
                                                         "resumed at epoch 2"]  # fmt: skip
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line) for line in lines)


def test_epochs_become_tensorboard_scalars(tmp_path: Path) -> None:
    log = RunLog(tmp_path, lambda _: None)
    log.scalars(ROW, 1)
    log.scalars({**ROW, "epoch": 2, "val_acc": 0.4}, 2)
    log.text("config", "lr 0.1")
    log.close()
    assert _scalars(tmp_path, "acc/val") == [(1, 0.2), (2, 0.4)]
    assert _scalars(tmp_path, "loss/train") == [(1, 2.0), (2, 2.0)]
    assert _scalars(tmp_path, "lr") == [(1, 0.1), (2, 0.1)]


def test_a_resumed_log_drops_the_epochs_it_will_log_again(tmp_path: Path) -> None:
    """An invocation logged epochs 1-3 but saved last.pt after epoch 1: the resumed one logs 2 and 3 again."""
    first = RunLog(tmp_path, lambda _: None)
    for epoch in (1, 2, 3):
        first.scalars({"val_acc": 0.1 * epoch}, epoch)
    first.close()
    # A real resume is a new process, seconds later. Event files are read in name order and their names hold the
    # second and a per-process counter, so two writers of one process within one second can sort backwards
    # (counter 10 before 9): this test, late in a session, did.
    time.sleep(1.1)
    resumed = RunLog(tmp_path, lambda _: None, purge_step=2)
    for epoch in (2, 3):
        resumed.scalars({"val_acc": 0.5 + 0.1 * epoch}, epoch)
    resumed.close()
    assert _scalars(tmp_path, "acc/val") == [(1, 0.1), (2, 0.7), (3, 0.8)]


def test_other_ranks_log_nothing(tmp_path: Path) -> None:
    echoed: list[str] = []
    log = RunLog(None, echoed.append)
    log("epoch 1/2")
    log.scalars(ROW, 1)
    log.close()
    assert echoed == [] and list(tmp_path.iterdir()) == []


def test_history_is_written_as_csv_and_json(tmp_path: Path) -> None:
    rows = [ROW, {**ROW, "epoch": 2}]
    write_history(rows, tmp_path, plot=False)
    with open(tmp_path / "history.csv") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == list(HISTORY_FIELDS) and [r["epoch"] for r in table] == ["1", "2"]
    assert json.loads((tmp_path / "history.json").read_text()) == rows
    assert not (tmp_path / "curves.png").exists()
    write_history(rows, tmp_path)
    assert (tmp_path / "curves.png").is_file()


def test_without_tensorboard_a_run_still_logs(tmp_path: Path, monkeypatch) -> None:
    """An environment without the tensorboard package (e.g. a bare device pack) trains and says why no events."""
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import fail
    echoed: list[str] = []
    log = RunLog(tmp_path, echoed.append)
    log.scalars(ROW, 1)
    log("epoch 1/2")
    log.close()
    assert echoed[0].startswith("no TensorBoard events") and echoed[1] == "epoch 1/2"
    assert not list(tmp_path.glob("events.out.tfevents.*"))
    assert "epoch 1/2" in (tmp_path / "train.log").read_text()
