"""Serving without a server: batch-1 latency and batch-64 throughput of each runtime, and the handler's own code.

Eager PyTorch (the checkpoint's net), TorchScript and ONNX Runtime (the exported FeatureModel through
`cifarlens_runtime.predictor.Predictor`, logits only) per thread count; and the service's code path
(`cifarlens_runtime.service.handle_batch`: JPEG decode, preprocessing, ONNX Runtime, JSON) without
TorchServe, which is what REST adds its overhead to.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.rounds import time_calls
from benchmarks.serve_variant import Variant

BATCH = 64

Runner = Callable[[np.ndarray], Any]


def in_process_variants(
    name: str, artifacts: Path, runs: Path, x: np.ndarray, jpegs: list[bytes], args: argparse.Namespace
) -> list[Variant]:
    """Per thread count, every runtime's variant; then the service's (1 thread)."""
    eager = eager_runner(name, artifacts, runs)
    batches = [np.ascontiguousarray(x[np.arange(i, i + BATCH) % len(x)]) for i in range(0, len(x), BATCH)]
    variants = []
    for threads in args.threads:
        for runtime, run in runners(name, artifacts, eager, threads).items():
            fields = {"model": name, "runtime": runtime, "threads": threads}
            variants.append(runtime_variant(fields, run, x, batches, args))
    return variants + [service_variant(name, artifacts, jpegs, args)]


def eager_runner(name: str, artifacts: Path, runs: Path) -> Runner:
    """The net rebuilt from the checkpoint the artefact was exported from (else runs/<name>/best.pt)."""
    import torch

    from cifarlens_runtime.predictor import load_metadata
    from training.checkpoint import model_from_checkpoint

    ckpt = Path(load_metadata(artifacts / name).get("checkpoint") or runs / name / "best.pt")
    if not ckpt.is_file():
        ckpt = runs / name / "best.pt"
    eager, _ = model_from_checkpoint(ckpt)

    def run(b: np.ndarray) -> None:
        with torch.inference_mode():
            eager(torch.from_numpy(b))

    return run


def runners(name: str, artifacts: Path, eager: Runner, threads: int) -> dict[str, Runner]:
    """The runtimes compared at `threads` threads: TorchScript at 1 thread only (for comparison)."""
    from cifarlens_runtime.predictor import Predictor

    out: dict[str, Runner] = {"eager": eager}
    if threads == 1:
        out["torchscript"] = Predictor(artifacts / name, backend="torchscript", threads=1).predict
    out["onnxruntime"] = Predictor(artifacts / name, backend="onnxruntime", threads=threads).predict
    return out


def runtime_variant(
    fields: dict[str, Any], run: Runner, x: np.ndarray, batches: list[np.ndarray], args: argparse.Namespace
) -> Variant:
    """Each round: batch-1 latency over its share of `--iters` calls, then batch-64 throughput over its share
    of `--batches` (at least 2), with torch set to the variant's threads first (eager shares torch's pool)."""
    import torch

    threads, n_img = fields["threads"], len(x)
    per_round_batches = max(2, args.batches // args.rounds)

    def measure(n: int, offset: int) -> dict[str, Any]:
        torch.set_num_threads(threads)
        lat = time_calls(lambda i: run(x[i % n_img : i % n_img + 1]), n, 0, args.time_cap, offset)
        t0 = time.perf_counter()
        for i in range(per_round_batches):
            run(batches[(offset + i) % len(batches)])
        return {"lat": lat, "b64_img_s": per_round_batches * BATCH / (time.perf_counter() - t0)}

    def warm() -> None:
        torch.set_num_threads(threads)
        for i in range(args.warmup):
            run(x[i % n_img : i % n_img + 1])
        run(batches[0])

    return Variant("in_process", fields, measure, max(args.iters // args.rounds, 1), warm)


def service_variant(name: str, artifacts: Path, jpegs: list[bytes], args: argparse.Namespace) -> Variant:
    """The handler's code on one JPEG at a time with ONNX Runtime at 1 thread, as a TorchServe worker runs it."""
    from cifarlens_runtime.predictor import Predictor
    from cifarlens_runtime.service import Request, handle_batch

    ort = Predictor(artifacts / name, backend="onnxruntime", threads=1)

    def measure(n: int, offset: int) -> dict[str, Any]:
        call = lambda i: handle_batch(ort, [Request(body=jpegs[i % len(jpegs)], route=None)])  # noqa: E731
        return {"lat": time_calls(call, n, 0, args.time_cap, offset)}

    fields = {"model": name, "runtime": "service (JPEG -> JSON, ORT)", "threads": 1}
    return Variant("service", fields, measure, max(args.iters // args.rounds, 1), lambda: measure(args.warmup, 0))
