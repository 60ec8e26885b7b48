"""Regularisation measured where it matters: SENet at 15 epochs per candidate, equal images seen.

The 2-epoch ablation (recipe_ablation.md) could not show what EMA, cutout or stronger
regularisation do over a long run, and the GPU run's SENet ended 7.8 points above its val
accuracy in train accuracy. Here each candidate changes one thing of the CPU recipe and trains
SENet for the same number of steps (same seed, same 40,000 / 10,000 split, no time budget, so a
run resumed on another machine sees the same images); val accuracy (no TTA) decides.

Every candidate is its own resumable run under `--out` (default runs/ablation_long/): stop the
script at any time (Ctrl-C, SIGTERM, the end of a session) and start it again to continue where
it stopped; finished candidates are skipped. The JSON and Markdown are rewritten after each one.
A candidate whose run folder is gone (runs/ is not in git, and a new machine starts without it) but
whose row is in the committed JSON counts as finished: its row is kept, it is not trained again.

    nohup python -m benchmarks.recipe_ablation_long --data-dir ../shared/data/cifar10 >> ablation_long.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, _head, machine, markdown_table, write_results
from training.config import TrainConfig, recipe
from training.trainer import fit

MODEL = "se_net"
# (name, what it changes against the CPU recipe), run in this order: the likeliest gains first,
# since a slow CPU finishes about one candidate per session.
CANDIDATES: list[tuple[str, dict[str, Any]]] = [
    ("CPU recipe (dropout 0.2, no DropBlock, wd 5e-4, smoothing 0.2)", {}),
    ("cutout 8 px", {"cutout": 8}),
    ("EMA of the weights (0.998)", {"ema_decay": 0.998}),
    ("DropBlock 0.1 and dropout 0.6 (as designed)", {"model_kwargs": {"drop_block": 0.1, "dropout": 0.6}}),
    ("weight decay 1e-3", {"weight_decay": 1e-3}),
    ("label smoothing 0.1", {"label_smoothing": 0.1}),
]


def candidate_config(index: int, change: dict[str, Any], args: argparse.Namespace) -> TrainConfig:
    """The CPU recipe with `change`, sized by epochs (not time), resumable, in its own run folder."""
    base = recipe(MODEL, "cpu")
    kwargs = {**base.model_kwargs, **change.get("model_kwargs", {})}
    return recipe(
        MODEL, "cpu", **{**change, "model_kwargs": kwargs}, epochs=args.epochs, time_budget=0.0, data_dir=args.data_dir,
        out_dir=args.out, run_name=f"{index:02d}", resume=True, compile=args.compile,
        per_class=args.per_class, test_per_class=args.per_class, progress=False,
        **({} if args.amp is None else {"amp": args.amp}),
    )  # fmt: skip


def result_row(name: str, cfg: TrainConfig, run_dir: Path) -> dict[str, Any] | None:
    """The finished candidate's numbers from its metrics.json, or None if it has not finished."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    m = json.loads(path.read_text())
    history = json.loads((run_dir / "history.json").read_text())
    train_acc = history[-1]["train_acc"] if history else None
    return {
        "candidate": name, "val_acc": m["val_acc"], "test_acc_no_tta": m["test_acc_no_tta"],
        "test_acc_flip_tta": m["test_acc"], "train_acc": train_acc,
        "images_seen": m["images_seen"], "training_seconds": m.get("train_seconds"), "precision": m["precision"],
        "device": m.get("device"), "finished": _mtime(path),
        # per epoch, for the plot: val accuracy of the weights evaluated, train accuracy on augmented batches
        "val_curve": [h["val_acc"] for h in history], "train_curve": [h["train_acc"] for h in history],
    }  # fmt: skip


def committed_rows(path: Path) -> dict[str, dict[str, Any]]:
    """The rows already in the results JSON, by candidate: what earlier sessions measured stands even
    where their run folders did not survive (a session on a new machine has no runs/)."""
    if not path.is_file():
        return {}
    return {r["candidate"]: r for r in json.loads(path.read_text()).get("runs", [])}


def _mtime(path: Path) -> str:
    """When `path` was last written, as ISO 8601 UTC (a candidate's finish, whichever session ran it)."""
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")


def plot(runs: list[dict[str, Any]], path: Path) -> Path | None:
    """Val accuracy and the train-val gap per epoch, one line per candidate: where a candidate pulls ahead
    or falls behind shows here, not in the final number. None when no row has curves (older JSON)."""
    runs = [r for r in runs if r.get("val_curve")]
    if not runs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc_ax, gap_ax) = plt.subplots(1, 2, figsize=(11, 3.8))
    for r in runs:
        epochs = range(1, len(r["val_curve"]) + 1)
        acc_ax.plot(epochs, [100 * v for v in r["val_curve"]], label=r["candidate"], lw=1.4)
        gap = [100 * (t - v) for t, v in zip(r["train_curve"], r["val_curve"], strict=True)]
        gap_ax.plot(epochs, gap, lw=1.4)
    acc_ax.set(xlabel="epoch", ylabel="val accuracy, no TTA (%)", ylim=(60, None))
    gap_ax.set(xlabel="epoch", ylabel="train minus val accuracy (points)")
    for ax in (acc_ax, gap_ax):
        ax.grid(alpha=0.3)
    fig.legend(loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--data-dir", default=os.environ.get("DATA_DIR"))
    parser.add_argument("--out", default="runs/ablation_long")
    parser.add_argument("--compile", type=lambda s: s.lower() in ("1", "true", "yes"), default=True)
    parser.add_argument("--amp", type=lambda s: s.lower() in ("1", "true", "yes"), default=None,
                        help="bf16 autocast: the recipe's choice by default; false keeps a candidate in fp32, as the "
                             "rows measured on a CPU without native bf16")  # fmt: skip
    parser.add_argument("--name", default="recipe_ablation_long")
    parser.add_argument("--per-class", type=int, default=0, help="train images per class (a quick check)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON and Markdown go")
    parser.add_argument("--render", action="store_true", help="only rewrite the Markdown from the committed JSON")
    parser.add_argument("--collect", action="store_true", help="rebuild the report from finished runs, train nothing")
    args = parser.parse_args()
    if args.render:
        payload = json.loads((args.results / f"{args.name}.json").read_text())
        (args.results / f"{args.name}.md").write_text(_head(payload["machine"]) + render(payload, args.name) + "\n")
        plot(payload["runs"], args.results / f"{args.name}.png")
        return
    info = machine()
    done = committed_rows(args.results / f"{args.name}.json")
    rows: list[dict[str, Any]] = []
    for i, (name, change) in enumerate(CANDIDATES):
        cfg = candidate_config(i, change, args)
        run_dir = Path(args.out) / cfg.name
        row = result_row(name, cfg, run_dir) or done.get(name)
        if row is None and args.collect:
            break
        if row is None:
            print(f"[{i}] {name}: training {args.epochs} epochs in {run_dir}", flush=True)
            fit(cfg)
            row = result_row(name, cfg, run_dir)
        rows.append(row)
        info["load_average_at_end"] = os.getloadavg()
        payload = {"machine": info, "model": MODEL, "epochs": args.epochs, "runs": rows,
                   "pending": [n for n, _ in CANDIDATES[i + 1 :]]}  # fmt: skip
        write_results(args.name, payload, render(payload, args.name), args.results)
        plot(rows, args.results / f"{args.name}.png")
        print(f"[{i}] {name}: val {row['val_acc']:.4f}", flush=True)


def render(payload: dict[str, Any], name: str = "recipe_ablation_long") -> str:
    """The Markdown report (also re-rendered from the JSON with --render); `name` names its plot."""
    runs = payload["runs"]
    base = runs[0]["val_acc"] if runs else None

    def fmt(r: dict[str, Any]) -> dict[str, Any]:
        pct = lambda v: "" if v is None else f"{100 * v:.2f} %"  # noqa: E731
        gap = None if r["train_acc"] is None else 100 * (r["train_acc"] - r["val_acc"])
        return {**r, "val_acc": pct(r["val_acc"]), "test_acc_no_tta": pct(r["test_acc_no_tta"]),
                "test_acc_flip_tta": pct(r["test_acc_flip_tta"]), "train_acc": pct(r["train_acc"]),
                "gap_points": "" if gap is None else f"{gap:.1f}", "images_seen": f"{r['images_seen']:,}",
                "delta_points": f"{100 * (r['val_acc'] - base):+.2f}", "finished": r.get("finished") or "not recorded"}  # fmt: skip

    cols = ["candidate", "val_acc", "delta_points", "train_acc", "gap_points", "test_acc_no_tta", "test_acc_flip_tta", "images_seen",
            "training_seconds", "precision", "device", "finished"]  # fmt: skip
    md = [
        f"# Regularisation at length: {payload['model']}, {payload['epochs']} epochs of the 40,000 training images",
        "",
        "Each candidate changes one thing of the CPU recipe; same seed, split and number of steps. Val accuracy "
        "without TTA decides (test accuracy, without and with flip TTA, is shown but chose nothing). Train accuracy is the "
        "last epoch's, on augmented batches; the gap is train minus val. One seed: differences under about half "
        "a point are within run-to-run noise.",
        "",
        markdown_table([fmt(r) for r in runs], cols),
    ]
    precisions = sorted({r["precision"] for r in runs})
    if len(precisions) > 1:
        md += ["", f"The candidates ran at different precisions ({', '.join(precisions)}: the machines of different "
               "sessions), which can move val accuracy by a few tenths of a point; compare within one precision first."]  # fmt: skip
    if payload.get("pending"):
        md += ["", "Not run yet (the script continues with them when started again): " + "; ".join(payload["pending"])]
    if any(r.get("val_curve") for r in runs):
        md += ["", "Per epoch (val accuracy of the weights each epoch evaluated, and train minus val):", "",
               f"![val accuracy and train-val gap per epoch]({name}.png)"]  # fmt: skip
        unplotted = [r["candidate"] for r in runs if not r.get("val_curve")]
        if unplotted:
            md += ["", "Not in the plot, for want of a per-epoch record (their run folders went with an earlier "
                   "machine before the curves were recorded): " + "; ".join(unplotted)]  # fmt: skip
    md += ["", "The machine line above is the session that last wrote this file; each row's device is where that "
           "candidate trained, `finished` when."]  # fmt: skip
    return "\n".join(md)


if __name__ == "__main__":
    main()
