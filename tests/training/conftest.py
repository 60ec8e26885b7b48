"""Fixtures for the training tests: a tiny synthetic ImageFolder, and the shared CIFAR-10 copy."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cifarlens_runtime.constants import CLASSES
from training.config import TrainConfig, recipe

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train/ and test/ with a few random 32x32 JPEGs per class; each class has its own tint,
    so a net can learn something from it."""
    root = tmp_path_factory.mktemp("tiny_cifar")
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 4)):
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 120, (32, 32, 3), dtype=np.uint8)
                img[..., c % 3] += np.uint8(12 * c)
                Image.fromarray(img).save(folder / f"{i:04d}.jpg", quality=90)
    return root


@pytest.fixture(scope="session")
def shared_cifar10() -> Path:
    """The shared JPEG copy of CIFAR-10 ($DATA_DIR or ../shared/data/cifar10); skipped where absent."""
    path = Path(os.environ.get("DATA_DIR") or REPO.parent / "shared" / "data" / "cifar10")
    if not (path / "train").is_dir() or not (path / "test").is_dir():
        pytest.skip(f"shared CIFAR-10 copy not found at {path} (set DATA_DIR)")
    return path


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoded-array caches go to a per-session folder (the shared copy's cache is kept in ./data)."""
    monkeypatch.setenv("CIFARLENS_CACHE", os.environ.get("CIFARLENS_CACHE", str(REPO / "data" / "cache")))


def tiny_config(data_dir: Path, out_dir: Path, **kw: Any) -> TrainConfig:
    """Two short epochs of plain_cnn on `tiny_image_folder` (6 batches of 16), with EMA and kornia augmentation."""
    base = recipe("plain_cnn", "smoke")
    defaults = dict(epochs=2, batch_size=16, per_class=0, test_per_class=0, augment="seed", ema_decay=0.9,
                    progress=False, threads=1)  # fmt: skip
    return replace(base, data_dir=str(data_dir), out_dir=str(out_dir), **{**defaults, **kw})
