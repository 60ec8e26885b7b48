from pathlib import Path

import numpy as np
import pytest
import torch

from training.constants import CLASSES, VAL_PER_CLASS
from training.data import (
    DataError,
    TensorLoader,
    build_augmentation,
    class_counts,
    load_cifar10,
    per_class_subset,
    stratified_split,
)

FULL_LABELS = np.repeat(np.arange(10), 5000)


def test_split_is_stratified_with_1000_val_images_per_class() -> None:
    rng = np.random.default_rng(1)
    labels = rng.permutation(FULL_LABELS)
    train, val = stratified_split(labels, 0.2, seed=42)
    assert len(train) == 40_000 and len(val) == 10_000
    assert set(class_counts(labels[val]).values()) == {VAL_PER_CLASS}
    assert set(class_counts(labels[train]).values()) == {4000}
    assert not set(train) & set(val)


def test_split_is_fixed_by_the_seed() -> None:
    a = stratified_split(FULL_LABELS, 0.2, seed=42)
    b = stratified_split(FULL_LABELS, 0.2, seed=42)
    c = stratified_split(FULL_LABELS, 0.2, seed=7)
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0])
    assert not np.array_equal(a[1], c[1])


def test_per_class_subset() -> None:
    idx = per_class_subset(FULL_LABELS, 3, seed=0)
    assert class_counts(FULL_LABELS[idx]) == {c: 3 for c in CLASSES}


def test_image_folder_loads_and_caches(
    tiny_image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIFARLENS_CACHE", str(tmp_path))
    images, labels = load_cifar10(tiny_image_folder, "train")
    assert images.shape == (120, 32, 32, 3) and images.dtype == np.uint8
    assert class_counts(labels) == {c: 12 for c in CLASSES}
    assert len(list(tmp_path.glob("*.npz"))) == 1
    again, again_labels = load_cifar10(tiny_image_folder, "train")
    assert np.array_equal(images, again) and np.array_equal(labels, again_labels)


def test_missing_folder_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=str(tmp_path / "nope")):
        load_cifar10(tmp_path / "nope", "train")


def test_malformed_folder_says_what_was_expected(tmp_path: Path) -> None:
    (tmp_path / "train" / "cats").mkdir(parents=True)
    with pytest.raises(DataError, match="one folder per CIFAR-10 class"):
        load_cifar10(tmp_path, "train")


@pytest.mark.parametrize("name", ["none", "fast", "seed"])
def test_augmentation_presets_keep_shape_and_range(name: str) -> None:
    torch.manual_seed(0)
    x = torch.rand(16, 3, 32, 32)
    y = build_augmentation(name)(x)
    assert y.shape == x.shape
    if name == "none":
        assert torch.equal(x, y)
    else:
        assert not torch.equal(x, y)


def test_loader_order_depends_only_on_seed_and_epoch() -> None:
    images = torch.arange(50, dtype=torch.uint8).view(50, 1, 1, 1).expand(50, 32, 32, 3).contiguous()
    labels = torch.arange(50) % 10
    loader = TensorLoader(images, labels, batch_size=8, shuffle=True, seed=3)
    epoch1 = [y for _, y in loader.batches(epoch=1)]
    again = [y for _, y in loader.batches(epoch=1)]
    skipped = [y for _, y in loader.batches(epoch=1, start=2)]
    assert all(torch.equal(a, b) for a, b in zip(epoch1, again))
    assert all(torch.equal(a, b) for a, b in zip(epoch1[2:], skipped))
    assert len(epoch1) == 7 and sum(len(y) for y in epoch1) == 50
