"""The Open Inference Protocol (v2) server in the serving benchmark (issue 20 part 5): its REST route with 1
sequential client and with 8 concurrent clients, to run in the same interleaved rounds as TorchServe's REST route
and in-process ONNX Runtime (benchmarks/serve.py).

The server (serving/v2/, KServe's SDK) runs from its own environment, .venv-v2 (`make install-v2`), on the
artefacts the in-process rows load, on free loopback ports. The clients are serve_rest's kind (threads with one
keep-alive `http.client` connection each, real JPEG test images, failures counted, not raised) and send what
tritonclient sends by default: one BYTES input holding the JPEG as binary tensor data, binary outputs asked for.
So the rows differ from TorchServe's by the server alone, not by the client library.

Wiring into benchmarks/serve.py's `measure`, beside `prediction_variants`:

    with v2_server(args.artifacts) as address:
        variants += v2_variants(address, args.models, jpegs, args)
        run_variants(variants, args.rounds)

The issue's target: the v2 sequential p50 at most V2_TARGET_MS above in-process ONNX Runtime's batch-1 p50.
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.rounds import time_calls
from benchmarks.serve_variant import Variant
from cifarlens_runtime.constants import HOST, V2_IMAGE_INPUT
from serving.server import free_ports
from serving.v2.process import Address, log_tail, start, stop

REPO = Path(__file__).resolve().parents[1]
V2_PYTHON = REPO / ".venv-v2" / "bin" / "python"
CONCURRENT_CLIENTS = 8
HTTP_TIMEOUT_S = 60.0
# Issue 20: the v2 route's p50 may exceed in-process ONNX Runtime's by this much (TorchServe adds 2.5-3.3 ms here).
V2_TARGET_MS = 1.5


def binary_request(jpeg: bytes) -> tuple[bytes, dict[str, str]]:
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
    head = json.dumps(header).encode()
    headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))}
    return head + element, headers


class V2Client:
    """One keep-alive HTTP connection to the v2 server; counts failed requests instead of raising."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self.conn: http.client.HTTPConnection | None = None
        self.failures: list[str] = []
        self.last_size = 0

    def post(self, path: str, request: tuple[bytes, dict[str, str]]) -> bool:
        """True on a 200 answer; a failure is recorded and the connection reopened."""
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.address.rest_port, timeout=HTTP_TIMEOUT_S)
            self.conn.request("POST", path, body=request[0], headers=request[1])
            resp = self.conn.getresponse()
            data = resp.read()
            self.last_size = len(data)
            if resp.status == 200:
                return True
            self.failures.append(f"{path}: HTTP {resp.status} {data[:200].decode('utf-8', 'replace')}")
        except (OSError, http.client.HTTPException) as exc:
            self.failures.append(f"{path}: {type(exc).__name__}: {exc}")
            self.close()
        return False

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


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


def v2_sequential(
    address: Address, path: str, requests: list[tuple[bytes, dict[str, str]]], n: int, offset: int, time_cap: float
) -> dict[str, Any]:
    """One client, one request at a time: latencies, failures and the answer's size."""
    client = V2Client(address)
    try:
        lat = time_calls(lambda i: client.post(path, requests[i % len(requests)]), n, 0, time_cap, offset)
    finally:
        client.close()
    return {"lat": lat, "failures": client.failures, "response_bytes": client.last_size}


def v2_concurrent(
    address: Address, path: str, requests: list[tuple[bytes, dict[str, str]]], total: int, offset: int, time_cap: float
) -> dict[str, Any]:
    """`CONCURRENT_CLIENTS` threads sharing `total` requests; req/s from their common start to the last one's end."""
    per_client = max(total // CONCURRENT_CLIENTS, 1)
    clients = [V2Client(address) for _ in range(CONCURRENT_CLIENTS)]
    latencies: list[list[float]] = [[] for _ in clients]
    ends = [0.0] * CONCURRENT_CLIENTS
    barrier = threading.Barrier(CONCURRENT_CLIENTS + 1)

    def work(k: int) -> None:
        clients[k].post(path, requests[k % len(requests)])  # open the connection before the clock starts
        barrier.wait()
        deadline = time.monotonic() + time_cap
        for i in range(per_client):
            t0 = time.perf_counter()
            if clients[k].post(path, requests[(offset + k * per_client + i) % len(requests)]):
                latencies[k].append((time.perf_counter() - t0) * 1e3)
            if time.monotonic() > deadline:
                break
        ends[k] = time.perf_counter()

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(CONCURRENT_CLIENTS)]
    for t in threads:
        t.start()
    barrier.wait(timeout=time_cap + HTTP_TIMEOUT_S)
    begin = time.perf_counter()
    for t in threads:
        t.join(timeout=time_cap + HTTP_TIMEOUT_S)
    for c in clients:
        c.close()
    wall = max(ends) - begin if all(ends) else float("nan")
    ok = sum(len(lat) for lat in latencies)
    hung = [f"{path}: client thread hung" for t in threads if t.is_alive()]
    return {
        "lat": [v for lat in latencies for v in lat],
        "req_s": ok / wall if wall > 0 else float("nan"),
        "failures": [f for c in clients for f in c.failures] + hung,
    }


def v2_variants(address: Address, names: Sequence[str], jpegs: list[bytes], args: argparse.Namespace) -> list[Variant]:
    """Per net: /v2/models/<net>/infer with 1 sequential client and with `CONCURRENT_CLIENTS` clients, each round a
    `--rounds` share of `--requests` (as the TorchServe rows)."""
    per_round = max(args.requests // args.rounds, 1)
    requests = [binary_request(j) for j in jpegs]
    variants = []
    for name in names:
        path = f"/v2/models/{name}/infer"

        def seq(n: int, offset: int, path: str = path) -> dict[str, Any]:
            return v2_sequential(address, path, requests, n, offset, args.time_cap)

        def conc(n: int, offset: int, path: str = path) -> dict[str, Any]:
            return v2_concurrent(address, path, requests, n, offset, args.time_cap)

        def warm(path: str = path) -> None:
            v2_sequential(address, path, requests, args.warmup, 0, args.time_cap)

        variants.append(Variant("v2_sequential", {"model": name}, seq, per_round, warm))
        variants.append(Variant("v2_concurrent", {"model": name, "clients": CONCURRENT_CLIENTS}, conc, per_round))
    return variants


def v2_judgement(v2_p50_ms: float, in_process_p50_ms: float) -> dict[str, Any]:
    """The issue's target for one net: v2 p50 minus in-process ONNX Runtime's batch-1 p50, against V2_TARGET_MS."""
    added = round(v2_p50_ms - in_process_p50_ms, 3)
    return {"v2_added_ms": added, "target_ms": V2_TARGET_MS, "met": added <= V2_TARGET_MS}
