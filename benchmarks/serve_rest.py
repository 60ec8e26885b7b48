"""Serving through TorchServe's REST API: predictions with 1 sequential client and with 8 concurrent clients.

Clients are Python threads with one keep-alive `http.client` connection each, on the same machine as the
server, sending real JPEG test images; a failed request is counted, not raised. TorchServe's own mean time
per request and in its queue (its Prometheus counters) split the client's latency into server and HTTP.
"""

from __future__ import annotations

import argparse
import http.client
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.rounds import time_calls
from benchmarks.serve_variant import Variant
from cifarlens_runtime.constants import HOST
from cifarlens_runtime.keys import refused
from serving.server import Server

CONCURRENT_CLIENTS = 8
HTTP_TIMEOUT_S = 60.0
_PROM_LINE = re.compile(r"^(ts_\w+)\{([^}]*)\}\s+([0-9.eE+-]+)$")
TS_COUNTERS = ("ts_inference_requests_total", "ts_inference_latency_microseconds", "ts_queue_latency_microseconds")


class Client:
    """One keep-alive HTTP connection to TorchServe; counts failed requests instead of raising."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.port = server.ports.inference
        self.headers = self._headers()
        self.conn: http.client.HTTPConnection | None = None
        self.failures: list[str] = []
        self.last_size = 0

    def _headers(self) -> dict[str, str]:
        return {**self.server.headers("inference"), "Content-Type": "image/jpeg"}

    def post(self, path: str, body: bytes) -> bool:
        """True on a 200 answer; a failure is recorded and the connection reopened. A refused key (the server's
        renewer replaced it) is read again from the key file and the request sent once more."""
        try:
            for attempt in range(2):
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(HOST, self.port, timeout=HTTP_TIMEOUT_S)
                self.conn.request("POST", path, body=body, headers=self.headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if attempt or not refused(resp.status, data):
                    break
                self.headers = self._headers()
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


def ts_counters(server: Server, model: str) -> dict[str, float]:
    """TorchServe's own request counters for `model` (Prometheus endpoint, no token); {} when unreadable."""
    try:
        conn = http.client.HTTPConnection(HOST, server.ports.metrics, timeout=10)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode("utf-8", "replace")
        conn.close()
    except (OSError, http.client.HTTPException):
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _PROM_LINE.match(line.strip())
        if m and m.group(1) in TS_COUNTERS and f'model_name="{model}"' in m.group(2):
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
    return out


def ts_breakdown(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Mean time per request as TorchServe counts it (arrival to answer) and in its queue, in ms.

    Client latency minus `ts_mean_ms` is HTTP and the client; `ts_mean_ms` minus the in-process service time is
    the frontend, the batch wait and the worker protocol.
    """
    if not before or not after:
        return {}
    n = after.get(TS_COUNTERS[0], 0.0) - before.get(TS_COUNTERS[0], 0.0)
    if n <= 0:
        return {}
    mean = (after.get(TS_COUNTERS[1], 0.0) - before.get(TS_COUNTERS[1], 0.0)) / n / 1e3
    queue = (after.get(TS_COUNTERS[2], 0.0) - before.get(TS_COUNTERS[2], 0.0)) / n / 1e3
    return {"ts_mean_ms": round(mean, 3), "ts_queue_ms": round(queue, 3)}


def rest_sequential(
    server: Server, model: str, path: str, jpegs: list[bytes], n: int, offset: int, args: argparse.Namespace
) -> dict[str, Any]:
    """One client, one request at a time: latencies, failures, the answer size and TorchServe's own mean
    time per request over these requests."""
    client = Client(server)
    try:
        before = ts_counters(server, model)
        lat = time_calls(lambda i: client.post(path, jpegs[i % len(jpegs)]), n, 0, args.time_cap, offset)
        after = ts_counters(server, model)
    finally:
        client.close()
    return {"lat": lat, "failures": client.failures, "response_bytes": client.last_size, **ts_breakdown(before, after)}


def rest_concurrent(
    server: Server, path: str, jpegs: list[bytes], total: int, offset: int, args: argparse.Namespace
) -> dict[str, Any]:
    """`CONCURRENT_CLIENTS` threads, each with its own connection, sharing `total` requests; req/s over the time
    from their common start (each has opened its connection) to the last one's end."""
    per_client = max(total // CONCURRENT_CLIENTS, 1)
    clients = [Client(server) for _ in range(CONCURRENT_CLIENTS)]
    latencies: list[list[float]] = [[] for _ in clients]
    barrier = threading.Barrier(CONCURRENT_CLIENTS + 1)
    ends = [0.0] * CONCURRENT_CLIENTS

    def work(k: int) -> None:
        c = clients[k]
        c.post(path, jpegs[k % len(jpegs)])  # open the connection before the clock starts
        barrier.wait()
        deadline = time.monotonic() + args.time_cap
        for i in range(per_client):
            t0 = time.perf_counter()
            if c.post(path, jpegs[(offset + k * per_client + i) % len(jpegs)]):
                latencies[k].append((time.perf_counter() - t0) * 1e3)
            if time.monotonic() > deadline:
                break
        ends[k] = time.perf_counter()

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(CONCURRENT_CLIENTS)]
    start = _start_together(threads, barrier, args.time_cap + HTTP_TIMEOUT_S)
    for c in clients:
        c.close()
    wall = max(ends) - start if all(ends) else float("nan")
    ok = sum(len(lat) for lat in latencies)
    hung = [f"{path}: client thread hung" for t in threads if t.is_alive()]
    return {
        "lat": [v for lat in latencies for v in lat],
        "req_s": ok / wall if wall > 0 else float("nan"),
        "failures": [f for c in clients for f in c.failures] + hung,
    }


def _start_together(threads: list[threading.Thread], barrier: threading.Barrier, timeout: float) -> float:
    """Start the client threads, release them at once, wait for them (at most `timeout` each); the start time."""
    for t in threads:
        t.start()
    barrier.wait(timeout=timeout)
    start = time.perf_counter()
    for t in threads:
        t.join(timeout=timeout)
    return start


def prediction_variants(
    server: Server, names: Sequence[str], jpegs: list[bytes], args: argparse.Namespace
) -> list[Variant]:
    """Per net: /predictions/<net> with 1 sequential client and with `CONCURRENT_CLIENTS` clients, each round a
    `--rounds` share of `--requests`."""
    per_round = max(args.requests // args.rounds, 1)
    variants = []
    for name in names:
        path = f"/predictions/{name}"

        def seq(n: int, offset: int, name: str = name, path: str = path) -> dict[str, Any]:
            return rest_sequential(server, name, path, jpegs, n, offset, args)

        def conc(n: int, offset: int, path: str = path) -> dict[str, Any]:
            return rest_concurrent(server, path, jpegs, n, offset, args)

        def warm(name: str = name, path: str = path) -> None:
            rest_sequential(server, name, path, jpegs, args.warmup, 0, args)

        variants.append(Variant("rest_sequential", {"model": name}, seq, per_round, warm))
        variants.append(Variant("rest_concurrent", {"model": name, "clients": CONCURRENT_CLIENTS}, conc, per_round))
    return variants
