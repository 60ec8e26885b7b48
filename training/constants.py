"""CIFAR-10 facts shared by training, export, serving and the UI.

Defined once here so that no other module repeats a number or a class name.
"""

from __future__ import annotations

CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
NUM_CLASSES = len(CLASSES)
IMAGE_SIZE = 32
IN_CHANNELS = 3
# Per-channel statistics of the CIFAR-10 training set (RGB, pixel values scaled to [0, 1]).
MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)

VAL_PER_CLASS = 1000
DEFAULT_SEED = 42


def normalization() -> dict[str, list[float]]:
    """The normalisation as plain lists, the form stored in checkpoints and metadata."""
    return {"mean": list(MEAN), "std": list(STD)}
