"""CIFAR-10 facts for the training code: defined once in the torch-free `cifarlens_runtime.constants`."""

from __future__ import annotations

from cifarlens_runtime.constants import (
    CLASSES,
    DEFAULT_SEED,
    IMAGE_SIZE,
    IMAGE_SUFFIXES,
    IN_CHANNELS,
    MEAN,
    NUM_CLASSES,
    STD,
    VAL_PER_CLASS,
    normalization,
)

__all__ = [
    "CLASSES",
    "DEFAULT_SEED",
    "IMAGE_SIZE",
    "IMAGE_SUFFIXES",
    "IN_CHANNELS",
    "MEAN",
    "NUM_CLASSES",
    "STD",
    "VAL_PER_CLASS",
    "normalization",
]
