"""Model registry: the one place that maps a model name to its constructor.

Training, export, serving and the UI all build nets through `create_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from training.models.base import CifarNet
from training.models.inception_net import InceptionNet
from training.models.plain_cnn import PlainCNN
from training.models.se_net import SENet

MODELS: dict[str, Callable[..., CifarNet]] = {
    "plain_cnn": PlainCNN,
    "inception_net": InceptionNet,
    "se_net": SENet,
}


def list_models() -> list[str]:
    """Registered model names, in the order `make train-all` trains them."""
    return list(MODELS)


def create_model(name: str, **kwargs: Any) -> CifarNet:
    """Build a registered net; unknown names fail with the list of known ones."""
    try:
        ctor = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None
    return ctor(**kwargs)


__all__ = ["CifarNet", "InceptionNet", "MODELS", "PlainCNN", "SENet", "create_model", "list_models"]
