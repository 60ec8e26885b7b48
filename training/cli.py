"""Command line: `python -m training {train,train-all,evaluate,featuremaps,samples,report}`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.config import PROFILES, add_config_arguments, config_from_args
from training.data import DataError
from training.models import list_models


def cmd_train(args: argparse.Namespace) -> int:
    from training.trainer import fit

    fit(config_from_args(args, args.model, args.profile))
    return 0


def cmd_train_all(args: argparse.Namespace) -> int:
    import time

    from training.report import write_report, write_summary
    from training.trainer import fit

    start = time.perf_counter()
    models = args.models or list_models()
    configs = [config_from_args(args, m, args.profile) for m in models]
    for cfg in configs:
        print(f"\n=== {cfg.model} ({args.profile}) ===")
        fit(cfg)
    runs = Path(configs[0].out_dir)
    report = write_report(runs, models)
    total = time.perf_counter() - start
    print(f"\nwrote {report} and {write_summary(runs, models, total)} ({total / 60:.1f} min in all)")
    print(report.read_text())
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from training import plots
    from training.checkpoint import model_from_checkpoint
    from training.constants import CLASSES
    from training.data import TensorLoader, load_cifar10, per_class_subset
    from training.device import precision, resolve_device
    from training.trainer import test_levels

    device = resolve_device(args.device)
    model, ckpt = model_from_checkpoint(args.checkpoint, device)
    model = model.to(memory_format=torch.channels_last)
    data_dir = args.data_dir if args.data_dir is not None else ckpt["config"].get("data_dir")
    images, labels = load_cifar10(data_dir, "test")
    if args.per_class:
        keep = per_class_subset(labels, args.per_class)
        images, labels = images[keep], labels[keep]
    loader = TensorLoader(torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device), 500,
                          channels_last=True)  # fmt: skip
    by_tta = test_levels(model, loader, device, amp=not args.fp32)
    headline = by_tta["flip" if args.tta else "none"]
    out = Path(args.out) if args.out else Path(args.checkpoint).parent
    png = plots.plot_confusion(
        headline.confusion, out / "confusion.png", title=f"{ckpt['model']}: test {headline.acc:.4f}"
    )
    print(f"{ckpt['model']} (epoch {ckpt['epoch']}): test accuracy {headline.acc:.4f} on {headline.images} images"
          f"{' with flip TTA' if args.tta else ''} ({precision(device, not args.fp32)})")  # fmt: skip
    print("  by TTA: " + ", ".join(f"{name} {r.acc:.4f}" for name, r in by_tta.items()))
    for name, acc in zip(CLASSES, headline.per_class_acc):
        print(f"  {name:10s} {acc:.4f}")
    print(f"confusion matrix: {png}")
    result = {
        "model": ckpt["model"],
        "test_acc": headline.acc,
        "tta": args.tta,
        "test_acc_by_tta": {name: r.acc for name, r in by_tta.items()},
        "images": headline.images,
        "precision": precision(device, not args.fp32),
        "per_class": dict(zip(CLASSES, headline.per_class_acc)),
        "confusion": headline.confusion,
    }
    (out / "evaluation.json").write_text(json.dumps(result, indent=1))
    return 0


def cmd_featuremaps(args: argparse.Namespace) -> int:
    from training.checkpoint import model_from_checkpoint
    from training.featuremaps import save_featuremaps

    model, _ = model_from_checkpoint(args.checkpoint)
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / "featuremaps"
    layers = [args.layer] if args.layer else None
    for path in save_featuremaps(model, Path(args.image), out, layers, max_channels=args.max_channels):
        print(path)
    return 0


def cmd_samples(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from training import plots
    from training.constants import CLASSES
    from training.data import build_augmentation, load_cifar10, per_class_subset, to_float

    images, labels = load_cifar10(args.data_dir, "train")
    idx = per_class_subset(labels, args.per_class, args.seed)
    idx = idx[np.argsort(labels[idx], kind="stable")]
    out = Path(args.out)
    titles = [CLASSES[i] for i in labels[idx]]
    print(plots.plot_image_grid(images[idx], titles, out / "samples.png"))
    torch.manual_seed(args.seed)
    aug = build_augmentation(args.augment)
    picked = torch.from_numpy(images[idx[:: args.per_class]])  # one image per class
    variants = [picked.numpy()] + [
        (aug(to_float(picked)).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy() for _ in range(5)
    ]
    grid = np.stack(variants, axis=1).reshape(-1, *images.shape[1:])
    grid_titles = [f"{CLASSES[labels[i]]}" if k == 0 else f"{args.augment} #{k}" for i in idx[:: args.per_class]
                   for k in range(len(variants))]  # fmt: skip
    print(plots.plot_image_grid(grid, grid_titles, out / f"augmented_{args.augment}.png", cols=len(variants)))
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    import shutil

    from training.checkpoint import load_checkpoint, publishable, save_checkpoint

    runs, out = Path(args.runs), Path(args.out)
    for model in args.models or list_models():
        src, dst = runs / model, out / model
        ckpt = publishable(load_checkpoint(src / "best.pt"))
        save_checkpoint(ckpt, dst / "best.pt")
        for name in ("metrics.json", "history.csv", "curves.png", "confusion.png", "config.json"):
            if (src / name).is_file():
                shutil.copy2(src / name, dst / name)
        print(f"{dst / 'best.pt'}: {(dst / 'best.pt').stat().st_size / 2**20:.1f} MiB, test acc "
              f"{ckpt['metrics'].get('test_acc')}")  # fmt: skip
    for name in ("report.md", "report.png"):
        if (runs / name).is_file():
            shutil.copy2(runs / name, out / name)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from training.report import write_report

    path = write_report(Path(args.runs))
    print(path.read_text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one net")
    p.add_argument("--model", required=True, choices=list_models())
    p.add_argument("--profile", default="full", choices=PROFILES, help="recipe the options override")
    add_config_arguments(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("train-all", help="train every net with its recipe, then write runs/report.md")
    p.add_argument("--profile", default="full", choices=PROFILES)
    p.add_argument("--models", nargs="+", choices=list_models())
    add_config_arguments(p)
    p.set_defaults(func=cmd_train_all)

    p = sub.add_parser("evaluate", help="test accuracy, per-class accuracy and a confusion matrix")
    p.add_argument("checkpoint")
    p.add_argument("--data-dir", default=None, help="ImageFolder root (default: the checkpoint's)")
    p.add_argument(
        "--tta",
        action="store_true",
        help="headline accuracy with the horizontally flipped image "
        "averaged in (every TTA level is printed and saved either way)",
    )
    p.add_argument("--per-class", type=int, default=0, help="only this many test images per class (0: all 10,000)")
    p.add_argument("--fp32", action="store_true", help="no bf16 autocast, even where the CPU has native bf16")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="folder for confusion.png (default: beside the checkpoint)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("featuremaps", help="PNG grids of the channels of each inspectable layer")
    p.add_argument("checkpoint")
    p.add_argument("image")
    p.add_argument("--layer", default=None, help="one layer (default: all the net declares)")
    p.add_argument("--max-channels", type=int, default=64)
    p.add_argument("--out", default=None)
    p.set_defaults(func=cmd_featuremaps)

    p = sub.add_parser("samples", help="PNG grids of training images and of augmented variants")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="runs/samples")
    p.add_argument("--augment", default="seed")
    p.add_argument("--per-class", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_samples)

    p = sub.add_parser("publish", help="copy best checkpoints (half precision) and their metrics to weights/")
    p.add_argument("--runs", default="runs")
    p.add_argument("--out", default="weights")
    p.add_argument("--models", nargs="+", choices=list_models())
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("report", help="rewrite runs/report.md from the runs' metrics.json")
    p.add_argument("--runs", default="runs")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
