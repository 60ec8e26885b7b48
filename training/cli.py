"""Command line: `python -m training {train,train-all,evaluate,featuremaps,samples,report}`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from training.config import AUGMENTATIONS, AUTO, AUTO_OTHER, AUTO_PROFILES, PROFILES, TrainConfig, resolve_profile
from training.data import DataError
from training.models import list_models
from training.options import add_config_arguments, config_from_args


def planned_configs(args: argparse.Namespace, models: list[str]) -> tuple[list[TrainConfig], str, str]:
    """Each net's config for `args`, the profile's name and how it is shown (`cpu (auto: no CUDA device)`).

    A real run and `--dry-run` both come through here, so a dry run shows what the run would use.
    `--config FILE` (train only) replays a saved config.json instead of a profile's recipe.
    """
    from training.device import resolve_device

    if getattr(args, "config", None):
        return [config_from_args(args, m, "") for m in models], "", f"none (replaying {args.config})"
    device_option = args.device if args.device is not None else TrainConfig.device
    profile, shown = resolve_profile(args.profile, resolve_device(device_option).type, device_option)
    return [config_from_args(args, m, profile) for m in models], profile, shown


def describe_config(cfg: TrainConfig) -> list[str]:
    """What a run of `cfg` would use, one fact a line; reads no data and writes nothing."""
    from training.device import describe_device, precision, resolve_device

    device = resolve_device(cfg.device)
    if cfg.time_budget:
        budget = f"{cfg.time_budget:.0f} s (steps sized from the throughput measured at the start)"
    elif cfg.total_steps:
        budget = f"{cfg.total_steps} steps"
    else:
        each = f", at most {cfg.max_steps_per_epoch} steps each" if cfg.max_steps_per_epoch else ""
        budget = f"{cfg.epochs} epoch{'s' if cfg.epochs > 1 else ''}{each}"
    subset = [f"{n} {split} images per class" for n, split in ((cfg.per_class, "train"), (cfg.test_per_class, "test"))
              if n]  # fmt: skip
    data = (cfg.data_dir or "torchvision download into data/") + (f" ({', '.join(subset)})" if subset else "")
    chunks = f" in {cfg.accumulate} chunks" if cfg.accumulate > 1 else ""
    return [
        f"device: {describe_device(device, cfg.threads)}",
        f"precision: {precision(device, cfg.amp)}",
        f"batch: {cfg.batch_size}{chunks} (eval {cfg.eval_batch_size})",
        f"lr: {cfg.lr:g} ({cfg.optimizer}, {cfg.schedule} schedule, x{cfg.norm_bias_lr_scale:g} on biases and "
        f"norm weights, weight decay {cfg.weight_decay:g})",
        f"budget: {budget}",
        f"augmentation: {cfg.augment} (shift {cfg.translate} px, flip {cfg.flip}, cutout {cfg.cutout or 'none'})",
        f"data: {data}",
        f"out: {Path(cfg.out_dir) / cfg.name} (not written)",
    ]


def print_plan(configs: list[TrainConfig], shown_profile: str) -> int:
    """`--dry-run`: each net's resolved config, then exit without training."""
    for cfg in configs:
        kwargs = f" {json.dumps(cfg.model_kwargs)}" if cfg.model_kwargs else ""
        print(f"=== {cfg.model}{kwargs} (dry run) ===")
        print(f"profile: {shown_profile}")
        print("\n".join(describe_config(cfg)))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    if not args.model and not args.config:
        raise ValueError("train needs --model NET or --config FILE")
    (cfg,), _, shown = planned_configs(args, [args.model])
    if args.dry_run:
        return print_plan([cfg], shown)
    from training.trainer import fit

    print(f"profile: {shown}")
    fit(cfg)
    return 0


def cmd_train_all(args: argparse.Namespace) -> int:
    import time

    models = args.models or list_models()
    configs, profile, shown = planned_configs(args, models)
    if args.dry_run:
        return print_plan(configs, shown)
    from training.report import write_report, write_summary
    from training.trainer import fit

    start = time.perf_counter()
    print(f"profile: {shown}")
    for cfg in configs:
        print(f"\n=== {cfg.model} ({profile}) ===")
        fit(cfg)
    runs = Path(configs[0].out_dir)
    report = write_report(runs, models)
    total = time.perf_counter() - start
    print(f"\nwrote {report} and {write_summary(runs, models, total)} ({total / 60:.1f} min in all)")
    print(report.read_text())
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from cifarlens_runtime.constants import CLASSES
    from training import plots
    from training.checkpoint import model_from_checkpoint
    from training.data import TensorLoader, load_cifar10, per_class_subset
    from training.device import precision, resolve_device
    from training.final import test_levels

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

    from cifarlens_runtime.constants import CLASSES
    from training import plots
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
    from training.publish import publish

    publish(Path(args.runs), Path(args.out), args.models or list_models(), force=args.force)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from training.report import write_report

    path = write_report(Path(args.runs))
    print(path.read_text())
    return 0


TRAIN_HELP = """\
Train with a profile's recipe for each net; every option below overrides it. In brackets, what each
profile sets an option to; `--dry-run` prints exactly what a run will use, per net.

A run writes into <out-dir>/<run-name>/: config.json, best.pt, last.pt, history.csv/json, curves.png,
metrics.json, confusion.png, train.log (every line it prints) and TensorBoard events
(`tensorboard --logdir runs`). `--resume` (auto) continues its last.pt, `--resume PATH` another one; a
resume refuses a recipe other than the one the run started with (it lists the fields) unless
--force-resume. Where and how a run goes (paths, device, threads, compile, progress, save/stop, eval
batch) is not part of the recipe."""


def _add_plan_arguments(p: argparse.ArgumentParser) -> None:
    """--profile, --dry-run and every TrainConfig option: what `train` and `train-all` share."""
    by_device = ", ".join(f"{name} on {kind.upper()}" for kind, name in AUTO_PROFILES.items())
    p.add_argument("--profile", default=AUTO, choices=(AUTO, *PROFILES),
                   help=f"recipe the options override (default {AUTO}: {by_device}, else {AUTO_OTHER})")  # fmt: skip
    p.add_argument("--dry-run", action="store_true",
                   help="print each net's resolved config (profile, device, precision, batch, lr, budget, "
                   "augmentation) and exit: nothing is trained, read or written")  # fmt: skip
    add_config_arguments(p)


def _add_training_commands(sub: Any) -> None:
    """`train` and `train-all`."""
    p = sub.add_parser("train", help="train one net", description=TRAIN_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--model", choices=list_models(), help="the net to train (required unless --config gives it)")
    p.add_argument("--config", metavar="FILE", help="replay a saved config.json (its recipe, not its --resume or "
                   "--stop-after); the options given beside it override it, --profile is not used")  # fmt: skip
    _add_plan_arguments(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("train-all", help="train every net with its recipe, then write runs/report.md",
                       description=TRAIN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--models", nargs="+", choices=list_models())
    _add_plan_arguments(p)
    p.set_defaults(func=cmd_train_all)


def _add_checkpoint_commands(sub: Any) -> None:
    """`evaluate` and `featuremaps`: what a trained checkpoint does."""
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


def _add_file_commands(sub: Any) -> None:
    """`samples`, `publish` and `report`: figures, shipped weights and the comparison of the runs."""
    p = sub.add_parser("samples", help="PNG grids of training images and of augmented variants")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="runs/samples")
    p.add_argument("--augment", default="seed", choices=AUGMENTATIONS)
    p.add_argument("--per-class", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_samples)

    p = sub.add_parser(
        "publish",
        help="copy best checkpoints (half precision) with their record to weights/, "
        "each only where its recorded test accuracy beats the shipped one's",
    )
    p.add_argument("--runs", default="runs")
    p.add_argument("--out", default="weights")
    p.add_argument("--models", nargs="+", choices=list_models())
    p.add_argument("--force", action="store_true", help="ship even where the shipped net tested better")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("report", help="rewrite runs/report.md from the runs' metrics.json")
    p.add_argument("--runs", default="runs")
    p.set_defaults(func=cmd_report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_training_commands(sub)
    _add_checkpoint_commands(sub)
    _add_file_commands(sub)
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
