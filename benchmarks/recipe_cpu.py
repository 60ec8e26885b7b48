"""`make train-all PROFILE=cpu`, timed as a user runs it, recorded as benchmarks/results/recipe_cpu.{json,md}.

The profile is time-budgeted (each net gets a share of the hour and sizes its schedule from the
throughput it measures in its first steps), so the wall time is the same on any 2-core machine and
the accuracy says what that machine can do in it. Run it on a quiet machine:

    python -m benchmarks.recipe_cpu [--data-dir ../shared/data/cifar10] [--runs runs_cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, _head, machine, write_results

ROOT = Path(__file__).resolve().parents[1]


def render(payload: dict[str, Any]) -> str:
    """The Markdown report of a recorded run (also re-rendered from the JSON with --render)."""
    head = [
        f"# `make train-all PROFILE=cpu`: {payload['total_seconds'] / 60:.1f} min of wall time",
        "",
        f"Device: {payload['device']}. Test accuracy on the 10,000 test images (`test_acc` with flip TTA).",
        "",
        "| net | test acc (flip TTA) | no TTA | flip + translate | val acc | epochs | images seen | training | images/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [
        f"| {n} | {100 * m['test_acc']:.2f} % | {100 * m['test_acc_no_tta']:.2f} % | "
        f"{100 * m['test_acc_flip_translate_tta']:.2f} % | {100 * m['val_acc']:.2f} % | {m['epochs']} | "
        f"{m['images_seen']:,} | {m['train_seconds'] / 60:.1f} min | {m['images_per_second']:,.0f} |"
        for n, m in payload["models"].items()
    ]
    return "\n".join(head + rows + ([f"\n{payload['note']}"] if payload.get("note") else []))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("DATA_DIR"))
    parser.add_argument("--runs", default="runs_cpu", help="where the runs go (the training log too)")
    parser.add_argument("--name", default="recipe_cpu")
    parser.add_argument("--render", action="store_true", help="only rewrite the Markdown from the committed JSON")
    parser.add_argument("--note", default="", help="with --render: a sentence to add to the results")
    args = parser.parse_args()
    if args.render:
        payload = json.loads((RESULTS / f"{args.name}.json").read_text())
        if args.note:
            payload["note"] = args.note
            (RESULTS / f"{args.name}.json").write_text(json.dumps(payload, indent=1))
        (RESULTS / f"{args.name}.md").write_text(_head(payload["machine"]) + render(payload) + "\n")
        return 0
    runs = Path(args.runs).resolve()
    runs.mkdir(parents=True, exist_ok=True)
    info = machine()
    cmd = ["make", "train-all", "PROFILE=cpu", f"TRAIN_ARGS=--out-dir {runs} --progress false"]
    if args.data_dir:
        cmd.append(f"DATA_DIR={args.data_dir}")
    print(" ".join(cmd), flush=True)
    start = time.perf_counter()
    with open(runs / "train_cpu.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
            log.flush()
        rc = proc.wait()
    wall = time.perf_counter() - start
    if rc != 0:
        print(f"make train-all failed (exit {rc}); nothing recorded", file=sys.stderr)
        return rc
    summary = json.loads((runs / "train_all.json").read_text())
    info["load_average_at_end"] = os.getloadavg()
    payload = {**summary, "total_seconds": round(wall, 1), "command": " ".join(cmd), "machine": info}
    js, mdp = write_results(args.name, payload, render(payload))
    print(f"wrote {js} and {mdp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
