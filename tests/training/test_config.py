"""Named profiles: every net has a recipe in the profiles that train from scratch; warm-start profiles say what
they need."""

from __future__ import annotations

import pytest

from training.config import PROFILES, RECIPES, WARM_START_PROFILES, recipe
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
