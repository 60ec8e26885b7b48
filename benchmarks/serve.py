"""Serving latency and throughput on the CPU: in process (eager, TorchScript, ONNX Runtime) against REST.

Per net: batch-1 latency and batch-64 throughput in process; the handler's own code (JPEG to JSON)
without TorchServe; and the same nets behind a real TorchServe (own workdir, free ports on
127.0.0.1, token auth on, stopped at the end even on failure): 1 sequential client, 8 concurrent
clients, and the feature-map route of every layer, all with real JPEG test images.

Every compared variant runs in each of `--rounds` rounds, in an order that rotates from round to
round, so a burst of other work on the machine hits all of them alike; each figure is the median
of its per-round values. Targets are judged only by ratios and differences within this run: REST
p50 at most 3 ms above in-process ONNX Runtime p50; feature-map p50 at most 3 ms above the
prediction p50, for every layer; 8 clients reach 70 % of in-process batch-64 throughput; no failed
request. The CPU, its instruction sets, the load average and the busiest other processes are
recorded before and after; from a busy machine (load average > 0.5 at the start) the committed
results are not overwritten unless --force.

    python -m benchmarks.serve [--artifacts artifacts] [--model-store model_store] [--rounds 5] [--quick]

Missing artefacts or archives are built from runs/<model>/best.pt (serving.export, serving.archive).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks.common import (
    RESULTS,
    check_quiet,
    describe_machine,
    finish,
    machine,
    markdown_table,
    median_of,
    write_results,
)
from cifarlens_runtime.constants import (
    ARCHIVE_VERSION,
    DEFAULT_BACKEND,
    FEATURE_ROUTE,
    HOST,
    METADATA_FILE,
    ONNX_FILE,
    TORCHSCRIPT_FILE,
    Ports,
)
from cifarlens_runtime.keys import refused
from serving.server import Server, free_ports, start_server, stop
from training.models import list_models

# The targets.
TARGET_P50_OVERHEAD_MS = 3.0
TARGET_FEATURE_OVERHEAD_MS = 3.0
TARGET_THROUGHPUT_RATIO = 0.7
CONCURRENT_CLIENTS = 8
BATCH = 64
HTTP_TIMEOUT_S = 60.0


def pct(ms: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 and mean of latencies in ms (NaN when nothing was timed)."""
    if not ms:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan"), "mean_ms": float("nan")}
    a = np.asarray(ms, dtype=np.float64)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    vals = {"p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "mean_ms": a.mean()}
    return {k: round(float(v), 3) for k, v in vals.items()}


def time_calls(fn: Callable[[int], Any], n: int, warmup: int, time_cap: float, offset: int = 0) -> list[float]:
    """Latencies (ms) of `fn(offset + i)` for i < n after `warmup` untimed calls; stops early at `time_cap` seconds."""
    for i in range(warmup):
        fn(offset + i)
    out: list[float] = []
    deadline = time.monotonic() + time_cap
    for i in range(n):
        t0 = time.perf_counter()
        fn(offset + i)
        out.append((time.perf_counter() - t0) * 1e3)
        if time.monotonic() > deadline:
            break
    return out


# --- inputs -------------------------------------------------------------------------------------


def test_inputs(data_dir: Path, n: int) -> tuple[np.ndarray, list[bytes]]:
    """`n` preprocessed test images (N, 3, 32, 32) and `n` JPEG bodies spread over the classes.

    JPEGs are the files of the ImageFolder copy when there are any (what a client would send);
    otherwise the decoded test images are encoded as JPEG (quality 95).
    """
    from PIL import Image

    from cifarlens_runtime.preprocess import preprocess
    from training.data import load_cifar10

    files = sorted((data_dir / "test").glob("*/*.jpg"))
    if files:
        step = max(len(files) // n, 1)
        jpegs = [f.read_bytes() for f in files[::step][:n]]
    else:
        images, _ = load_cifar10(data_dir, "test")
        step = max(len(images) // n, 1)
        jpegs = []
        for img in images[::step][:n]:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=95)
            jpegs.append(buf.getvalue())
    x = np.stack([preprocess(b) for b in jpegs]).astype(np.float32)
    return x, jpegs


# --- artefacts and archives ---------------------------------------------------------------------


def ensure_archives(
    models: Sequence[str], runs: Path, artifacts: Path, model_store: Path, data_dir: Path | None
) -> list[str]:
    """Export and archive what is missing or stale (archive older than its artefact or model-config.yaml).

    Returns what was built; raises SystemExit with the command to run when a checkpoint is missing.
    """
    from serving.archive import MODEL_CONFIG, build_archive

    built = []
    for name in models:
        art = artifacts / name
        if not all((art / f).is_file() for f in (ONNX_FILE, TORCHSCRIPT_FILE, METADATA_FILE)):
            ckpt = runs / name / "best.pt"
            if not ckpt.is_file():
                raise SystemExit(
                    f"error: {art} is incomplete and {ckpt} does not exist: train first "
                    f"(`make train-all`), then `make export archive`, or pass --runs/--artifacts"
                )
            from serving.export import export_checkpoint

            export_checkpoint(ckpt, art, data_dir=data_dir)
            built.append(f"{name}: exported {ckpt} -> {art}")
        mar = model_store / f"{name}.mar"
        newest = max((art / ONNX_FILE).stat().st_mtime, MODEL_CONFIG.stat().st_mtime)
        if not mar.is_file() or mar.stat().st_mtime < newest:
            # Keep the backend of an existing archive (make archive BACKEND=torchscript), else the default.
            backend = (archive_config(mar).get("handler") or {}).get("backend") if mar.is_file() else None
            build_archive(name, artifacts, model_store, backend=backend or DEFAULT_BACKEND)
            built.append(f"{name}: archived ({backend or DEFAULT_BACKEND}) -> {mar}")
    return built


def archive_config(mar: Path) -> dict[str, Any]:
    """The model-config.yaml inside an archive (batch size, delay, workers, backend), as TorchServe sees it."""
    with zipfile.ZipFile(mar) as z:
        name = next((n for n in z.namelist() if n.endswith("model-config.yaml")), None)
        return yaml.safe_load(z.read(name)) if name else {}


# --- what is measured: variants, each run a little in every round ---------------------------------


@dataclass
class Variant:
    """One compared thing (a runtime, a route, a client count): its table fields, and how to measure it.

    `measure(n, offset)` times `n` calls starting at input `offset` and returns that round's values:
    `lat` (ms per call) and any of `b64_img_s`, `req_s`, `failures`, `response_bytes`, `ts_mean_ms`,
    `ts_queue_ms`.
    """

    group: str
    fields: dict[str, Any]
    measure: Callable[[int, int], dict[str, Any]]
    n: int
    warmup: Callable[[], Any] | None = None
    rounds: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The medians over rounds of each round's figures (percentiles from each round's own latencies)."""
        per_round = [pct(r.get("lat", [])) for r in self.rounds]
        row: dict[str, Any] = {
            **self.fields,
            "rounds": len(self.rounds),
            "n": sum(len(r.get("lat", [])) for r in self.rounds),
        }
        if any(r.get("lat") for r in self.rounds):
            for key in ("p50_ms", "p95_ms", "p99_ms", "mean_ms"):
                row[key] = median_of([p[key] for p in per_round])
            p50s = [p["p50_ms"] for p in per_round if p["p50_ms"] == p["p50_ms"]]
            row["p50_spread_ms"] = round(max(p50s) - min(p50s), 3) if p50s else float("nan")
        for key in ("b64_img_s", "req_s", "ts_mean_ms", "ts_queue_ms"):
            vals = [r[key] for r in self.rounds if key in r]
            if vals:
                row[key] = median_of(vals)
        if any("response_bytes" in r for r in self.rounds):
            row["response_bytes"] = max(r.get("response_bytes", 0) for r in self.rounds)
        if self.group.startswith("rest"):
            row["failed"] = sum(len(r.get("failures", [])) for r in self.rounds)
        return row


def run_rounds(variants: list[Variant], rounds: int) -> None:
    """Warm every variant up, then run `rounds` rounds of all of them, the order rotated (and reversed every
    other round) so that no variant always runs first, last or next to the same neighbour."""
    for v in variants:
        if v.warmup is not None:
            v.warmup()
    for r in range(rounds):
        k = (r * len(variants)) // max(rounds, 1)
        order = variants[k:] + variants[:k]
        if r % 2:
            order.reverse()
        t0 = time.perf_counter()
        for v in order:
            v.rounds.append(v.measure(v.n, r * v.n))
        print(
            f"round {r + 1}/{rounds}: {time.perf_counter() - t0:.0f} s, load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )


# --- in process ---------------------------------------------------------------------------------


def in_process_variants(
    name: str, artifacts: Path, runs: Path, x: np.ndarray, jpegs: list[bytes], args: argparse.Namespace
) -> list[Variant]:
    """Batch-1 latency and batch-64 throughput of eager PyTorch, TorchScript and ONNX Runtime per thread
    count, and the handler's own code (JPEG decode, ONNX Runtime, JSON) without TorchServe."""
    import torch

    from cifarlens_runtime.predictor import Predictor, load_metadata
    from cifarlens_runtime.service import Request, handle_batch
    from training.checkpoint import model_from_checkpoint

    meta = load_metadata(artifacts / name)
    ckpt = Path(meta.get("checkpoint") or runs / name / "best.pt")
    if not ckpt.is_file():
        ckpt = runs / name / "best.pt"
    eager, _ = model_from_checkpoint(ckpt)
    n_img = len(x)
    batches = [np.ascontiguousarray(x[np.arange(i, i + BATCH) % n_img]) for i in range(0, n_img, BATCH)]
    per_round_batches = max(2, args.batches // args.rounds)
    variants = []
    for threads in args.threads:

        def eager_run(b: np.ndarray) -> None:
            with torch.inference_mode():
                eager(torch.from_numpy(b))

        runners: dict[str, Callable[[np.ndarray], Any]] = {"eager": eager_run}
        if threads == 1:  # TorchScript for comparison at 1 thread only
            runners["torchscript"] = Predictor(artifacts / name, backend="torchscript", threads=1).predict
        runners["onnxruntime"] = Predictor(artifacts / name, backend="onnxruntime", threads=threads).predict
        for runtime, run in runners.items():

            def measure(n: int, offset: int, run=run, threads: int = threads) -> dict[str, Any]:
                torch.set_num_threads(threads)
                lat = time_calls(lambda i: run(x[i % n_img : i % n_img + 1]), n, 0, args.time_cap, offset)
                t0, done = time.perf_counter(), 0
                for i in range(per_round_batches):
                    run(batches[(offset + i) % len(batches)])
                    done += BATCH
                return {"lat": lat, "b64_img_s": done / (time.perf_counter() - t0)}

            def warm(run=run, threads: int = threads) -> None:
                torch.set_num_threads(threads)
                for i in range(args.warmup):
                    run(x[i % n_img : i % n_img + 1])
                run(batches[0])

            fields_ = {"model": name, "runtime": runtime, "threads": threads}
            variants.append(Variant("in_process", fields_, measure, max(args.iters // args.rounds, 1), warm))

    ort = Predictor(artifacts / name, backend="onnxruntime", threads=1)

    def service(n: int, offset: int) -> dict[str, Any]:
        call = lambda i: handle_batch(ort, [Request(body=jpegs[i % len(jpegs)], route=None)])  # noqa: E731
        return {"lat": time_calls(call, n, 0, args.time_cap, offset)}

    fields_ = {"model": name, "runtime": "service (JPEG -> JSON, ORT)", "threads": 1}
    variants.append(
        Variant("service", fields_, service, max(args.iters // args.rounds, 1), lambda: service(args.warmup, 0))
    )
    return variants


# --- REST ---------------------------------------------------------------------------------------


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


_PROM_LINE = re.compile(r"^(ts_\w+)\{([^}]*)\}\s+([0-9.eE+-]+)$")
TS_COUNTERS = ("ts_inference_requests_total", "ts_inference_latency_microseconds", "ts_queue_latency_microseconds")


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
    """`CONCURRENT_CLIENTS` threads, each with its own connection, sharing `total` requests."""
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
    for t in threads:
        t.start()
    barrier.wait(timeout=args.time_cap + HTTP_TIMEOUT_S)
    start = time.perf_counter()
    for t in threads:
        t.join(timeout=args.time_cap + HTTP_TIMEOUT_S)
    for c in clients:
        c.close()
    wall = max(ends) - start if all(ends) else float("nan")
    ok = sum(len(lat) for lat in latencies)
    failures = [f for c in clients for f in c.failures] + [
        f"{path}: client thread hung" for t in threads if t.is_alive()
    ]
    return {
        "lat": [v for lat in latencies for v in lat],
        "req_s": ok / wall if wall > 0 else float("nan"),
        "failures": failures,
    }


def rest_variants(
    server: Server, names: Sequence[str], artifacts: Path, jpegs: list[bytes], args: argparse.Namespace
) -> list[Variant]:
    """Per net: predictions with 1 and with 8 clients, and the feature maps of every layer with 1 client."""
    from cifarlens_runtime.predictor import load_metadata

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
        for layer in load_metadata(artifacts / name)["feature_layers"]:
            fpath = f"/predictions/{name}/{ARCHIVE_VERSION}/{FEATURE_ROUTE}/{layer['name']}"

            def feat(n: int, offset: int, name: str = name, fpath: str = fpath) -> dict[str, Any]:
                return rest_sequential(server, name, fpath, jpegs, n, offset, args)

            shape = "×".join(str(s) for s in layer["shape"])
            fields_ = {"model": name, "layer": layer["name"], "shape": shape}
            n = max(per_round // args.feature_share, 1)
            variants.append(Variant("rest_feature_maps", fields_, feat, n, lambda feat=feat: feat(5, 0)))
    return variants


# --- report -------------------------------------------------------------------------------------


def _row(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    return next(r for r in rows if all(r.get(k) == v for k, v in match.items()))


def targets(
    names: Sequence[str], groups: dict[str, list[dict[str, Any]]], configs: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Pass/fail per net against the issue's targets, each a ratio or a difference of medians from this run
    (the archive's backend is shown: the targets compare REST with in-process ONNX Runtime)."""
    rows = []
    for name in names:
        ort = _row(groups["in_process"], model=name, runtime="onnxruntime", threads=1)
        seq = _row(groups["rest_sequential"], model=name)
        conc = _row(groups["rest_concurrent"], model=name)
        features = [r for r in groups["rest_feature_maps"] if r["model"] == name]
        failed = sum(r.get("failed", 0) for g in groups.values() for r in g if r["model"] == name)
        overhead = float(seq["p50_ms"] - ort["p50_ms"])
        feature_overhead = max(float(r["p50_ms"] - seq["p50_ms"]) for r in features)
        worst = max(features, key=lambda r: r["p50_ms"])["layer"]
        ratio = conc["req_s"] / ort["b64_img_s"]
        latency_ok = bool(overhead <= TARGET_P50_OVERHEAD_MS)
        feature_ok = bool(feature_overhead <= TARGET_FEATURE_OVERHEAD_MS)
        tput_ok = bool(ratio >= TARGET_THROUGHPUT_RATIO)
        rows.append({
            "model": name,
            "rest_backend": (configs.get(name, {}).get("handler") or {}).get("backend", "?"),
            "ort_p50_ms": ort["p50_ms"],
            "rest_p50_ms": seq["p50_ms"],
            "overhead_ms": round(overhead, 3),
            "latency_pass": "pass" if latency_ok else "FAIL",
            "worst_layer": worst,
            "feature_over_prediction_ms": round(feature_overhead, 3),
            "feature_pass": "pass" if feature_ok else "FAIL",
            "ort_b64_img_s": ort["b64_img_s"],
            "rest_8c_req_s": conc["req_s"],
            "ratio": round(ratio, 3),
            "throughput_pass": "pass" if tput_ok else "FAIL",
            "failed": failed,
            "failed_pass": "pass" if failed == 0 else "FAIL",
            "all_pass": latency_ok and feature_ok and tput_ok and failed == 0,
        })  # fmt: skip
    return rows


def markdown(payload: dict[str, Any]) -> str:
    s = payload["settings"]
    m = payload["machine"]
    lat_cols = ["model", "runtime", "threads", "n", "p50_ms", "p50_spread_ms", "p95_ms", "p99_ms"]
    busiest = "; ".join(
        f"{when}: " + (", ".join(f"{p['name']} {p['cpu_percent']:.0f} %" for p in m[key]["busiest"]) or "none")
        for when, key in (("start", "at_start"), ("end", "at_end"))
        if key in m
    )
    parts = [
        "## Settings\n",
        f"{s['rounds']} rounds; in each, every variant below runs once, in an order rotated from round to round "
        "(and reversed every other round), so a burst of other work hits all variants alike. Every figure is the "
        "median of the per-round figures; `p50_spread_ms` is the largest minus the smallest per-round p50 (how much "
        "the machine moved under the run). Targets compare medians of this one run only.\n\n"
        f"Machine: {describe_machine(m)}. Busiest other processes (% of one core) at {busiest}.\n\n"
        f"In process: batch-1 latency over {s['iters']} calls in all (after {s['warmup']} warm-up calls) on "
        f"preprocessed CIFAR-10 test images; batch-{BATCH} throughput over about {s['batches']} batches in all. Thread "
        "counts as listed (`torch.set_num_threads`, ONNX Runtime intra-op threads; inter-op 1). Eager is the "
        "checkpoint's net (logits only); TorchScript and ONNX Runtime run the exported FeatureModel through "
        "`cifarlens_runtime.predictor.Predictor`, asking for the logits. The service row is the handler's code "
        "(`cifarlens_runtime.service.handle_batch`: JPEG decode, preprocessing, ONNX Runtime, JSON) without "
        "TorchServe.\n\n"
        f"REST: one TorchServe on 127.0.0.1 (token auth on, `OMP_NUM_THREADS=1`) with the archives of "
        f"`{s['model_store']}`; per-model settings from the archives: {json.dumps(payload['archive_configs'])}. "
        f"Clients are Python threads with one keep-alive `http.client` connection each, on the same machine "
        f"(they share its cores with the server), sending real JPEG test images (`image/jpeg`). Sequential: "
        f"{s['requests']} requests in all, 1 client. Concurrent: {CONCURRENT_CLIENTS} clients sharing "
        f"{s['requests']} requests in all; req/s over the time from the common start to the last client's end. "
        f"Feature maps: every layer, 1 client, 1/{s['feature_share']} as many requests. `ts_mean_ms` and "
        "`ts_queue_ms` are TorchServe's own mean time per request and in its queue (Prometheus counters): client "
        f"p50 minus those is HTTP and the client. Every loop stops early after {s['time_cap']} s. Failed = any "
        "answer other than 200 or a connection error.\n",
        "## In process, batch 1 latency (ms)\n",
        markdown_table(payload["in_process"] + payload["service"], lat_cols),
        f"\n## In process, batch {BATCH} throughput (images/s)\n",
        markdown_table(payload["in_process"], ["model", "runtime", "threads", "b64_img_s"]),
        "\n## REST, 1 sequential client, batch 1 (ms)\n",
        markdown_table(
            payload["rest_sequential"],
            [
                "model",
                "n",
                "p50_ms",
                "p50_spread_ms",
                "p95_ms",
                "p99_ms",
                "ts_mean_ms",
                "ts_queue_ms",
                "failed",
                "response_bytes",
            ],
        ),  # fmt: skip
        f"\n## REST, {CONCURRENT_CLIENTS} concurrent clients\n",
        markdown_table(payload["rest_concurrent"], ["model", "clients", "n", "req_s", "p50_ms", "p95_ms", "failed"]),
        "\n## REST, feature maps of every layer, 1 sequential client (ms)\n",
        markdown_table(
            payload["rest_feature_maps"],
            [
                "model",
                "layer",
                "shape",
                "n",
                "p50_ms",
                "p50_spread_ms",
                "p95_ms",
                "ts_mean_ms",
                "failed",
                "response_bytes",
            ],
        ),  # fmt: skip
        "\n## Targets\n",
        f"REST p50 at most {TARGET_P50_OVERHEAD_MS:g} ms above in-process ONNX Runtime p50 (1 thread); feature-map "
        f"p50 at most {TARGET_FEATURE_OVERHEAD_MS:g} ms above the prediction p50, for every layer (the worst layer "
        f"shown); {CONCURRENT_CLIENTS} clients reach at least {TARGET_THROUGHPUT_RATIO:.0%} of in-process ONNX "
        f"Runtime batch-{BATCH} throughput (1 thread); no failed request.\n",
        markdown_table(
            payload["targets"],
            [
                "model",
                "ort_p50_ms",
                "rest_p50_ms",
                "overhead_ms",
                "latency_pass",
                "worst_layer",
                "feature_over_prediction_ms",
                "feature_pass",
                "ort_b64_img_s",
                "rest_8c_req_s",
                "ratio",
                "throughput_pass",
                "failed",
                "failed_pass",
            ],
        ),  # fmt: skip
    ]
    if s["quick"]:
        parts.insert(0, "**Quick validation run (`--quick`): too few requests for meaningful percentiles.**\n")
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
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
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.iters, args.batches, args.warmup, args.rounds = 40, 40, 4, 8, 2
        args.threads, args.time_cap = [1], 20.0
    import torch

    torch.set_num_interop_threads(1)
    info = machine()
    print(f"machine: {describe_machine(info)}", flush=True)
    check_quiet(args.out, args.force or args.quick and args.out != RESULTS, info)
    artifacts, model_store, runs = Path(args.artifacts), Path(args.model_store), Path(args.runs)
    data_dir = Path(args.data_dir)
    if not (data_dir / "test").is_dir():
        print(f"error: {data_dir}/test not found: pass --data-dir (a CIFAR-10 ImageFolder root)", file=sys.stderr)
        return 1
    built = ensure_archives(args.models, runs, artifacts, model_store, data_dir)
    for line in built:
        print(line, flush=True)
    x, jpegs = test_inputs(data_dir, 256)

    variants: list[Variant] = []
    for name in args.models:
        variants += in_process_variants(name, artifacts, runs, x, jpegs, args)
    workdir = Path(tempfile.mkdtemp(prefix="cifarlens-bench-serve-"))
    server = None
    try:
        t0 = time.perf_counter()
        server = start_server(model_store, Ports(*free_ports()), workdir, foreground=True, models=args.models)
        print(f"TorchServe healthy in {time.perf_counter() - t0:.0f} s (workdir {workdir})", flush=True)
        variants += rest_variants(server, args.models, artifacts, jpegs, args)
        run_rounds(variants, args.rounds)
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

    groups: dict[str, list[dict[str, Any]]] = {
        g: [] for g in ("in_process", "service", "rest_sequential", "rest_concurrent", "rest_feature_maps")
    }
    for v in variants:
        row = v.summary()
        groups[v.group].append(row)
        print({"group": v.group, **row}, flush=True)
    configs = {n: archive_config(model_store / f"{n}.mar") for n in args.models}
    payload: dict[str, Any] = {
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
    for row in payload["targets"]:
        print(row, flush=True)
    for path in write_results("serve_cpu", payload, markdown(payload), args.out):
        print(path)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
