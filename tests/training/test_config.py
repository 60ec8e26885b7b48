"""Named profiles: every net has a recipe in the profiles that train from scratch; warm-start profiles say what
they need."""

from __future__ import annotations

import pytest

from training.config import (
    AUTO_OTHER,
    AUTO_PROFILES,
    PROFILES,
    RECIPES,
    WARM_START_PROFILES,
    recipe,
    resolve_profile,
)
from training.models import list_models


@pytest.mark.parametrize("profile", [p for p in PROFILES if p not in WARM_START_PROFILES])
def test_every_net_has_a_recipe(profile: str) -> None:
    for model in list_models():
        assert recipe(model, profile).model == model


def test_finetune_needs_a_checkpoint_and_a_recipe() -> None:
    with pytest.raises(ValueError, match="pass --init-from"):
        recipe("se_net", "finetune")
    cfg = recipe("se_net", "finetune", init_from="weights/se_net/best.pt")
    assert cfg.init_from and cfg.threads == 1 and cfg.time_budget > 0
    missing = [m for m in list_models() if m not in RECIPES["finetune"]]
    for model in missing:
        with pytest.raises(ValueError, match="has no recipe"):
            recipe(model, "finetune", init_from="x.pt")
    with pytest.raises(ValueError, match="unknown profile"):
        recipe("se_net", "nope")


@pytest.mark.parametrize(
    ("device_type", "device_option", "expected"),
    [
        ("cuda", "auto", ("full", "full (auto: CUDA device)")),
        ("cuda", "cuda:1", ("full", "full (auto: CUDA device)")),
        ("cpu", "auto", ("cpu", "cpu (auto: no CUDA device)")),
        ("cpu", "cpu", ("cpu", "cpu (auto: --device cpu)")),
        ("mps", "mps", ("cpu", "cpu (auto: --device mps)")),
    ],
)
def test_auto_profile_follows_the_device(device_type: str, device_option: str, expected: tuple[str, str]) -> None:
    assert resolve_profile("auto", device_type, device_option) == expected


@pytest.mark.parametrize("profile", PROFILES)
def test_a_named_profile_is_kept_on_any_device(profile: str) -> None:
    for device_type in ("cuda", "cpu"):
        assert resolve_profile(profile, device_type) == (profile, profile)


def test_auto_profiles_are_real_profiles() -> None:
    """`auto` picks only profiles that train every net from scratch."""
    for name in (*AUTO_PROFILES.values(), AUTO_OTHER):
        assert name in PROFILES and name not in WARM_START_PROFILES
        assert all(recipe(m, name).model == m for m in list_models())


def test_every_field_says_what_it_does() -> None:
    """The help `--help` shows comes from the fields themselves; those with a fixed set of values name it."""
    from dataclasses import fields

    from training.config import AUGMENTATIONS, FLIPS, OPTIMIZERS, SCHEDULES, TrainConfig

    assert all(f.metadata.get("help") for f in fields(TrainConfig))
    choices = {f.name: f.metadata["choices"] for f in fields(TrainConfig) if f.metadata.get("choices")}
    assert choices == {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "augment": AUGMENTATIONS, "flip": FLIPS}


def test_config_does_not_import_the_data_module() -> None:
    """The allowed augmentations and flips live in config.py: config no longer reaches into data.py."""
    import subprocess
    import sys

    from tests.training.conftest import REPO

    code = "import sys, training.config as c; c.validate(c.recipe('se_net', 'smoke')); print('training.data' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("given", "stored"),
    [(True, "auto"), (False, ""), (None, ""), ("true", "auto"), ("False", ""), ("auto", "auto"),
     ("runs/x/last.pt", "runs/x/last.pt")],
)  # fmt: skip
def test_resume_keeps_its_old_spellings(given: object, stored: str) -> None:
    from training.config import TrainConfig

    assert TrainConfig(resume=given).resume == stored


def test_a_saved_config_round_trips_and_unknown_fields_are_refused() -> None:
    from training.config import TrainConfig

    cfg = recipe("inception_net", "cpu", lr=0.05)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"unknown config fields \['lr_typo'\]"):
        TrainConfig.from_dict({**cfg.to_dict(), "lr_typo": 1})


def test_recipe_changes_name_each_recipe_field_that_differs() -> None:
    from training.config import recipe_changes

    saved = recipe("se_net", "cpu", time_budget=0.0).to_dict()
    assert recipe_changes(recipe("se_net", "cpu", time_budget=0.0, threads=1, progress=False), saved) == []
    changes = recipe_changes(recipe("se_net", "cpu", time_budget=0.0, cutout=8, model_kwargs={}), saved)
    assert changes == ["model_kwargs: {'drop_block': 0.0, 'dropout': 0.2} -> {}", "cutout: 0 -> 8"]


def test_long_profile_gives_every_net_the_same_images() -> None:
    """The comparison's fairness rule: equal images seen, sized by epochs (not by time), so a run continued
    on another machine keeps its schedule; all 50,000 training images, nothing held out (final weights)."""
    from training.config import recipe as make_recipe

    cfgs = [make_recipe(name, "long") for name in ("plain_cnn", "inception_net", "se_net")]
    assert {(c.epochs, c.time_budget, c.batch_size, c.val_fraction, c.per_class) for c in cfgs} == {
        (40, 0.0, 128, 0.0, 0)
    }
    assert [c.compile for c in cfgs] == [True, False, True]  # InceptionNet lost by compiling (train_cpu.md)
    # SENet's weight decay from the long ablation (recipe_ablation_long.md: 1e-3 +0.58 val); the others' as measured
    assert [c.weight_decay for c in cfgs] == [5e-4, 5e-4, 1e-3]
