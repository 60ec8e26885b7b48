from pathlib import Path

import numpy as np
import pytest
import torch

from cifarlens_runtime.constants import CLASSES, VAL_PER_CLASS
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


def _loader(flip: str) -> TensorLoader:
    images = torch.zeros(40, 32, 32, 3, dtype=torch.uint8)
    images[:, :, :16] = 255  # left half white: a mirrored image has its white half on the right
    return TensorLoader(images, torch.arange(40) % 10, batch_size=8, flip=flip, seed=5)


def _mirrored(loader: TensorLoader, epoch: int) -> torch.Tensor:
    """Per image (in dataset order), whether epoch `epoch` showed it mirrored."""
    x = torch.cat([b for b, _ in loader.batches(epoch)])
    return x[:, 0, 0, -1] > x[:, 0, 0, 0]


def test_alternating_flip_mirrors_each_image_in_exactly_one_of_two_epochs() -> None:
    loader = _loader("alternate")
    e0, e1, e2 = (_mirrored(loader, e) for e in range(3))
    assert torch.equal(e0, ~e1) and torch.equal(e0, e2)
    assert 10 <= int(e0.sum()) <= 30  # about half, drawn from the seed


def test_random_flip_is_redrawn_every_epoch_and_none_never_flips() -> None:
    loader = _loader("random")
    e0, e1 = _mirrored(loader, 0), _mirrored(loader, 1)
    assert not torch.equal(e0, e1) and not torch.equal(e0, ~e1)
    assert not _mirrored(_loader("none"), 0).any()


def test_translate_shifts_each_image_by_at_most_pad_pixels() -> None:
    from training.data import RandomTranslate

    torch.manual_seed(0)
    x = torch.zeros(64, 1, 32, 32)
    x[:, :, 16, 16] = 1.0
    y = RandomTranslate(2)(x)
    rows, cols = (y[:, 0] == 1).nonzero()[:, 1], (y[:, 0] == 1).nonzero()[:, 2]
    assert len(rows) == 64  # the dot survives in every image: a shift, not a crop that loses it
    assert rows.min() >= 14 and rows.max() <= 18 and cols.min() >= 14 and cols.max() <= 18
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 10  # shifts differ per image


def test_cutout_fills_one_square_per_image_with_the_mean() -> None:
    from cifarlens_runtime.constants import MEAN
    from training.data import Cutout

    torch.manual_seed(0)
    x = torch.full((32, 3, 32, 32), 2.0)
    y = Cutout(8)(x)
    filled = y[:, 0] != 2.0
    counts = filled.flatten(1).sum(1)
    assert counts.max() == 8 * 8 and counts.min() > 0  # an 8x8 square, cut where it leaves the image
    assert torch.allclose(y[:, 1][filled], torch.tensor(MEAN[1]))
    assert torch.equal(Cutout(0)(x), x)
