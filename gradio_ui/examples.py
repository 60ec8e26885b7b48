"""CIFAR-10 test images for the page's gallery.

A fresh clone ships 50 real test images (5 per class, JPEG as in the shared copy, 46 KB in all) under
gradio_ui/gallery/<class>_<number>.jpg, so the gallery, the examples and the browser test need no data.
Given a CIFAR-10 root (--data-dir or DATA_DIR: an ImageFolder test/<class>/*.jpg, or torchvision's
downloaded test batch), the page picks from the whole test split instead.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cifarlens_runtime.constants import CLASSES
from cifarlens_runtime.files import DATA_ENV, TORCHVISION_FOLDER, find_cifar10, image_files

# Shipped test images, named <class>_<number in the test split's class folder>.jpg.
GALLERY_DIR = Path(__file__).resolve().parent / "gallery"


@dataclass(frozen=True)
class Example:
    """One test image and its true class."""

    image: Image.Image
    label: str
    source: str

    @property
    def caption(self) -> str:
        return f"true: {self.label}"


def shipped_examples(folder: Path = GALLERY_DIR) -> list[Example]:
    """The test images committed with the page, interleaved by class (one of each class, then the next)."""
    by_class: dict[str, list[Example]] = {label: [] for label in CLASSES}
    for path in image_files(folder) if folder.is_dir() else []:
        label = path.stem.rsplit("_", 1)[0]
        if label in by_class:
            by_class[label].append(Example(_open(path), label, str(path)))
    return [ex for group in zip(*by_class.values(), strict=False) for ex in group]


def load_examples(data_dir: str | Path | None = None, per_class: int = 2, seed: int = 0) -> list[Example]:
    """Gallery images: from the CIFAR-10 root given (`data_dir` or $DATA_DIR), `per_class` of every class chosen
    with a fixed seed; without one given (or none found there), the shipped images."""
    root = find_cifar10(data_dir, "test") if (data_dir or os.environ.get(DATA_ENV)) else None
    if root is None:
        return shipped_examples()
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
