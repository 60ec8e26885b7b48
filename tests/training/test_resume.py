"""last.pt and `--resume`: an exact continuation (at an epoch's end, mid-epoch after SIGTERM, from another
folder's last.pt), and a refusal, field by field, of a recipe other than the one the run started with."""

import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.training.conftest import tiny_config
from training import trainer
from training.checkpoint import checkpoint_dict, load_checkpoint, save_checkpoint
from training.config import recipe
from training.models import create_model
from training.resume import load_resume_checkpoint, resume_path, resumed_config
from training.trainer import fit


def _same_weights(a: Path, b: Path) -> None:
    sa, sb = (load_checkpoint(p)["train_state"] for p in (a, b))
    for key in ("model", "ema"):
        for name, value in sa[key].items():
            torch.testing.assert_close(value, sb[key][name], rtol=1e-5, atol=1e-6, msg=f"{key}.{name}")
    assert sa["history"][-1]["val_acc"] == sb["history"][-1]["val_acc"]


def _sigterm_at(monkeypatch: pytest.MonkeyPatch, epoch: int, step: int) -> None:
    """Send this process SIGTERM after batch `step` of epoch `epoch` (1-based), as `kill` would."""
    real = trainer.train_one_epoch

    def train_one_epoch(*args, on_step, desc, **kw):
        def after(i: int) -> None:
            on_step(i)
            if desc.endswith(f" {epoch}/2") and i == step:
                os.kill(os.getpid(), signal.SIGTERM)

        return real(*args, on_step=after, desc=desc, **kw)

    monkeypatch.setattr(trainer, "train_one_epoch", train_one_epoch)


def test_resume_ends_with_the_same_weights(tiny_image_folder: Path, tmp_path: Path, monkeypatch) -> None:
    straight_metrics = fit(tiny_config(tiny_image_folder, tmp_path / "a"))
    straight = tmp_path / "a" / "plain_cnn" / "last.pt"
    # Stopped after epoch 1, continued with --resume auto.
    first_half = tiny_config(tiny_image_folder, tmp_path / "b", stop_after=1)
    fit(first_half)
    assert load_checkpoint(tmp_path / "b" / "plain_cnn" / "last.pt")["epoch"] == 1
    fit(replace(first_half, stop_after=0, resume="auto"))
    _same_weights(straight, tmp_path / "b" / "plain_cnn" / "last.pt")
    assert "resumed" in (tmp_path / "b" / "plain_cnn" / "train.log").read_text()
    # Killed mid-epoch 2, continued from that last.pt into another folder with --resume PATH.
    _sigterm_at(monkeypatch, epoch=2, step=2)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config(tiny_image_folder, tmp_path / "c"))
    monkeypatch.undo()
    killed = tmp_path / "c" / "plain_cnn" / "last.pt"
    assert load_checkpoint(killed)["train_state"]["step_in_epoch"] == 3
    resumed_metrics = fit(tiny_config(tiny_image_folder, tmp_path / "d", resume=str(killed)))
    _same_weights(straight, tmp_path / "d" / "plain_cnn" / "last.pt")
    # The epoch cut by the kill counts whole in images seen (its timing covers only the part after the resume).
    assert resumed_metrics["images_seen"] == straight_metrics["images_seen"] > 0
    # The same run with another learning rate is refused before anything is built, naming the field.
    with pytest.raises(ValueError, match=r"another recipe \(lr: 0.1 -> 0.05\).*--force-resume"):
        fit(replace(first_half, lr=0.05, resume="auto"))


def test_resume_path_follows_the_option(tmp_path: Path) -> None:
    cfg = recipe("se_net", "smoke")
    assert resume_path(cfg, tmp_path) is None
    assert resume_path(replace(cfg, resume="auto"), tmp_path) == tmp_path / "last.pt"
    assert resume_path(replace(cfg, resume=True), tmp_path) == tmp_path / "last.pt"  # the old spelling
    assert resume_path(replace(cfg, resume="true"), tmp_path) == tmp_path / "last.pt"
    assert resume_path(replace(cfg, resume="false"), tmp_path) is None
    assert resume_path(replace(cfg, resume="old/last.pt"), tmp_path) == Path("old/last.pt")


def test_a_missing_or_wrong_checkpoint_is_named(tmp_path: Path) -> None:
    cfg, cpu = recipe("se_net", "smoke"), torch.device("cpu")
    assert load_resume_checkpoint(replace(cfg, resume="auto"), tmp_path, cpu) is None  # nothing yet: a fresh start
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        load_resume_checkpoint(replace(cfg, resume=str(tmp_path / "x.pt")), tmp_path, cpu)
    best = save_checkpoint(checkpoint_dict(create_model("plain_cnn"), "plain_cnn"), tmp_path / "best.pt")
    with pytest.raises(ValueError, match="not a last.pt.*--init-from"):
        load_resume_checkpoint(replace(cfg, resume=str(best)), tmp_path, cpu)


def _ckpt(config: dict) -> dict:
    return {"config": config, "train_state": {}}


def test_a_changed_recipe_is_refused_field_by_field(tmp_path: Path) -> None:
    saved = recipe("se_net", "cpu", time_budget=0.0, epochs=15, resume=True).to_dict()
    given = recipe("se_net", "cpu", time_budget=0.0, epochs=15, lr=0.2, augment="seed", resume="auto")
    with pytest.raises(ValueError) as err:
        resumed_config(given, _ckpt(saved), tmp_path / "last.pt", print)
    message = str(err.value)
    assert "lr: 0.1 -> 0.2" in message and "augment: 'fast' -> 'seed'" in message
    assert "epochs" not in message and f"--config {tmp_path / 'config.json'}" in message


def test_where_and_how_a_run_goes_is_not_its_recipe(tmp_path: Path) -> None:
    """Paths, device, threads, compile, progress, saving and stopping may change between invocations; a
    config saved by the code before `resume` became a path (resume True, no force_resume) still matches."""
    saved = recipe("se_net", "cpu", time_budget=0.0, epochs=15, resume=True, compile=True).to_dict()
    saved["resume"] = True
    del saved["force_resume"]
    given = recipe("se_net", "cpu", time_budget=0.0, epochs=15, resume="auto", compile=False, data_dir="/elsewhere",
                   out_dir="moved", device="cpu", threads=1, progress=False, stop_after=2, save_every=5.0,
                   eval_batch_size=100)  # fmt: skip
    assert resumed_config(given, _ckpt(saved), tmp_path / "last.pt", print) == given


def test_a_budgeted_run_keeps_its_plan_and_force_resume_says_what_differs(tmp_path: Path) -> None:
    saved = recipe("se_net", "cpu", resume="auto").to_dict() | {"epochs": 7, "total_steps": 2222}
    given = recipe("se_net", "cpu", resume="auto")  # epochs 30, total_steps 0: the budget sizes them
    cfg = resumed_config(given, _ckpt(saved), tmp_path / "last.pt", print)
    assert (cfg.epochs, cfg.total_steps) == (7, 2222)
    lines: list[str] = []
    forced = resumed_config(replace(given, lr=0.3, force_resume=True), _ckpt(saved), tmp_path / "last.pt", lines.append)
    assert forced.lr == 0.3 and (forced.epochs, forced.total_steps) == (7, 2222)
    assert len(lines) == 1 and "lr: 0.1 -> 0.3" in lines[0] and "keeps its plan (7 epochs, 2222 steps)" in lines[0]
