"""Training images/s on the CPU: a naive loop against the project's loop, per net, in one run.

Naive: a DataLoader over PIL images with per-image torchvision transforms (crop with padding 4,
flip, ToTensor, Normalize), fp32, NCHW. Project: the uint8 tensor loader with batched kornia
augmentation and channels_last, through `training.engine.train_one_epoch`. Same nets, batch
size, optimiser and number of timed steps. Run it on a quiet machine:

    python -m benchmarks.train_cpu [--steps 20] [--data-dir ../shared/data/cifar10] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from benchmarks.common import RESULTS, check_quiet, finish, machine, markdown_table, write_results
from cifarlens_runtime.constants import IMAGE_SIZE, MEAN, STD
from training.data import TensorLoader, build_augmentation, load_cifar10
from training.engine import train_one_epoch
from training.models import create_model, list_models


class PILDataset(Dataset):
    """What most CIFAR repos do: one PIL image and one transform call per sample."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels
        self.transform = transforms.Compose([
            transforms.RandomCrop(IMAGE_SIZE, padding=4, padding_mode="reflect"),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ])  # fmt: skip

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def naive_steps(model: nn.Module, loader: DataLoader, steps: int, warmup: int) -> float:
    """Images/s of a plain per-batch loop over `steps` batches after `warmup` ones."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    criterion = nn.CrossEntropyLoss()
    model.train()
    it = iter(loader)
    n, start = 0, 0.0
    for i in range(warmup + steps):
        if i == warmup:
            start, n = time.perf_counter(), 0
        x, y = next(it)
        out = model(x)
        logits, aux = (out[0], out[1:]) if isinstance(out, tuple) else (out, ())
        loss = criterion(logits, y) + sum(0.3 * criterion(a, y) for a in aux)
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += len(y)
    return n / (time.perf_counter() - start)


def project_steps(model: nn.Module, loader: TensorLoader, steps: int, warmup: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    criterion = nn.CrossEntropyLoss()
    batches = loader.batches(epoch=0)
    device = torch.device("cpu")
    warm = [next(batches) for _ in range(warmup)]
    train_one_epoch(model, warm, opt, criterion, device, progress=False)
    timed = (b for _, b in zip(range(steps), batches))
    stats = train_one_epoch(model, timed, opt, criterion, device, progress=False)
    return stats.images_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data/cifar10")
    parser.add_argument("--models", nargs="+", default=list_models())
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the naive loop")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"where the results go (default: {RESULTS})")
    parser.add_argument("--force", action="store_true", help="overwrite committed results even from a busy machine")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    info = machine()
    check_quiet(args.out, args.force, info)
    images, labels = load_cifar10(args.data_dir, "train")
    n = args.batch_size * (args.steps + args.warmup)
    images, labels = images[:n], labels[:n]
    rows = []
    for name in args.models:
        torch.manual_seed(0)
        naive_loader = DataLoader(PILDataset(images, labels), args.batch_size, shuffle=True, num_workers=args.workers)
        naive = naive_steps(create_model(name), naive_loader, args.steps, args.warmup)
        torch.manual_seed(0)
        project_loader = TensorLoader(
            torch.from_numpy(images), torch.from_numpy(labels), args.batch_size, shuffle=True,
            augment=build_augmentation("fast"), channels_last=True,
        )  # fmt: skip
        model = create_model(name).to(memory_format=torch.channels_last)
        project = project_steps(model, project_loader, args.steps, args.warmup)
        row = {"model": name, "naive_img_s": round(naive, 1), "project_img_s": round(project, 1),
               "ratio": round(project / naive, 2)}  # fmt: skip
        print(row, flush=True)
        rows.append(row)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    payload = {"machine": finish(info), "settings": settings, "results": rows}
    md = markdown_table(rows, ["model", "naive_img_s", "project_img_s", "ratio"])
    md += (
        f"\n\nTraining images/s on the CPU ({args.threads} threads, batch {args.batch_size}, {args.steps} timed steps "
        f"after {args.warmup} warm-up steps). Naive: DataLoader ({args.workers} workers) with per-image torchvision "
        "transforms, fp32, NCHW. Project: uint8 tensors, batched kornia flip-and-crop, channels_last, "
        "`training.engine.train_one_epoch`."
    )
    for path in write_results("train_cpu_naive", payload, md, args.out):
        print(path)


if __name__ == "__main__":
    main()
