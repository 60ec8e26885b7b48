"""Class activation maps on the CPU: how often each method's map is blank, how faithful, and how fast, per net.

Blank maps and the default (benchmarks.cam_defaults), on `--images` real test images per net (spread over the
classes), shipped weights:
- for every layer and gradient method (Grad-CAM, Grad-CAM++, LayerCAM, HiResCAM; one forward and one backward
  pass per batch of 100 serve them all), the share of all-zero maps and of single-cell maps (top-1 class), and
  the localisation below (true class);
- deletion for the candidates (maps of at least 2x2, at most 1 % blank, localising no worse than today's default:
  Grad-CAM at the last layer of at least 8x8); the default is the qualifying candidate with the largest deletion
  margin (CHOICE_RULE). The model files name the choice (`cam_method`, `cam_layer`);
- deletion, with every control, and localisation of the chosen default and of Eigen-CAM at its layer
  (benchmarks.cam_faithfulness):
  - deletion: the image's top-1 probability after the 20 % most activated pixels of its upsampled map are set
    to the mean colour, against 20 % random cells of the map's grid (the margin), the 20 % least activated and
    20 % scattered pixels (seeded). A faithful map hurts more than random cells;
  - localisation: the test image pasted into one quadrant (rotating) of a 64x64 grey canvas, sent through the
    service's preprocessing (to 32x32); the share of the map's mass (upsampled) in that quadrant, for the true
    class. Chance is 25 %.

Latency (benchmarks.cam_latency), batch 1, real JPEG test images, every variant in each of `--rounds`
interleaved rounds (the order changing by the rule of benchmarks.rounds):
- in process: ONNX Runtime prediction; Grad-CAM by autograd through the exported TorchScript model (what the
  handler runs); Captum's LayerGradCam on the eager net rebuilt from the checkpoint (the alternative, which
  would need the training code in the worker); Eigen-CAM from ONNX Runtime activations;
- REST, one client, through a real TorchServe (free ports, token auth on): /predictions/<model> against
  /explanations/<model> (Grad-CAM and Eigen-CAM). Target: CAM p50 at most 3x the prediction p50.
The Grad-CAM of every net is also compared with Captum's on the same images (largest difference of the maps).
`--skip-latency` keeps the committed latency rows (and says so, with their date): a shared machine's timings
mean nothing, while the maps do not depend on the load.

    python -m benchmarks.cam [--weights weights] [--data-dir ../shared/data/cifar10] [--images 1000]
                             [--skip-latency] [--quick] [--out DIR]

The nets are exported and archived from `--weights` into a temporary folder. The CPU, its load and the busiest
processes are recorded before and after; a busy machine (load > 0.5) does not overwrite committed latency.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.cam_defaults import CHOICE_RULE, MAX_BLANK, measure_quality
from benchmarks.cam_faithfulness import DELETE_FRACTION, load_test_images
from benchmarks.cam_latency import TARGET_CAM_RATIO, earlier_latency, measure_latency
from benchmarks.cam_latency import rest as rest  # re-exported: tests/serving/test_key_renewal.py
from benchmarks.cam_report import markdown
from benchmarks.common import RESULTS, check_quiet, describe_machine, finish, machine, write_results
from cifarlens_runtime.cam import MIN_CAM_SIZE
from cifarlens_runtime.constants import CLASSES
from cifarlens_runtime.predictor import Predictor


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (`--quick` shrinks the counts to validate the script)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=Path("weights"), help="<model>/best.pt (default: weights)")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/cifar10"), help="ImageFolder root")
    parser.add_argument("--images", type=int, default=1000, help="test images per net for the maps (default 1000)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=60, help="timed calls per variant and round (default 60)")
    parser.add_argument("--skip-latency", action="store_true",
                        help="keep the latency rows of the committed results (for a busy machine: maps do not "
                             "depend on the load)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--force", action="store_true", help="overwrite committed latency from a busy machine")
    parser.add_argument("--quick", action="store_true", help="few images and calls: validates the script")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.rounds, args.calls = 40, 2, 5
    return args


def settings(args: argparse.Namespace, images: int) -> dict[str, Any]:
    """What a run measured with, written beside its results."""
    return {"images": images, "rounds": args.rounds, "calls": args.calls, "weights": str(args.weights),
            "delete_fraction": DELETE_FRACTION, "target_cam_ratio": TARGET_CAM_RATIO, "max_blank": MAX_BLANK,
            "min_cam_size": MIN_CAM_SIZE, "choice": CHOICE_RULE}  # fmt: skip


def measure_nets(args: argparse.Namespace, models: list[str], work: Path, kept: dict[str, Any]) -> dict[str, Any]:
    """Export and archive every net into `work`, start TorchServe unless latency is skipped, and measure each net's
    maps and latency (or take its `kept` latency rows); TorchServe is stopped even on failure."""
    from serving.archive import build_archive
    from serving.export import export_checkpoint
    from serving.server import Ports, free_ports, start_server, stop

    images, labels, jpegs = load_test_images(args.data_dir, max(args.images // len(CLASSES), 1))
    nets: dict[str, Any] = {}
    server = None
    try:
        for name in models:
            export_checkpoint(args.weights / name / "best.pt", work / "artifacts" / name, data_dir=args.data_dir)
            build_archive(name, work / "artifacts", work / "store")
        if not args.skip_latency:
            server = start_server(work / "store", Ports(*free_ports()), work / "ts", foreground=True)
        for name in models:
            predictor = Predictor(work / "artifacts" / name)
            nets[name] = measure_quality(name, predictor, images, labels)
            ckpt = args.weights / name / "best.pt"
            nets[name].update(
                kept[name] if args.skip_latency else measure_latency(name, predictor, ckpt, server, jpegs, args)
            )
            print(name, {k: nets[name][k] for k in ("default", "baseline")}, flush=True)
    finally:
        if server is not None:
            stop(server)
    return {"images": len(images), "nets": nets}


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every net under `--weights` and write cam_cpu.{json,md} to `--out`."""
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    info = machine()
    print(f"machine: {describe_machine(info)}", flush=True)
    if not args.skip_latency:  # the maps do not depend on how busy the machine is; latency does
        check_quiet(args.out, args.force or (args.quick and args.out != RESULTS), info)
    models = sorted(p.parent.name for p in args.weights.glob("*/best.pt"))
    if not models:
        print(f"error: no <model>/best.pt under {args.weights}", file=sys.stderr)
        return 1
    latency_machine, kept = earlier_latency(RESULTS / "cam_cpu.json") if args.skip_latency else (None, {})
    work = Path(tempfile.mkdtemp(prefix="cifarlens-bench-cam-"))
    try:
        measured = measure_nets(args, models, work, kept)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    payload = {"machine": finish(info), "latency_from": {"machine": latency_machine or info, "kept": args.skip_latency},
               "settings": settings(args, measured["images"]), "nets": measured["nets"]}  # fmt: skip
    for path in write_results("cam_cpu", payload, markdown(payload), args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
