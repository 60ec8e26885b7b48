"""The GPU recipe on a lent device: train every net with `--profile full`, test, and pack the results.

Run on the device machine by `benchmarks/train_gpu.sh` (which installs the carried wheels and
unpacks the data first). Writes into `--out`, at most eight files, so that all of it comes back:

- `<model>.tar`: runs/<model>/ with `best.pt` as the shipped form (fp16, no auxiliary heads),
  metrics.json, history.csv/json, config.json, curves.png and confusion.png;
- `train_gpu.json`: the device, the GPU wall time of the three nets and, per net, test and val
  accuracy, epochs, training seconds and images/s; `train_gpu.log`: everything printed.

Each net is packed as soon as it is done, so a run cut short still returns the nets it finished.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tarfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import RESULTS, describe_machine, machine
from cifarlens_runtime.constants import CHECKPOINT_FILE
from training.checkpoint import load_checkpoint, publishable, save_checkpoint
from training.config import recipe
from training.data import load_cifar10
from training.models import list_models
from training.publish import RECORD
from training.report import SUMMARY_FIELDS
from training.trainer import fit


def pack(run_dir: Path, out: Path) -> Path:
    """<out>/<model>.tar of a finished run, with the checkpoint in its shipped form."""
    shipped = run_dir / "shipped"
    shipped.mkdir(exist_ok=True)
    save_checkpoint(publishable(load_checkpoint(run_dir / CHECKPOINT_FILE)), shipped / CHECKPOINT_FILE)
    tar_path = out / f"{run_dir.name}.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(shipped / CHECKPOINT_FILE, arcname=f"{run_dir.name}/{CHECKPOINT_FILE}")
        for name in RECORD:
            if (run_dir / name).is_file():
                tar.add(run_dir / name, arcname=f"{run_dir.name}/{name}")
    return tar_path


def host_line(m: dict[str, Any]) -> str:
    """The GPU machine's host CPU and load during the run, or why they are missing (timings without them cannot
    be compared with another run's)."""
    if m.get("recorded") is False or "cpu" not in m:
        return f"Host CPU and load: **not recorded**: {m.get('why', 'this run predates recording them')}"
    return f"Host: {describe_machine(m)}."


def _net_lines(summary: dict[str, Any]) -> list[str]:
    """The per-net table of a device run."""
    lines = [
        "| net | test_acc | no TTA | flip + translate | val_acc | epochs | images seen | train s | wall s | images/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in summary["models"].items():
        lines.append(
            f"| {name} | {m['test_acc']:.4f} | {m['test_acc_no_tta']:.4f} | {m['test_acc_flip_translate_tta']:.4f} | "
            f"{m['val_acc']:.4f} | {m['epochs']} | {m['images_seen']:,} | {m['train_seconds']:.0f} | "
            f"{m['wall_seconds']:.0f} | {m['images_per_second']:,.0f} |"
        )
    return lines


def _compile_lines(checks: dict[str, Any]) -> list[str]:
    """The device's eager-against-compiled table."""
    lines = ["", "torch.compile (default mode) against eager, training steps at batch 512, bf16, channels_last:", ""]
    lines += ["| net | eager images/s | compiled images/s | speedup | compile s |", "|---|---:|---:|---:|---:|"]
    for name, c in checks.items():
        lines.append(
            f"| {name} | {c['eager_images_per_second']:,} | {c['compiled_images_per_second']:,} | "
            f"{c['speedup']:.2f} | {c['compile_seconds']:.0f} |"
        )
    return lines


def _cpu_eval_lines(evaluations: dict[str, Any]) -> list[str]:
    """The shipped checkpoints' accuracies evaluated back on the CPU machine."""
    lines = [
        "",
        "The shipped checkpoints (fp16) evaluated back here on the CPU with `python -m training evaluate --tta`:",
        "",
    ]
    lines += ["| net | no TTA | flip | flip + translate | precision |", "|---|---:|---:|---:|---|"]
    for n, e in evaluations.items():
        t = e["test_acc_by_tta"]
        lines.append(f"| {n} | {t['none']:.4f} | {t['flip']:.4f} | {t['flip_translate']:.4f} | {e['precision']} |")
    return lines


def record(returned: Path, note: str = "", cpu_eval: Path | None = None, results: Path = RESULTS) -> tuple[Path, Path]:
    """benchmarks/results/train_gpu.{json,md} from the folder a device run returned (here, on the CPU machine)."""
    summary = json.loads((returned / "train_gpu.json").read_text())
    compile_path = returned / "compile_check.json"
    if compile_path.is_file():
        summary["compile_check"] = json.loads(compile_path.read_text())["models"]
    tests_path = returned / "cuda_tests.log"
    if tests_path.is_file():
        summary["cuda_tests"] = tests_path.read_text().strip().splitlines()[-1]
    lines = [
        f"# `make train-gpu` (PROFILE=full) on a lent {summary['device']}",
        "",
        f"torch {summary['torch']}, Python {summary['python']}, {summary['date']}. "
        f"{summary['total_seconds']:.0f} s of GPU wall time for the three nets (each net's data setup, probe, "
        "training, per-epoch validation and final test; the first net also decoded the JPEGs). "
        "Accuracies on the 10,000 test images; `test_acc` is with flip TTA.",
        "",
        host_line(summary.get("machine", {})),
        "",
        *_net_lines(summary),
    ]
    if "compile_check" in summary:
        lines += _compile_lines(summary["compile_check"])
    if "cuda_tests" in summary:
        lines += ["", f"CUDA smoke tests (tests/training/test_cuda.py) in that run: {summary['cuda_tests']}."]
    evaluations = (
        {p.parent.name: json.loads(p.read_text()) for p in sorted(cpu_eval.glob("*/evaluation.json"))}
        if cpu_eval
        else {}
    )
    if evaluations:
        summary["cpu_evaluation"] = {
            n: e["test_acc_by_tta"] | {"precision": e["precision"]} for n, e in evaluations.items()
        }
        lines += _cpu_eval_lines(evaluations)
    if note:
        summary["note"] = note
        lines += ["", note]
    js, md = results / "train_gpu.json", results / "train_gpu.md"
    js.write_text(json.dumps(summary, indent=1))
    md.write_text("\n".join(lines) + "\n")
    return js, md


def train_all(args: argparse.Namespace, out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Train each net of `args.models` in turn, packing each into `out` as soon as it is done."""
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (no CUDA device)"
    summary: dict[str, Any] = {
        "device": device,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "profile": args.profile,
        "total_seconds": 0.0,
        "models": {},
    }
    summary["machine"] = machine()  # the host's CPU and load beside the GPU timings
    log(f"device {device}, torch {torch.__version__}, python {platform.python_version()}")
    # Decode the JPEGs once, before any net's clock starts (the first net would pay for all three).
    start = time.perf_counter()
    for split in ("train", "test"):
        load_cifar10(args.data_dir, split)
    summary["data_seconds"] = round(time.perf_counter() - start, 1)
    log(f"decoded CIFAR-10 in {summary['data_seconds']:.0f}s (not counted in any net's time)")
    for model in args.models:
        overrides: dict[str, Any] = {"data_dir": args.data_dir, "out_dir": args.runs, "progress": False}
        if args.time_budget is not None:
            overrides["time_budget"] = args.time_budget
        cfg = recipe(model, args.profile, **overrides)
        log(f"\n=== {model} ({args.profile}) ===")
        start = time.perf_counter()
        metrics = fit(cfg, log=log)
        wall = time.perf_counter() - start
        summary["total_seconds"] = round(summary["total_seconds"] + wall, 1)
        summary["models"][model] = {k: metrics[k] for k in SUMMARY_FIELDS} | {"wall_seconds": round(wall, 1)}
        summary["machine"]["load_average_at_end"] = os.getloadavg()
        log(f"packed {pack(Path(args.runs) / model, out)} after {wall:.0f}s")
        (out / "train_gpu.json").write_text(json.dumps(summary, indent=1))
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", default=None, metavar="DIR",
                        help="only write benchmarks/results/train_gpu.{json,md} from a returned folder")  # fmt: skip
    parser.add_argument("--note", default="", help="with --record: a sentence to add to the results")
    parser.add_argument("--cpu-eval", default=None, metavar="DIR",
                        help="with --record: <DIR>/<model>/evaluation.json of `python -m training evaluate`")  # fmt: skip
    parser.add_argument("--data-dir")
    parser.add_argument("--out")
    parser.add_argument("--runs", default="/tmp/runs_gpu")
    parser.add_argument("--profile", default="full")
    parser.add_argument("--models", nargs="+", default=["se_net", "inception_net", "plain_cnn"], choices=list_models())
    parser.add_argument("--time-budget", type=float, default=None, help="seconds per net (default: the profile's)")
    args = parser.parse_args()
    if args.record:
        print(*record(Path(args.record), args.note, Path(args.cpu_eval) if args.cpu_eval else None))
        return 0
    if not args.data_dir or not args.out:
        parser.error("--data-dir and --out are required to train")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_file = open(out / "train_gpu.log", "a", buffering=1)  # noqa: SIM115 (open for the whole run)

    def log(msg: str) -> None:
        print(msg, flush=True)
        log_file.write(msg + "\n")

    summary = train_all(args, out, log)
    log(f"\nall done: {summary['total_seconds']:.0f}s of GPU wall time for {len(args.models)} nets")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    sys.exit(main())
