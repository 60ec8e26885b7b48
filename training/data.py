"""CIFAR-10 as uint8 tensors: two sources, one cache, a stratified split and batched augmentation.

Images are decoded once into a uint8 array (cached on disk for the ImageFolder source), then
served in batches straight from memory, on the training device. Augmentation is drawn per sample
but applied to whole batches (a gather for the shift, a mask for cutout; kornia only for the `seed`
preset's rotation, colour jitter and erasing), so no per-image Python sits on the hot path. A run
builds its three loaders once (`CifarData.loaders`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from cifarlens_runtime.constants import CLASSES, DEFAULT_SEED, IMAGE_SIZE, IMAGE_SUFFIXES, MEAN, STD
from cifarlens_runtime.files import replacing
from training.config import AUGMENTATIONS, FLIPS, TrainConfig

SPLITS = ("train", "test")
DEFAULT_DOWNLOAD_ROOT = Path("data")


class DataError(RuntimeError):
    """The data folder is missing or not laid out as expected."""


def cache_dir() -> Path:
    """Where decoded arrays are cached: $CIFARLENS_CACHE, else ./data/cache."""
    return Path(os.environ.get("CIFARLENS_CACHE", DEFAULT_DOWNLOAD_ROOT / "cache"))


def _image_folder_files(root: Path, split: str) -> list[tuple[Path, int]]:
    split_dir = root / split
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist (expected {root}/train/<class>/*.jpg and {root}/test/...)")
    if not split_dir.is_dir():
        raise DataError(f"{split_dir} is missing: expected an ImageFolder root with train/ and test/")
    found = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if found != sorted(CLASSES):
        raise DataError(f"{split_dir} must hold one folder per CIFAR-10 class {list(CLASSES)}; found {found}")
    files = []
    for label, name in enumerate(CLASSES):
        images = sorted(p for p in (split_dir / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DataError(f"{split_dir / name} holds no .jpg or .png images")
        files += [(p, label) for p in images]
    return files


def _decode(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        arr = np.asarray(img.convert("RGB"))
    if arr.shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise DataError(f"{path} is {arr.shape[1]}x{arr.shape[0]}, expected {IMAGE_SIZE}x{IMAGE_SIZE}")
    return arr


def _load_image_folder(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    files = _image_folder_files(root, split)
    key = hashlib.sha1(f"{root.resolve()}|{split}|{len(files)}|{files[-1][0].name}".encode()).hexdigest()[:12]
    cached = cache_dir() / f"cifar10_{split}_{key}.npz"
    if cached.is_file():
        with np.load(cached) as npz:
            return npz["images"], npz["labels"]
    from tqdm import tqdm

    with ThreadPoolExecutor(max_workers=4) as pool:
        images = list(tqdm(pool.map(_decode, (p for p, _ in files)), total=len(files), desc=f"decode {split}"))
    arrays = np.stack(images), np.asarray([label for _, label in files], dtype=np.int64)
    with replacing(cached) as tmp:
        np.savez(tmp, images=arrays[0], labels=arrays[1])
    return arrays


def load_cifar10(data_dir: str | Path | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) uint8 and labels (N,) int64 of one split.

    `data_dir=None` downloads the original with torchvision into ./data; a folder is read as an
    ImageFolder root holding train/ and test/ with one sub-folder per class.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if data_dir is None or str(data_dir) == "":
        from torchvision.datasets import CIFAR10

        ds = CIFAR10(root=str(DEFAULT_DOWNLOAD_ROOT), train=split == "train", download=True)
        return np.asarray(ds.data, dtype=np.uint8), np.asarray(ds.targets, dtype=np.int64)
    return _load_image_folder(Path(data_dir), split)


def stratified_split(
    labels: np.ndarray, val_fraction: float = 0.2, seed: int = DEFAULT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Train and val indices with the same share of every class in val (1,000 per class on the full set)."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(len(idx) * val_fraction))
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def per_class_subset(labels: np.ndarray, per_class: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """Indices of `per_class` random images of each class (for smoke runs and tests)."""
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(picks))


def class_counts(labels: np.ndarray) -> dict[str, int]:
    """Number of images of each class, by name."""
    counts = np.bincount(labels, minlength=len(CLASSES))
    return {name: int(n) for name, n in zip(CLASSES, counts)}


class RandomTranslate(nn.Module):
    """Shift every image by its own random offset of up to `pad` px (reflect padding), in one gather.

    The batched form of a padded random crop: no per-image Python and no warping, so it costs
    about as much as a copy on any device.
    """

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = int(pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad <= 0:
            return x
        n, c, h, w = x.shape
        padded = nn.functional.pad(x, (self.pad,) * 4, mode="reflect")
        shifts = torch.randint(0, 2 * self.pad + 1, (n, 2), device=x.device)
        rows = (torch.arange(h, device=x.device) + shifts[:, :1]).view(n, 1, h, 1).expand(n, c, h, w + 2 * self.pad)
        x = padded.gather(2, rows)
        cols = (torch.arange(w, device=x.device) + shifts[:, 1:]).view(n, 1, 1, w).expand(n, c, h, w)
        return x.gather(3, cols)

    def extra_repr(self) -> str:
        return f"pad={self.pad}"


class Cutout(nn.Module):
    """Fill one `size` x `size` square per image, centred anywhere (so it may be cut by the border),
    with the dataset mean (DeVries & Taylor, 2017): zero after normalisation, i.e. no information."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = int(size)
        self.register_buffer("fill", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size <= 0:
            return x
        n, _, h, w = x.shape
        centre = torch.stack(
            [torch.randint(0, h, (n,), device=x.device), torch.randint(0, w, (n,), device=x.device)], 1
        )
        start = centre - self.size // 2
        r = torch.arange(h, device=x.device).view(1, h) - start[:, :1]
        c = torch.arange(w, device=x.device).view(1, w) - start[:, 1:]
        rows, cols = (r >= 0) & (r < self.size), (c >= 0) & (c < self.size)
        mask = (rows.view(n, 1, h, 1) & cols.view(n, 1, 1, w)).to(x.dtype)
        return x * (1 - mask) + self.fill.to(x.dtype) * mask

    def extra_repr(self) -> str:
        return f"size={self.size}"


def build_augmentation(name: str, translate: int = 4, cutout: int = 0) -> nn.Module:
    """Batched, per-sample random augmentation on float images in [0, 1] (before normalisation).

    Flips are not part of it: the loader flips (randomly or alternating by epoch, see `FLIPS`).
    `fast` translates by up to `translate` px, then cuts out a `cutout` px square when `cutout` > 0;
    `seed` adds the original author's rotation, colour jitter and erasing (kornia).
    """
    if name == "none":
        return nn.Identity()
    if name == "fast":
        return nn.Sequential(RandomTranslate(translate), Cutout(cutout)) if cutout else RandomTranslate(translate)
    if name == "seed":
        import kornia.augmentation as K

        return nn.Sequential(
            RandomTranslate(translate),
            K.RandomRotation(15.0),
            K.ColorJitter(0.2, 0.2, 0.2, p=1.0),
            K.RandomErasing(scale=(0.02, 0.1), p=0.5),
        )
    raise ValueError(f"unknown augmentation {name!r}; choose one of {AUGMENTATIONS}")


class Normalize(nn.Module):
    """uint8 NHWC batch -> normalised float NCHW batch, on whatever device the batch is on."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1]."""
    return images.permute(0, 3, 1, 2).float().div_(255.0)


@dataclass
class TensorLoader:
    """Batches of a uint8 image tensor kept on the training device.

    The order of epoch `e` is a permutation drawn from `seed + e` alone, so a resumed run can
    skip to any batch of any epoch and see exactly the batches it would have seen. `flip`:
    `random` flips each image with probability 1/2 in every epoch; `alternate` (airbench's
    derandomised flip) flips a seeded random half in even epochs and the other half in odd
    ones, so every image is seen both ways within any two consecutive epochs.
    """

    images: torch.Tensor  # (N, 32, 32, 3) uint8
    labels: torch.Tensor  # (N,) int64
    batch_size: int
    shuffle: bool = False
    augment: nn.Module | None = None
    drop_last: bool = False
    seed: int = DEFAULT_SEED
    channels_last: bool = False
    flip: str = "none"
    rank: int = 0  # under torchrun: this process yields its own slice of every (global) batch
    world_size: int = 1

    def __post_init__(self) -> None:
        if self.flip not in FLIPS:
            raise ValueError(f"flip must be one of {FLIPS}, got {self.flip!r}")
        self.normalize = Normalize().to(self.images.device)

    def flip_mask(self, epoch: int) -> torch.Tensor | None:
        """Which images are mirrored in epoch `epoch` (None: none are); depends on seed and epoch alone."""
        if self.flip == "none":
            return None
        n = len(self.labels)
        if self.flip == "random":
            g = torch.Generator().manual_seed(self.seed * 7919 + epoch + 1)
            return (torch.rand(n, generator=g) < 0.5).to(self.images.device)
        g = torch.Generator().manual_seed(self.seed * 7919)
        return (torch.rand(n, generator=g) < 0.5).to(self.images.device) ^ bool(epoch % 2)

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised batches of epoch `epoch`, beginning at batch `start`."""
        n = len(self.labels)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(n, generator=g).to(self.images.device)
        else:
            order = torch.arange(n, device=self.images.device)
        flips = self.flip_mask(epoch)
        for i in range(start, len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            if self.world_size > 1:  # the same seeded permutation on every rank, each takes its own part
                share = len(idx) // self.world_size
                idx = idx[self.rank * share : (self.rank + 1) * share]
            x = to_float(self.images[idx])
            if flips is not None:
                x = torch.where(flips[idx].view(-1, 1, 1, 1), x.flip(3), x)
            if self.augment is not None:
                x = self.augment(x)
            x = self.normalize(x)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches()


@dataclass
class Loaders:
    """A run's three loaders, built once: shuffled and augmented `train` (this rank's part of each batch),
    plain `val` and `test`."""

    train: TensorLoader
    val: TensorLoader | None  # None: val_fraction 0, every training image is trained on
    test: TensorLoader


class CifarData:
    """The three parts of CIFAR-10 for one run (train, stratified val, test), as uint8 tensors on `device`."""

    def __init__(self, cfg: TrainConfig, device: torch.device, log: Any = print) -> None:
        images, labels = load_cifar10(cfg.data_dir, "train")
        if cfg.per_class:
            keep = per_class_subset(labels, cfg.per_class, cfg.seed)
            images, labels = images[keep], labels[keep]
        train_idx, val_idx = stratified_split(labels, cfg.val_fraction, cfg.seed)
        test_images, test_labels = load_cifar10(cfg.data_dir, "test")
        if cfg.test_per_class:
            keep = per_class_subset(test_labels, cfg.test_per_class, cfg.seed)
            test_images, test_labels = test_images[keep], test_labels[keep]

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(device)

        self.train = (t(images[train_idx]), t(labels[train_idx]))
        self.val = (t(images[val_idx]), t(labels[val_idx]))
        self.test = (t(test_images), t(test_labels))
        for part, lab in (("train", labels[train_idx]), ("val", labels[val_idx]), ("test", test_labels)):
            log(f"{part:5s} {len(lab):6d} images  " + " ".join(f"{k}={v}" for k, v in class_counts(lab).items()))

    def loader(self, part: str, cfg: TrainConfig, rank: int = 0, world_size: int = 1) -> TensorLoader:
        """Shuffled, flipped and augmented batches of `train` (this rank's part of each); plain `val` and `test`."""
        images, labels = getattr(self, part)
        if part == "train":
            return TensorLoader(
                images,
                labels,
                cfg.batch_size,
                shuffle=True,
                augment=build_augmentation(cfg.augment, cfg.translate, cfg.cutout).to(images.device),
                drop_last=len(labels) >= 2 * cfg.batch_size,
                seed=cfg.seed,
                channels_last=cfg.channels_last,
                flip=cfg.flip,
                rank=rank,
                world_size=world_size,
            )
        return TensorLoader(images, labels, cfg.eval_batch_size, channels_last=cfg.channels_last)

    def loaders(self, cfg: TrainConfig, rank: int = 0, world_size: int = 1) -> Loaders:
        """The three loaders of a run (`train` for this rank); no `val` when nothing is held out."""
        val = self.loader("val", cfg) if len(self.val[1]) else None
        return Loaders(self.loader("train", cfg, rank, world_size), val, self.loader("test", cfg))
