"""The command line and `make train-all PROFILE=smoke`, end to end, on small parts of the shared copy."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.training.conftest import REPO
from training.cli import main
from training.config import recipe
from training.models import list_models

# What `--dry-run` prints after each net's `profile:` line, in order.
PLAN_KEYS = ("device", "precision", "batch", "lr", "budget", "augmentation")


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
    assert "\nprofile: smoke\n" in proc.stdout  # after make echoes the command
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


def _plans(stdout: str) -> dict[str, dict[str, str]]:
    """`--dry-run` output as {net: {key: value}}, each block opened by `=== <net> ... (dry run) ===`."""
    plans: dict[str, dict[str, str]] = {}
    for line in stdout.splitlines():
        if line.startswith("=== ") and line.endswith("(dry run) ==="):
            net = plans.setdefault(line.split()[1], {})
        elif ": " in line:
            key, value = line.split(": ", 1)
            assert key not in net, f"{key} twice"
            net[key] = value
    return plans


def test_dry_run_prints_each_nets_config_and_writes_nothing(
    shared_cifar10: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, cache = tmp_path / "runs", tmp_path / "cache"
    monkeypatch.setenv("CIFARLENS_CACHE", str(cache))
    proc = run([sys.executable, "-m", "training", "train-all", "--dry-run", "--device", "cpu",
                "--data-dir", str(shared_cifar10), "--out-dir", str(out), "--lr", "0.05"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    profile_lines = [i for i, line in enumerate(lines) if line.startswith("profile: ")]
    assert [lines[i] for i in profile_lines] == ["profile: cpu (auto: --device cpu)"] * len(list_models())
    for i in profile_lines:  # device, precision, batch, lr, budget and augmentation follow, in that order
        assert [line.split(":")[0] for line in lines[i + 1 : i + 1 + len(PLAN_KEYS)]] == list(PLAN_KEYS)
    plans = _plans(proc.stdout)
    assert list(plans) == list_models()
    for net, plan in plans.items():
        cfg = recipe(net, "cpu")
        assert plan["device"].startswith("cpu (") and plan["device"].endswith(f", {cfg.threads} threads)")
        assert plan["batch"] == f"{cfg.batch_size} (eval {cfg.eval_batch_size})"
        assert plan["lr"].startswith("0.05 (sgd, onecycle schedule")  # the command line beats the recipe
        assert plan["budget"].startswith(f"{cfg.time_budget:.0f} s")
        assert plan["augmentation"].startswith(f"{cfg.augment} (shift {cfg.translate} px, flip {cfg.flip}")
        assert plan["out"] == f"{out / net} (not written)"
    assert not out.exists() and not cache.exists()
    assert "time budget" not in proc.stdout and "parameters" not in proc.stdout  # nothing was built or measured


def test_dry_run_on_a_cuda_device_picks_the_full_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """No GPU needed: detection is told there is one, and the run's config follows it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "Test GPU")
    out = tmp_path / "runs"
    assert main(["train-all", "--dry-run", "--models", "se_net", "--out-dir", str(out)]) == 0
    plan = _plans(capsys.readouterr().out)["se_net"]
    cfg = recipe("se_net", "full")
    assert plan["profile"] == "full (auto: CUDA device)"
    assert plan["device"] == "cuda (Test GPU)" and plan["precision"] == "bf16-autocast"
    assert plan["batch"].startswith(f"{cfg.batch_size} ") and plan["budget"].startswith(f"{cfg.time_budget:.0f} s")
    assert not out.exists()


def test_dry_run_of_one_net_keeps_a_named_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "runs"
    assert main(["train", "--model", "plain_cnn", "--profile", "smoke", "--per-class", "6", "--dry-run",
                 "--device", "cpu", "--out-dir", str(out)]) == 0  # fmt: skip
    plans = _plans(capsys.readouterr().out)
    assert list(plans) == ["plain_cnn"]
    plan = plans["plain_cnn"]
    assert plan["profile"] == "smoke" and plan["budget"] == "1 epoch" and plan["batch"] == "50 (eval 200)"
    assert plan["data"].endswith("(6 train images per class, 20 test images per class)")
    assert not out.exists()


def test_a_real_run_uses_what_its_dry_run_printed(tiny_image_folder: Path, tmp_path: Path) -> None:
    """The auto profile of a real run, announced and saved in config.json, is the one `--dry-run` shows."""
    args = [sys.executable, "-m", "training", "train", "--model", "plain_cnn", "--device", "cpu",
            "--data-dir", str(tiny_image_folder), "--out-dir", str(tmp_path / "runs"), "--time-budget", "0",
            "--epochs", "1", "--max-steps-per-epoch", "1", "--per-class", "4", "--test-per-class", "2",
            "--batch-size", "20", "--progress", "false"]  # fmt: skip
    dry = run([*args, "--dry-run"])
    assert dry.returncode == 0, dry.stderr[-3000:]
    plan = _plans(dry.stdout)["plain_cnn"]
    assert not (tmp_path / "runs").exists()
    proc = run(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith(f"profile: {plan['profile']}\n") and plan["profile"].startswith("cpu (auto: ")
    saved = json.loads((tmp_path / "runs" / "plain_cnn" / "config.json").read_text())
    given = ("data_dir", "out_dir", "time_budget", "epochs", "max_steps_per_epoch", "per_class", "test_per_class",
             "batch_size", "progress", "device")  # fmt: skip
    assert saved == recipe("plain_cnn", "cpu", **{k: saved[k] for k in given}).to_dict()  # the cpu recipe, as shown
    assert plan["batch"].startswith(f"{saved['batch_size']} ") and plan["lr"].startswith(f"{saved['lr']:g} (")
    assert plan["augmentation"].startswith(f"{saved['augment']} (shift {saved['translate']} px")


def test_resume_refuses_another_recipe_and_config_replays_the_run(
    tiny_image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--resume` with a changed option fails, naming the field and the way out; `--config` with the run's own
    config.json resumes it (its recipe exactly), and the run's train.log holds both invocations."""
    args = ["train", "--model", "plain_cnn", "--profile", "smoke", "--data-dir", str(tiny_image_folder),
            "--out-dir", str(tmp_path), "--per-class", "4", "--test-per-class", "2", "--batch-size", "20",
            "--progress", "false", "--threads", "1"]  # fmt: skip
    assert main(args) == 0
    run = tmp_path / "plain_cnn"
    assert main([*args, "--resume", "--lr", "0.05"]) == 2
    err = capsys.readouterr().err
    assert "another recipe (lr: 0.1 -> 0.05)" in err and f"--config {run / 'config.json'}" in err
    assert "--force-resume" in err
    assert main(["train", "--config", str(run / "config.json"), "--resume", "--progress", "false"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"profile: none (replaying {run / 'config.json'})") and "resumed" in out
    assert main([*args, "--resume", "--lr", "0.05", "--force-resume"]) == 0
    log = (run / "train.log").read_text()
    assert log.count("plain_cnn: val") == 3 and "--force-resume: continuing" in log


@pytest.mark.parametrize("command", ["train", "train-all"])
def test_help_mentions_dry_run_and_auto(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--dry-run" in text and "nothing is trained" in text
    assert "default auto: full on CUDA, else cpu" in text


@pytest.mark.parametrize(
    ("variables", "profile"), [([], "auto"), (["PROFILE=cpu"], "cpu"), (["PROFILE=smoke"], "smoke")]
)
def test_make_train_all_passes_the_profile(variables: list[str], profile: str) -> None:
    """`make -n` only prints; without PROFILE the Python side picks the profile from the device."""
    proc = run(["make", "-n", "train-all", "STAMP=pyproject.toml", *variables])
    assert proc.returncode == 0, proc.stderr
    assert f"-m training train-all --profile {profile} --device auto" in proc.stdout
