"""CIFAR-10 test images for the page's gallery, picked at run time from whatever data is reachable.

Nothing is committed: the images come from an ImageFolder root (test/<class>/*.jpg), such as
DATA_DIR or the shared copy beside the repository, or from torchvision's downloaded test batch.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from training.constants import CLASSES

REPO = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Example:
    """One test image and its true class."""

    image: Image.Image
    label: str
    source: str

    @property
    def caption(self) -> str:
        return f"true: {self.label}"


def candidate_dirs(data_dir: str | Path | None = None) -> list[Path]:
    """Where CIFAR-10 may be, most explicit first."""
    dirs = [
        data_dir,
        os.environ.get("DATA_DIR"),
        REPO / "data" / "cifar10",
        REPO.parent / "shared" / "data" / "cifar10",
    ]
    dirs.append(REPO / "data")
    return [Path(d) for d in dirs if d]


def find_data_dir(data_dir: str | Path | None = None) -> Path | None:
    """The first folder holding a CIFAR-10 test split (ImageFolder or torchvision's batches)."""
    for d in candidate_dirs(data_dir):
        if (d / "test").is_dir() or (d / "cifar-10-batches-py" / "test_batch").is_file():
            return d
    return None


def load_examples(data_dir: str | Path | None = None, per_class: int = 2, seed: int = 0) -> list[Example]:
    """`per_class` test images of every class, interleaved by class, chosen with a fixed seed; [] without data."""
    root = find_data_dir(data_dir)
    if root is None:
        return []
    rng = np.random.default_rng(seed)
    picked: list[list[Example]] = []
    if (root / "test").is_dir():
        for label in CLASSES:
            files = sorted(p for p in (root / "test" / label).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            idx = sorted(rng.choice(len(files), size=min(per_class, len(files)), replace=False)) if files else []
            picked.append([Example(_open(files[i]), label, str(files[i])) for i in idx])
    else:
        images, labels = _torchvision_test_batch(root / "cifar-10-batches-py" / "test_batch")
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
