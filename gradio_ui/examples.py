"""CIFAR-10 test images for the page's gallery, picked at run time from whatever data is reachable.

Nothing is committed: the images come from an ImageFolder root (test/<class>/*.jpg) such as
DATA_DIR, or from torchvision's downloaded test batch (`cifarlens_runtime.files.find_cifar10` looks).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cifarlens_runtime.constants import CLASSES
from cifarlens_runtime.files import TORCHVISION_FOLDER, find_cifar10, image_files


@dataclass(frozen=True)
class Example:
    """One test image and its true class."""

    image: Image.Image
    label: str
    source: str

    @property
    def caption(self) -> str:
        return f"true: {self.label}"


def load_examples(data_dir: str | Path | None = None, per_class: int = 2, seed: int = 0) -> list[Example]:
    """`per_class` test images of every class, interleaved by class, chosen with a fixed seed; [] without data."""
    root = find_cifar10(data_dir, "test")
    if root is None:
        return []
    rng = np.random.default_rng(seed)
    picked: list[list[Example]] = []
    if (root / "test").is_dir():
        for label in CLASSES:
            folder = root / "test" / label
            files = image_files(folder) if folder.is_dir() else []
            idx = sorted(rng.choice(len(files), size=min(per_class, len(files)), replace=False)) if files else []
            picked.append([Example(_open(files[i]), label, str(files[i])) for i in idx])
    else:
        images, labels = _torchvision_test_batch(root / TORCHVISION_FOLDER / "test_batch")
        for c, label in enumerate(CLASSES):
            pool = np.flatnonzero(labels == c)
            idx = sorted(rng.choice(pool, size=min(per_class, len(pool)), replace=False)) if len(pool) else []
            picked.append([Example(Image.fromarray(images[i]), label, f"test_batch[{i}]") for i in idx])
    return [ex for group in zip(*picked, strict=False) for ex in group]


def _open(path: Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def _torchvision_test_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """torchvision's CIFAR-10 test batch, read without torchvision (a pickled dict of numpy arrays)."""
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="latin1")
    images = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(batch["labels"], dtype=np.int64)
