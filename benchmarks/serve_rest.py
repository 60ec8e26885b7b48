"""Serving through TorchServe's REST API: predictions with 1 sequential client and with 8 concurrent clients.

The clients and the two loops (`sequential`, `concurrent`) are the benchmarks' one HTTP client: the v2 rows
(benchmarks.serve_v2) use them too, with requests of their own. Clients are Python threads with one keep-alive
`http.client` connection each, on the same machine as the server, sending real JPEG test images; a failed request is counted, not raised. TorchServe's own mean time
per request and in its queue (its Prometheus counters) split the client's latency into server and HTTP.
"""

from __future__ import annotations

import argparse
import http.client
import re
import threading
import time
from collections.abc import Callable, Sequence
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


Request = tuple[bytes, dict[str, str]]  # a body and the headers of its own (on top of the client's)


class HttpClient:
    """One keep-alive HTTP connection to a port on HOST; counts failed requests instead of raising. Subclasses say
    which headers every request carries and which answers mean "send it once more with fresh headers"."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.headers = self.fresh_headers()
        self.conn: http.client.HTTPConnection | None = None
        self.failures: list[str] = []
        self.last_size = 0

    def fresh_headers(self) -> dict[str, str]:
        """The headers every request carries (read again after a refusal)."""
        return {}

    def refused(self, status: int, data: bytes) -> bool:
        """Whether this answer asks for a retry with fresh headers."""
        return False

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> bool:
        """True on a 200 answer; a failure is recorded and the connection reopened. A refused request is sent once
        more with fresh headers."""
        try:
            for attempt in range(2):
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(HOST, self.port, timeout=HTTP_TIMEOUT_S)
                self.conn.request("POST", path, body=body, headers={**self.headers, **(headers or {})})
                resp = self.conn.getresponse()
                data = resp.read()
                if attempt or not self.refused(resp.status, data):
                    break
                self.headers = self.fresh_headers()
            self.last_size = len(data)
            if resp.status == 200:
                return True
            self.failures.append(f"{path}: HTTP {resp.status} {data[:200].decode('utf-8', 'replace')}")
        except (OSError, http.client.HTTPException) as exc:
            self.failures.append(f"{path}: {type(exc).__name__}: {exc}")
            self.close()
        return False

    def send(self, path: str, request: Request) -> bool:
        """`post` of one prepared request."""
        return self.post(path, request[0], request[1])

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Client(HttpClient):
    """TorchServe's inference port, with its token; a refused key (the server's renewer replaced it) is read again
    from the key file."""

    def __init__(self, server: Server) -> None:
        self.server = server
        super().__init__(server.ports.inference)

    def fresh_headers(self) -> dict[str, str]:
        return {**self.server.headers("inference"), "Content-Type": "image/jpeg"}

    def refused(self, status: int, data: bytes) -> bool:
        return refused(status, data)


def jpeg_requests(jpegs: Sequence[bytes]) -> list[Request]:
    """TorchServe's requests: the JPEG as the body, no headers of its own."""
    return [(j, {}) for j in jpegs]


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


def sequential(
    client: HttpClient, path: str, requests: Sequence[Request], n: int, offset: int, time_cap: float
) -> dict[str, Any]:
    """One client, one request at a time: latencies, failures and the answer's size; the client is closed after."""
    try:
        lat = time_calls(lambda i: client.send(path, requests[i % len(requests)]), n, 0, time_cap, offset)
    finally:
        client.close()
    return {"lat": lat, "failures": client.failures, "response_bytes": client.last_size}


def rest_sequential(
    server: Server, model: str, path: str, jpegs: list[bytes], n: int, offset: int, args: argparse.Namespace
) -> dict[str, Any]:
    """`sequential` through TorchServe, with TorchServe's own mean time per request over these requests."""
    before = ts_counters(server, model)
    out = sequential(Client(server), path, jpeg_requests(jpegs), n, offset, args.time_cap)
    return {**out, **ts_breakdown(before, ts_counters(server, model))}


def concurrent(
    make_client: Callable[[], HttpClient],
    path: str,
    requests: Sequence[Request],
    total: int,
    offset: int,
    time_cap: float,
) -> dict[str, Any]:
    """`CONCURRENT_CLIENTS` threads, each with its own connection, sharing `total` requests; req/s over the time
    from their common start (each has opened its connection) to the last one's end."""
    per_client = max(total // CONCURRENT_CLIENTS, 1)
    clients = [make_client() for _ in range(CONCURRENT_CLIENTS)]
    latencies: list[list[float]] = [[] for _ in clients]
    barrier = threading.Barrier(CONCURRENT_CLIENTS + 1)
    ends = [0.0] * CONCURRENT_CLIENTS

    def work(k: int) -> None:
        c = clients[k]
        c.send(path, requests[k % len(requests)])  # open the connection before the clock starts
        barrier.wait()
        deadline = time.monotonic() + time_cap
        for i in range(per_client):
            t0 = time.perf_counter()
            if c.send(path, requests[(offset + k * per_client + i) % len(requests)]):
                latencies[k].append((time.perf_counter() - t0) * 1e3)
            if time.monotonic() > deadline:
                break
        ends[k] = time.perf_counter()

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(CONCURRENT_CLIENTS)]
    start = _start_together(threads, barrier, time_cap + HTTP_TIMEOUT_S)
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
    requests = jpeg_requests(jpegs)
    variants = []
    for name in names:
        path = f"/predictions/{name}"

        def seq(n: int, offset: int, name: str = name, path: str = path) -> dict[str, Any]:
            return rest_sequential(server, name, path, jpegs, n, offset, args)

        def conc(n: int, offset: int, path: str = path) -> dict[str, Any]:
            return concurrent(lambda: Client(server), path, requests, n, offset, args.time_cap)

        def warm(name: str = name, path: str = path) -> None:
            rest_sequential(server, name, path, jpegs, args.warmup, 0, args)

        variants.append(Variant("rest_sequential", {"model": name}, seq, per_round, warm))
        variants.append(Variant("rest_concurrent", {"model": name, "clients": CONCURRENT_CLIENTS}, conc, per_round))
    return variants
