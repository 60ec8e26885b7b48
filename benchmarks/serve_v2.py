"""The Open Inference Protocol (v2) server in the serving benchmark (issue 20 part 5): its REST route with 1
sequential client and with 8 concurrent clients, to run in the same interleaved rounds as TorchServe's REST route
and in-process ONNX Runtime (benchmarks/serve.py).

The server (serving/v2/, KServe's SDK) runs from its own environment, .venv-v2 (`make install-v2`), on the
artefacts the in-process rows load, on free loopback ports. The clients are the TorchServe rows' own
(benchmarks.serve_rest: `HttpClient`, `sequential`, `concurrent`; threads with one keep-alive connection each,
real JPEG test images, failures counted, not raised) and send what tritonclient sends by default: one BYTES input
holding the JPEG as binary tensor data, binary outputs asked for. So the rows differ from TorchServe's by the
server alone, not by the client library.

benchmarks.serve_report judges the rows against the issue's target (V2_TARGET_MS, with the other targets).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.serve_rest import CONCURRENT_CLIENTS, HttpClient, Request, concurrent, sequential
from benchmarks.serve_variant import Variant
from cifarlens_runtime.constants import HOST, V2_IMAGE_INPUT
from serving.server import free_ports
from serving.v2.process import V2_PYTHON, Address, log_tail, start, stop


def binary_request(jpeg: bytes) -> Request:
    """tritonclient's default request for one image: JSON header, then the length-prefixed BYTES element."""
    element = len(jpeg).to_bytes(4, "little") + jpeg
    header = {
        "inputs": [
            {
                "name": V2_IMAGE_INPUT,
                "shape": [1],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": len(element)},
            }
        ],
        "parameters": {"binary_data_output": True},
    }
    head = json.dumps(header, separators=(",", ":")).encode()  # tritonclient's compact form, byte for byte
    headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))}
    return head + element, headers


@contextmanager
def v2_server(artifacts: str | Path, python: Path = V2_PYTHON) -> Iterator[Address]:
    """The v2 server on `artifacts` from .venv-v2, on free loopback ports, stopped on the way out."""
    if not Path(python).exists():
        raise FileNotFoundError(f"{python} not found: `make install-v2` builds the v2 server's environment")
    workdir = Path(tempfile.mkdtemp(prefix="cifarlens-bench-v2-"))
    address = Address(HOST, *free_ports(2))
    t0 = time.perf_counter()
    start(artifacts, address, workdir, python=python)
    print(f"v2 server ready in {time.perf_counter() - t0:.0f} s (workdir {workdir})", flush=True)
    try:
        yield address
    except BaseException:
        print(f"v2 server log:\n{log_tail(workdir)}", flush=True)
        raise
    finally:
        stop(workdir)


def v2_variants(address: Address, names: Sequence[str], jpegs: list[bytes], args: argparse.Namespace) -> list[Variant]:
    """Per net: /v2/models/<net>/infer with 1 sequential client and with `CONCURRENT_CLIENTS` clients, each round a
    `--rounds` share of `--requests` (as the TorchServe rows)."""
    per_round = max(args.requests // args.rounds, 1)
    requests = [binary_request(j) for j in jpegs]
    variants = []
    for name in names:
        path = f"/v2/models/{name}/infer"

        def seq(n: int, offset: int, path: str = path) -> dict[str, Any]:
            return sequential(HttpClient(address.rest_port), path, requests, n, offset, args.time_cap)

        def conc(n: int, offset: int, path: str = path) -> dict[str, Any]:
            return concurrent(lambda: HttpClient(address.rest_port), path, requests, n, offset, args.time_cap)

        def warm(path: str = path) -> None:
            sequential(HttpClient(address.rest_port), path, requests, args.warmup, 0, args.time_cap)

        variants.append(Variant("v2_sequential", {"model": name}, seq, per_round, warm))
        variants.append(Variant("v2_concurrent", {"model": name, "clients": CONCURRENT_CLIENTS}, conc, per_round))
    return variants
