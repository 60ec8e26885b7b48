"""The interface every CIFAR-10 net of the project exposes."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn


class CifarNet(nn.Module):
    """Base class: a classifier of 32x32 RGB images that names its inspectable layers.

    `feature_layers` lists, once and in forward order, the submodules whose outputs are shown
    as feature maps by the CLI, the REST service and the UI; `cam_method` and `cam_layer` name the
    net's default class activation map (the export writes them into metadata.json). `arch_kwargs` records the
    constructor arguments so a checkpoint can rebuild the net without any other source.
    In training mode a net may return a tuple whose first item is the logits (auxiliary heads
    follow); in eval mode every net returns the logits alone.
    """

    feature_layers: ClassVar[tuple[str, ...]] = ()
    # The class activation map the service draws when a request names none: a method of
    # cifarlens_runtime.cam.METHODS at one of `feature_layers`, chosen by benchmarks/cam.py (at most 1 % blank
    # maps on the test set, deletion and localisation no worse than Grad-CAM at the last layer of at least 8x8).
    # None: the service's rule for artefacts that name none (Grad-CAM at that layer).
    cam_method: ClassVar[str | None] = None
    cam_layer: ClassVar[str | None] = None
    # Constructor arguments that drop training-only parts (e.g. auxiliary heads) from an inference copy.
    inference_kwargs: ClassVar[dict[str, Any]] = {}
    arch_kwargs: dict[str, Any]

    def _record(self, **kwargs: Any) -> None:
        self.arch_kwargs = dict(kwargs)
