"""Which tricks of the fast CIFAR-10 trainers pay here: a greedy ablation at a fixed number of images.

Starting from the earlier CPU recipe, each step adds one trick to everything kept so far and keeps
it when val accuracy rises by at least `--keep` points; every run sees the same images (same seed,
same number of steps). Then the TTA levels are compared on the final recipe's net, and the final
recipe is repeated in fp32 to check that bf16 autocast costs no accuracy. Run on a quiet machine:

    python -m benchmarks.recipe_ablation [--model plain_cnn] [--epochs 2] [--data-dir ../shared/data/cifar10]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from typing import Any

import torch

from benchmarks.common import RESULTS, _head, machine, markdown_table, write_results
from training.checkpoint import model_from_checkpoint
from training.config import TrainConfig, recipe
from training.device import precision, resolve_device
from training.engine import evaluate_levels
from training.trainer import fit

# The recipe the project used before this ablation (PROFILE=cpu of the committed weights).
BASELINE = dict(
    schedule="onecycle", label_smoothing=0.1, flip="random", translate=4, ema_decay=0.0, dirac_init=False,
    norm_bias_lr_scale=1.0, lr=0.2, batch_size=256, time_budget=0.0,
)  # fmt: skip
# (name, what it changes), tried in this order, each on top of what was kept before it.
TRICKS: list[tuple[str, dict[str, Any]]] = [
    ("warm-up then linear decay to zero", {"schedule": "linear"}),
    ("label smoothing 0.2", {"label_smoothing": 0.2}),
    ("EMA of the weights (0.99, warm-up)", {"ema_decay": 0.99}),
    ("alternating flip", {"flip": "alternate"}),
    ("translate 2 px instead of 4", {"translate": 2}),
    ("dirac init of convs", {"dirac_init": True}),
    ("8x lr on biases and norm weights", {"norm_bias_lr_scale": 8.0}),
    ("batch 128 (lr 0.1) instead of 256", {"batch_size": 128, "lr": 0.1}),
]


def run(cfg: TrainConfig) -> dict[str, Any]:
    start = time.perf_counter()
    metrics = fit(cfg, log=lambda _: None)
    return {"val_acc": metrics["val_acc"], "test_acc": metrics["test_acc"], "images_seen": metrics["images_seen"],
            "wall_seconds": round(time.perf_counter() - start, 1), "precision": metrics["precision"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="plain_cnn")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--keep", type=float, default=0.2, help="points of val accuracy a trick must add")
    parser.add_argument("--data-dir", default=os.environ.get("DATA_DIR"))
    parser.add_argument("--name", default="recipe_ablation")
    parser.add_argument("--per-class", type=int, default=0, help="train images per class (a quick check of the script)")
    parser.add_argument("--render", action="store_true", help="only rewrite the Markdown from the committed JSON")
    args = parser.parse_args()
    if args.render:
        payload = json.loads((RESULTS / f"{args.name}.json").read_text())
        (RESULTS / f"{args.name}.md").write_text(_head(payload["machine"]) + render(payload) + "\n")
        return

    info = machine()
    out = tempfile.mkdtemp(prefix="ablation_")
    cfg = recipe(args.model, "cpu", **BASELINE, epochs=args.epochs, data_dir=args.data_dir, out_dir=out,
                 progress=False, tta=False, per_class=args.per_class, test_per_class=args.per_class)  # fmt: skip
    rows: list[dict[str, Any]] = []

    def record(name: str, c: TrainConfig, base_acc: float | None, kept: str) -> dict[str, Any]:
        r = run(replace(c, run_name=f"{len(rows):02d}", data_dir=args.data_dir))
        row = {"trick": name, "net": args.model, **r,
               "delta_points": None if base_acc is None else round(100 * (r["val_acc"] - base_acc), 2), "kept": kept}  # fmt: skip
        rows.append(row)
        print(f"{name:40s} val {r['val_acc']:.4f}  {row['delta_points']} pts  {r['wall_seconds']:.0f}s", flush=True)
        return row

    best = record("baseline (earlier CPU recipe)", cfg, None, "-")["val_acc"]
    best_dir = os.path.join(out, "00")
    for name, change in TRICKS:
        trial = replace(cfg, **change)
        row = record(name, trial, best, "")
        keep = 100 * (row["val_acc"] - best) >= args.keep
        row["kept"] = "yes" if keep else "no"
        if keep:
            cfg, best, best_dir = trial, row["val_acc"], os.path.join(out, f"{len(rows) - 1:02d}")

    # TTA levels on the final recipe's net (the val split, the same weights).
    device = resolve_device(cfg.device)
    model, _ = model_from_checkpoint(os.path.join(best_dir, "best.pt"))
    from training.data import CifarData

    data = CifarData(cfg, device, log=lambda _: None)
    tta = evaluate_levels(model.to(memory_format=torch.channels_last), data.loader("val", cfg), device,
                          levels=(0, 1, 2), amp=cfg.amp)  # fmt: skip
    tta_rows = [{"tta": n, "val_acc": round(tta[lv].acc, 5), "delta_points": round(100 * (tta[lv].acc - tta[0].acc), 2)}
                for lv, n in ((0, "none"), (1, "flip"), (2, "flip + 1 px translate"))]  # fmt: skip

    if precision(device, True) != "fp32":
        record("same final recipe in fp32 (bf16 check)", replace(cfg, amp=False), best, "-")

    info["load_average_at_end"] = os.getloadavg()
    payload = {"machine": info, "model": args.model, "epochs": args.epochs, "keep_threshold_points": args.keep,
               "baseline": BASELINE, "final_recipe": {k: getattr(cfg, k) for k in BASELINE}, "runs": rows,
               "tta_on_final": tta_rows}  # fmt: skip
    js, mdp = write_results(args.name, payload, render(payload))
    print(f"wrote {js} and {mdp}")


def render(payload: dict[str, Any]) -> str:
    """The Markdown report of an ablation payload (also re-rendered from the JSON with --render)."""

    def fmt(r: dict[str, Any]) -> dict[str, Any]:
        d = r.get("delta_points")
        return {**r, "val_acc": f"{100 * r['val_acc']:.2f} %", "delta_points": "" if d is None else f"{d:+.2f}",
                "images_seen": f"{r['images_seen']:,}" if "images_seen" in r else ""}  # fmt: skip

    rows, best = payload["runs"], max(r["val_acc"] for r in payload["runs"] if r["kept"] in ("yes", "-"))
    cols = ["trick", "net", "images_seen", "val_acc", "delta_points", "kept", "wall_seconds", "precision"]
    md = [
        f"# Recipe ablation: {payload['model']}, {payload['epochs']} epochs of the 40,000 training images per run",
        "",
        "Greedy: each trick is added to everything kept so far and kept when val accuracy (no TTA) rises by "
        f"at least {payload['keep_threshold_points']} points. Same seed and images for every run; one seed, so "
        "differences under about half a point are within run-to-run noise. Wall times include validation and "
        "testing.",
        "",
        markdown_table([fmt(r) for r in rows], cols),
        "",
        "## Test-time augmentation on the final recipe's net (val split)",
        "",
        markdown_table([fmt(r) for r in payload["tta_on_final"]], ["tta", "val_acc", "delta_points"]),
    ]
    fp32 = next((r for r in rows if r["precision"] == "fp32" and r["kept"] == "-"), None)
    if fp32:
        bf16 = next(r for r in rows if r["val_acc"] == best)
        md += ["", f"bf16 autocast vs fp32 at equal images: {100 * (best - fp32['val_acc']):+.2f} points "
                   f"(bf16 {100 * best:.2f} %, fp32 {100 * fp32['val_acc']:.2f} %), "
                   f"{bf16['wall_seconds'] / fp32['wall_seconds']:.2f}x the fp32 wall time."]  # fmt: skip
    return "\n".join(md)


if __name__ == "__main__":
    main()
