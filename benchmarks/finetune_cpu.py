"""Record a warm-started refinement (`--profile finetune`) against the checkpoint it started from.

A finished run of `python -m training train --model <net> --profile finetune --init-from <folder>/best.pt`
is compared with its source on the same splits: test accuracy at every TTA level, validation accuracy, and
the binomial standard error of a 10,000-image test accuracy, so a gain can be told from noise.

    python -m benchmarks.finetune_cpu --run runs_ft/se_net --source weights/se_net [--note "..."]

Writes benchmarks/results/finetune_cpu.{json,md} (the machine is recorded when this runs, the run's device
comes from its own metrics.json).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, finish, machine, markdown_table, write_results

KEYS = ("test_acc", "test_acc_no_tta", "test_acc_flip_translate_tta", "val_acc", "epochs", "train_seconds", "device")


def summary(folder: Path) -> dict[str, Any]:
    metrics = json.loads((folder / "metrics.json").read_text())
    return {k: metrics.get(k) for k in KEYS}


def markdown(payload: dict[str, Any]) -> str:
    src, ref = payload["source"], payload["refined"]
    rows = []
    for key in ("test_acc", "test_acc_no_tta", "test_acc_flip_translate_tta", "val_acc"):
        rows.append({"": key, "source": f"{100 * src[key]:.2f} %", "refined": f"{100 * ref[key]:.2f} %",
                     "gain": f"{100 * (ref[key] - src[key]):+.2f} pts"})  # fmt: skip
    return "\n".join(
        [
            f"# Warm-started refinement of {payload['model']} (`--profile finetune`)",
            "",
            f"Source: `{payload['source_dir']}` ({src['device']}, {src['epochs']} epochs, {src['train_seconds']:.0f} s). "
            f"Refined: `{payload['run_dir']}` ({ref['device']}, {ref['epochs']} epochs, "
            f"{ref['train_seconds'] / 60:.0f} min).",
            "",
            markdown_table(rows, ["", "source", "refined", "gain"]),
            "",
            f"One standard error of a test accuracy near {100 * src['test_acc']:.1f} % on 10,000 images: "
            f"{100 * payload['test_standard_error']:.2f} pts. Shipped: {'yes' if payload['shipped'] else 'no'}.",
            "",
            payload["note"],
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="the refined run's folder (metrics.json, config.json)")
    parser.add_argument("--source", type=Path, required=True, help="the folder of the checkpoint it started from")
    parser.add_argument("--shipped", action="store_true", help="the refined weights replaced the source in weights/")
    parser.add_argument("--note", default="", help="a sentence on the conditions and the decision")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    config = json.loads((args.run / "config.json").read_text())
    if not config.get("init_from"):
        print(f"error: {args.run} is not a warm-started run (no init_from in its config.json)", file=sys.stderr)
        return 1
    source, refined = summary(args.source), summary(args.run)
    p = source["test_acc"]
    payload = {
        "machine": finish(machine()),
        "model": config["model"],
        "run_dir": str(args.run),
        "source_dir": str(args.source),
        "config": {
            k: config[k]
            for k in (
                "init_from",
                "lr",
                "batch_size",
                "warmup_fraction",
                "schedule",
                "translate",
                "threads",
                "time_budget",
                "total_steps",
            )
        },  # fmt: skip
        "source": source,
        "refined": refined,
        "gain": {k: round(refined[k] - source[k], 4) for k in ("test_acc", "val_acc")},
        "test_standard_error": round(math.sqrt(p * (1 - p) / 10_000), 4),
        "shipped": args.shipped,
        "note": args.note,
    }
    for path in write_results("finetune_cpu", payload, markdown(payload), args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
