"""The interface every CIFAR-10 net of the project exposes."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn


class CifarNet(nn.Module):
    """Base class: a classifier of 32x32 RGB images that names its inspectable layers.

    `feature_layers` lists, once and in forward order, the submodules whose outputs are shown
    as feature maps by the CLI, the REST service and the UI. `arch_kwargs` records the
    constructor arguments so a checkpoint can rebuild the net without any other source.
    In training mode a net may return a tuple whose first item is the logits (auxiliary heads
    follow); in eval mode every net returns the logits alone.
    """

    feature_layers: ClassVar[tuple[str, ...]] = ()
    # Constructor arguments that drop training-only parts (e.g. auxiliary heads) from an inference copy.
    inference_kwargs: ClassVar[dict[str, Any]] = {}
    arch_kwargs: dict[str, Any]

    def _record(self, **kwargs: Any) -> None:
        self.arch_kwargs = dict(kwargs)
