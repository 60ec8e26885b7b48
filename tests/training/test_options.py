"""TrainConfig on the command line: per-field help with allowed values and each profile's value, `--config`
replays, and the `--resume` spellings."""

import json
from pathlib import Path

import pytest

from training.cli import build_parser
from training.config import recipe
from training.options import config_from_args, given_options, profile_values


def _help(capsys: pytest.CaptureFixture[str], command: str = "train") -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_help_shows_each_fields_doc_choices_and_what_each_profile_uses(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys)
    assert "--batch-size N the global batch: under torchrun each of N ranks takes batch_size / N of it" in text
    assert "[full: 512; cpu: 128; long: 128; finetune: 128; smoke: 50]" in text  # not the dataclass's 256
    assert "peak learning rate [full: 0.4; cpu: 0.1; long: 0.1; finetune: 0.04; smoke: 0.1]" in text
    assert "--augment {none,fast,seed}" in text and "--flip {none,random,alternate}" in text
    assert "--schedule {linear,onecycle,cosine,step,plateau,constant}" in text
    assert "[full: by budget; cpu: by budget; long: 40; finetune: by budget; smoke: 1]" in text  # epochs
    assert "--resume [PATH|auto]" in text and "--force-resume [BOOL]" in text and "--config FILE" in text
    assert "--dry-run prints what a run will use" in text and "train.log" in text and "tensorboard --logdir" in text


def test_profile_values_name_each_net_where_they_differ() -> None:
    assert profile_values("momentum") == "default 0.9"
    assert profile_values("time_budget").startswith("full: plain_cnn 50, inception_net 100, se_net 110; cpu: ")


@pytest.mark.parametrize(
    ("argv", "resume"), [([], None), (["--resume"], "auto"), (["--resume", "true"], "auto"),
                         (["--resume", "false"], ""), (["--resume", "runs/a/last.pt"], "runs/a/last.pt")],
)  # fmt: skip
def test_resume_takes_a_path_or_auto(argv: list[str], resume: str | None) -> None:
    args = build_parser().parse_args(["train", "--model", "se_net", *argv])
    assert given_options(args).get("resume") == resume
    if resume is not None:
        assert config_from_args(args, "se_net", "smoke").resume == resume


def test_a_bool_option_alone_means_true() -> None:
    args = build_parser().parse_args(["train", "--model", "se_net", "--compile", "--tta", "false"])
    assert given_options(args) == {"compile": True, "tta": False}


def test_config_replays_a_saved_run_under_the_options_beside_it(tmp_path: Path) -> None:
    saved = recipe("inception_net", "cpu", lr=0.05, resume="auto", stop_after=1, out_dir="elsewhere")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(saved.to_dict()))
    args = build_parser().parse_args(["train", "--config", str(path), "--cutout", "8"])
    cfg = config_from_args(args, args.model, "smoke")  # the file, not the profile
    assert cfg.model == "inception_net" and cfg.lr == 0.05 and cfg.cutout == 8 and cfg.out_dir == "elsewhere"
    assert cfg.resume == "" and cfg.stop_after == 0  # what only its own invocation did is not replayed
    assert cfg.model_kwargs == saved.model_kwargs and cfg.time_budget == saved.time_budget
    path.write_text(json.dumps({**saved.to_dict(), "lr_typo": 1}))
    with pytest.raises(ValueError, match="lr_typo"):
        config_from_args(args, None, "smoke")
