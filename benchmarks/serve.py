"""Serving latency and throughput on the CPU: in process (eager, TorchScript, ONNX Runtime) against REST.

Per net: batch-1 latency and batch-64 throughput in process, and the handler's own code (JPEG to JSON)
without TorchServe (benchmarks.serve_inprocess); the same nets behind a real TorchServe (own workdir,
free ports on 127.0.0.1, token auth on, stopped at the end even on failure) with 1 sequential and 8
concurrent clients (benchmarks.serve_rest), the feature-map route of every layer
(benchmarks.serve_featuremaps), and the Open Inference Protocol (v2) server on the same artefacts with the same
clients, sending what tritonclient sends (benchmarks.serve_v2; `--no-v2` leaves it out), all with real JPEG
test images.

Every compared variant runs in each of `--rounds` interleaved rounds, in an order that changes from
round to round by the rule of benchmarks.rounds, so a burst of other work on the machine hits all of
them alike; each figure is the median of its per-round values. Targets are judged only by ratios and
differences within this run (benchmarks.serve_report): REST p50 at most 3 ms above in-process ONNX
Runtime p50; feature-map p50 at most 3 ms above the prediction p50, for every layer; 8 clients reach
70 % of in-process batch-64 throughput; v2 p50 at most 1.5 ms above in-process ONNX Runtime p50; no failed
request. The CPU, its instruction sets, the load
average and the busiest other processes are recorded before and after; from a busy machine (load
average > 0.5 at the start) the committed results are not overwritten unless --force.

    python -m benchmarks.serve [--artifacts artifacts] [--model-store model_store] [--rounds 5] [--quick]
                               [--out DIR] [--no-v2]

Missing artefacts or archives are built from runs/<model>/best.pt (serving.export, serving.archive).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, check_quiet, describe_machine, finish, machine, write_results
from benchmarks.serve_featuremaps import feature_map_variants
from benchmarks.serve_inprocess import BATCH, in_process_variants
from benchmarks.serve_report import markdown, targets
from benchmarks.serve_rest import CONCURRENT_CLIENTS, prediction_variants
from benchmarks.serve_rest import Client as Client  # re-exported: tests/serving/test_key_renewal.py
from benchmarks.serve_setup import archive_config, ensure_archives, test_inputs
from benchmarks.serve_v2 import v2_server, v2_variants
from benchmarks.serve_variant import Variant, run_variants
from cifarlens_runtime.constants import Ports
from serving.server import free_ports, start_server, stop
from training.models import list_models

GROUPS = ("in_process", "service", "rest_sequential", "rest_concurrent", "rest_feature_maps", "v2_sequential",
          "v2_concurrent")  # fmt: skip


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (`--quick` shrinks every count to validate the script in a minute or two)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", default="artifacts", help="serving.export output (default: artifacts)")
    parser.add_argument("--model-store", default="model_store", help="the .mar archives (default: model_store)")
    parser.add_argument("--runs", default="runs", help="checkpoints, to build missing artefacts (default: runs)")
    parser.add_argument("--data-dir", default="../shared/data/cifar10", help="CIFAR-10 ImageFolder root")
    parser.add_argument("--models", nargs="+", choices=list_models(), default=list_models())
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; figures are their medians")
    parser.add_argument("--requests", type=int, default=1000, help="REST requests per net, all rounds (default: 1000)")
    parser.add_argument("--feature-share", type=int, default=5, help="feature-map requests per layer: requests / this")
    parser.add_argument("--iters", type=int, default=1000, help="in-process batch-1 calls, all rounds (default: 1000)")
    parser.add_argument("--batches", type=int, default=40, help=f"in-process batch-{BATCH} calls, all rounds")
    parser.add_argument("--warmup", type=int, default=50, help="untimed calls before the first round (default: 50)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="in-process thread counts")
    parser.add_argument("--time-cap", type=float, default=120.0, help="seconds per timed loop at most")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"where the results go (default: {RESULTS})")
    parser.add_argument("--force", action="store_true", help="overwrite committed results even from a busy machine")
    parser.add_argument("--quick", action="store_true", help="few requests, 1 thread: validates the script")
    parser.add_argument("--no-v2", dest="v2", action="store_false", help="leave out the v2 server (no .venv-v2)")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.iters, args.batches, args.warmup, args.rounds = 40, 40, 4, 8, 2
        args.threads, args.time_cap = [1], 20.0
    return args


def measure(args: argparse.Namespace, variants: list[Variant], jpegs: list[bytes]) -> list[str]:
    """Start TorchServe and the v2 server, add their variants to the in-process ones, run every round, stop both
    (even on failure).
    Returns the failed requests; TorchServe's logs are kept when there are any."""
    workdir = Path(tempfile.mkdtemp(prefix="cifarlens-bench-serve-"))
    server = None
    try:
        t0 = time.perf_counter()
        server = start_server(
            Path(args.model_store), Ports(*free_ports()), workdir, foreground=True, models=args.models
        )
        print(f"TorchServe healthy in {time.perf_counter() - t0:.0f} s (workdir {workdir})", flush=True)
        variants += prediction_variants(server, args.models, jpegs, args)
        variants += feature_map_variants(server, args.models, Path(args.artifacts), jpegs, args)
        with v2_server(args.artifacts) if args.v2 else nullcontext() as address:
            if address is not None:
                variants += v2_variants(address, args.models, jpegs, args)
            run_variants(variants, args.rounds)
    except BaseException:
        print(f"TorchServe logs kept in {workdir / 'logs'}", file=sys.stderr)
        raise
    finally:
        if server is not None:
            stop(server)
    failures = [f for v in variants for r in v.rounds for f in r.get("failures", [])]
    if failures:
        print(f"{len(failures)} failed requests; TorchServe logs kept in {workdir / 'logs'}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return failures


def report(
    args: argparse.Namespace, info: dict[str, Any], variants: list[Variant], built: list[str], failures: list[str]
) -> dict[str, Any]:
    """The payload of serve_cpu.json: machine, settings, archives, one list of summary rows per group, targets."""
    groups: dict[str, list[dict[str, Any]]] = {g: [] for g in GROUPS}
    for v in variants:
        row = v.summary()
        groups[v.group].append(row)
        print({"group": v.group, **row}, flush=True)
    configs = {n: archive_config(Path(args.model_store) / f"{n}.mar") for n in args.models}
    return {
        "machine": finish(info),
        "settings": {
            **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "concurrent_clients": CONCURRENT_CLIENTS,
            "batch": BATCH,
        },
        "archive_configs": configs,
        "built": built,
        **groups,
        "failures": failures[:50],
        "targets": targets(args.models, groups, configs),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, judge and write serve_cpu.{json,md} to `--out`; 1 when any request failed."""
    args = parse_args(argv)
    import torch

    torch.set_num_interop_threads(1)
    info = machine()
    print(f"machine: {describe_machine(info)}", flush=True)
    check_quiet(args.out, args.force or args.quick and args.out != RESULTS, info)
    data_dir = Path(args.data_dir)
    if not (data_dir / "test").is_dir():
        print(f"error: {data_dir}/test not found: pass --data-dir (a CIFAR-10 ImageFolder root)", file=sys.stderr)
        return 1
    artifacts, runs = Path(args.artifacts), Path(args.runs)
    built = ensure_archives(args.models, runs, artifacts, Path(args.model_store), data_dir)
    for line in built:
        print(line, flush=True)
    x, jpegs = test_inputs(data_dir, 256)
    variants = [v for name in args.models for v in in_process_variants(name, artifacts, runs, x, jpegs, args)]
    failures = measure(args, variants, jpegs)
    payload = report(args, info, variants, built, failures)
    for row in payload["targets"]:
        print(row, flush=True)
    for path in write_results("serve_cpu", payload, markdown(payload), args.out):
        print(path)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
