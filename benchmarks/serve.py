"""Serving latency and throughput on the CPU: in process (eager, TorchScript, ONNX Runtime) against REST.

One run measures, per net: batch-1 latency percentiles and batch-64 throughput in process, then the
same nets behind a real TorchServe (own workdir, free ports on 127.0.0.1, token auth on, stopped at
the end even on failure) with 1 sequential client and 8 concurrent clients sending real JPEG test
images, plus the feature-map endpoint. The REST numbers are judged against the issue's targets
(REST p50 at most 3 ms above in-process ONNX Runtime p50; 8 clients reach 70 % of in-process
single-thread batch-64 throughput; no failed request). Run it on a quiet machine:

    python -m benchmarks.serve [--artifacts artifacts] [--model-store model_store] [--requests 1000] [--quick]

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
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks.common import machine, markdown_table, write_results
from serving import ARCHIVE_VERSION, DEFAULT_BACKEND, FEATURE_ROUTE, METADATA_FILE, ONNX_FILE, TORCHSCRIPT_FILE
from serving.server import HOST, Ports, Server, free_ports, start_server, stop
from training.models import list_models

# The targets.
TARGET_P50_OVERHEAD_MS = 3.0
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


def time_calls(fn: Callable[[int], Any], n: int, warmup: int, time_cap: float) -> list[float]:
    """Latencies (ms) of `fn(i)` for i < n after `warmup` untimed calls; stops early at `time_cap` seconds."""
    for i in range(warmup):
        fn(i)
    out: list[float] = []
    deadline = time.monotonic() + time_cap
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
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

    from training.data import load_cifar10
    from training.preprocess import preprocess

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


# --- in process ---------------------------------------------------------------------------------


def in_process(
    name: str, artifacts: Path, runs: Path, x: np.ndarray, threads: int, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Batch-1 latency and batch-64 throughput of eager PyTorch, TorchScript and ONNX Runtime with `threads`."""
    import torch

    from serving.predictor import Predictor, load_metadata
    from training.checkpoint import model_from_checkpoint

    torch.set_num_threads(threads)
    meta = load_metadata(artifacts / name)
    ckpt = Path(meta.get("checkpoint") or runs / name / "best.pt")
    if not ckpt.is_file():
        ckpt = runs / name / "best.pt"
    eager, _ = model_from_checkpoint(ckpt)
    ts = Predictor(artifacts / name, backend="torchscript", threads=threads)
    ort = Predictor(artifacts / name, backend="onnxruntime", threads=threads)
    torch.set_num_threads(threads)  # Predictor(torchscript) sets it too; keep it explicit

    def eager_run(b: np.ndarray) -> None:
        with torch.inference_mode():
            eager(torch.from_numpy(b))

    runners: dict[str, Callable[[np.ndarray], Any]] = {
        "eager": eager_run,
        "torchscript": ts.predict,
        "onnxruntime": ort.predict,
    }
    n_img = len(x)
    batches = [np.ascontiguousarray(x[np.arange(i, i + BATCH) % n_img]) for i in range(0, n_img, BATCH)]
    rows = []
    for runtime, run in runners.items():
        if threads != 1 and runtime == "torchscript":
            continue  # 2 threads only for eager and ONNX Runtime
        lat = time_calls(lambda i, run=run: run(x[i % n_img : i % n_img + 1]), args.iters, args.warmup, args.time_cap)
        for b in batches[: max(2, args.warmup // 5)]:
            run(b)
        t0, done = time.perf_counter(), 0
        deadline = time.monotonic() + args.time_cap
        for i in range(args.batches):
            run(batches[i % len(batches)])
            done += BATCH
            if time.monotonic() > deadline:
                break
        tput = done / (time.perf_counter() - t0)
        row = {"model": name, "runtime": runtime, "threads": threads, "n": len(lat), **pct(lat)}
        row["b64_img_s"] = round(tput, 1)
        row["b64_batches"] = done // BATCH
        print(row, flush=True)
        rows.append(row)
    return rows


def service_in_process(name: str, artifacts: Path, jpegs: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    """Batch-1 latency of the handler's own code (JPEG decode, ONNX Runtime, JSON) without TorchServe.

    The gap between this and REST is TorchServe's share (HTTP, Java frontend, batching, worker socket).
    """
    from serving.predictor import Predictor
    from serving.service import Request, handle_batch

    ort = Predictor(artifacts / name, backend="onnxruntime", threads=1)
    lat = time_calls(
        lambda i: handle_batch(ort, [Request(body=jpegs[i % len(jpegs)], route=None)]),
        args.iters,
        args.warmup,
        args.time_cap,
    )
    row = {"model": name, "runtime": "service (JPEG -> JSON, ORT)", "threads": 1, "n": len(lat), **pct(lat)}
    print(row, flush=True)
    return row


# --- REST ---------------------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP connection to TorchServe; counts failed requests instead of raising."""

    def __init__(self, server: Server) -> None:
        self.port = server.ports.inference
        self.headers = {**server.headers("inference"), "Content-Type": "image/jpeg"}
        self.conn: http.client.HTTPConnection | None = None
        self.failures: list[str] = []
        self.last_size = 0

    def post(self, path: str, body: bytes) -> bool:
        """True on a 200 answer; a failure is recorded and the connection reopened."""
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=HTTP_TIMEOUT_S)
            self.conn.request("POST", path, body=body, headers=self.headers)
            resp = self.conn.getresponse()
            data = resp.read()
            self.last_size = len(data)
            if resp.status == 200:
                return True
            self.failures.append(f"{path}: HTTP {resp.status} {data[:200]!r}")
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
    server: Server, model: str, path: str, jpegs: list[bytes], n: int, args: argparse.Namespace
) -> tuple[dict[str, Any], list[str]]:
    """One client, one request at a time: latency percentiles, failures, the answer size and TorchServe's
    own mean time per request over the timed requests."""
    client = Client(server)
    try:
        for i in range(args.warmup):
            client.post(path, jpegs[i % len(jpegs)])
        before = ts_counters(server, model)
        lat = time_calls(lambda i: client.post(path, jpegs[i % len(jpegs)]), n, 0, args.time_cap)
        after = ts_counters(server, model)
    finally:
        client.close()
    # Warm-up failures count too: every request must succeed.
    row = {"n": len(lat), **pct(lat), "failed": len(client.failures), "response_bytes": client.last_size}
    row.update(ts_breakdown(before, after))
    return row, client.failures


def rest_concurrent(
    server: Server, path: str, jpegs: list[bytes], total: int, args: argparse.Namespace
) -> tuple[dict[str, Any], list[str]]:
    """`CONCURRENT_CLIENTS` threads, each with its own connection, sharing `total` requests after a warm-up."""
    per_client = max(total // CONCURRENT_CLIENTS, 1)
    clients = [Client(server) for _ in range(CONCURRENT_CLIENTS)]
    latencies: list[list[float]] = [[] for _ in clients]
    barrier = threading.Barrier(CONCURRENT_CLIENTS + 1)
    ends = [0.0] * CONCURRENT_CLIENTS

    def work(k: int) -> None:
        c = clients[k]
        for i in range(max(args.warmup // CONCURRENT_CLIENTS, 1)):
            c.post(path, jpegs[(k + i) % len(jpegs)])
        barrier.wait()
        deadline = time.monotonic() + args.time_cap
        for i in range(per_client):
            t0 = time.perf_counter()
            ok = c.post(path, jpegs[(k * per_client + i) % len(jpegs)])
            if ok:
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
    failures = [f for c in clients for f in c.failures]
    row = {
        "clients": CONCURRENT_CLIENTS,
        "n": ok + len(failures),
        "req_s": round(ok / wall, 1) if wall > 0 else float("nan"),
        **pct([v for lat in latencies for v in lat]),
        "failed": len(failures) + sum(t.is_alive() for t in threads),
    }
    return row, failures


def rest(
    names: Sequence[str], artifacts: Path, model_store: Path, jpegs: list[bytes], args: argparse.Namespace
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Start TorchServe on the archives, measure every net, and stop it whatever happens."""
    from serving.predictor import load_metadata

    groups: dict[str, list[dict[str, Any]]] = {"rest_sequential": [], "rest_concurrent": [], "rest_feature_maps": []}
    failures: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="cifarlens-bench-serve-"))
    server = None
    try:
        t0 = time.perf_counter()
        server = start_server(model_store, Ports(*free_ports()), workdir, foreground=True, models=names)
        print(f"TorchServe healthy in {time.perf_counter() - t0:.0f} s (workdir {workdir})", flush=True)
        for name in names:
            path = f"/predictions/{name}"
            row, f = rest_sequential(server, name, path, jpegs, args.requests, args)
            groups["rest_sequential"].append({"model": name, **row})
            failures += f
            print({"model": name, "rest": "sequential", **row}, flush=True)
            row, f = rest_concurrent(server, path, jpegs, args.requests, args)
            groups["rest_concurrent"].append({"model": name, **row})
            failures += f
            print({"model": name, "rest": "concurrent", **row}, flush=True)
            layers = load_metadata(artifacts / name)["feature_layers"]
            mid = layers[len(layers) // 2]["name"]
            largest = max(layers, key=lambda d: int(np.prod(d["shape"])))["name"]
            for label, layer in (("mid", mid), ("largest", largest)):
                fpath = f"/predictions/{name}/{ARCHIVE_VERSION}/{FEATURE_ROUTE}/{layer}"
                row, f = rest_sequential(server, name, fpath, jpegs, max(args.requests // 5, 10), args)
                row = {"model": name, "layer": f"{layer} ({label})", **row}
                groups["rest_feature_maps"].append(row)
                failures += f
                print(row, flush=True)
    except BaseException:
        print(f"TorchServe logs kept in {workdir / 'logs'}", file=sys.stderr)
        raise
    finally:
        if server is not None:
            stop(server)
    if failures:
        print(f"{len(failures)} failed requests; TorchServe logs kept in {workdir / 'logs'}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return groups, failures


# --- report -------------------------------------------------------------------------------------


def targets(
    names: Sequence[str],
    local: list[dict[str, Any]],
    groups: dict[str, list[dict[str, Any]]],
    configs: dict[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    """Pass/fail per net against the issue's three targets (the archive's backend is shown: the targets
    compare REST with in-process ONNX Runtime, so a TorchScript archive is judged against another runtime)."""
    rows = []
    for name in names:
        ort = next(r for r in local if r["model"] == name and r["runtime"] == "onnxruntime" and r["threads"] == 1)
        seq = next(r for r in groups["rest_sequential"] if r["model"] == name)
        conc = next(r for r in groups["rest_concurrent"] if r["model"] == name)
        failed = sum(r["failed"] for g in groups.values() for r in g if r["model"] == name)
        overhead = float(seq["p50_ms"] - ort["p50_ms"])
        ratio = conc["req_s"] / ort["b64_img_s"]
        latency_ok = bool(overhead <= TARGET_P50_OVERHEAD_MS)
        tput_ok = bool(ratio >= TARGET_THROUGHPUT_RATIO)
        rows.append({
            "model": name,
            "rest_backend": (configs.get(name, {}).get("handler") or {}).get("backend", "?"),
            "ort_p50_ms": ort["p50_ms"],
            "rest_p50_ms": seq["p50_ms"],
            "overhead_ms": round(overhead, 3),
            "latency_pass": "pass" if latency_ok else "FAIL",
            "ort_b64_img_s": ort["b64_img_s"],
            "rest_8c_req_s": conc["req_s"],
            "ratio": round(ratio, 3),
            "throughput_pass": "pass" if tput_ok else "FAIL",
            "failed": failed,
            "failed_pass": "pass" if failed == 0 else "FAIL",
            "all_pass": latency_ok and tput_ok and failed == 0,
        })  # fmt: skip
    return rows


def markdown(payload: dict[str, Any]) -> str:
    s = payload["settings"]
    lat_cols = ["model", "runtime", "threads", "n", "p50_ms", "p95_ms", "p99_ms", "mean_ms"]
    parts = [
        "## Settings\n",
        f"In process: batch-1 latency over {s['iters']} calls (after {s['warmup']} warm-up calls) on preprocessed "
        f"CIFAR-10 test images; batch-{BATCH} throughput over {s['batches']} batches. Thread counts as listed "
        "(`torch.set_num_threads`, ONNX Runtime intra-op threads; inter-op 1). Eager is the checkpoint's net "
        "(logits only); TorchScript and ONNX Runtime run the exported FeatureModel through "
        "`serving.predictor.Predictor`, asking for the logits. The service row is the handler's code "
        "(`serving.service.handle_batch`: JPEG decode, preprocessing, ONNX Runtime, JSON) without TorchServe.\n\n"
        f"REST: one TorchServe on 127.0.0.1 (token auth on, `OMP_NUM_THREADS=1`) with the archives of "
        f"`{s['model_store']}`; per-model settings from the archives: {json.dumps(payload['archive_configs'])}. "
        f"Clients are Python threads with one keep-alive `http.client` connection each, on the same machine "
        f"(they share its cores with the server), sending real JPEG test images (`image/jpeg`). Sequential: "
        f"{s['requests']} requests, 1 client. Concurrent: {CONCURRENT_CLIENTS} clients sharing {s['requests']} "
        f"requests; req/s over the time from the common start to the last client's end. `ts_mean_ms` and "
        "`ts_queue_ms` are TorchServe's own mean time per request and in its queue (Prometheus counters over the "
        "timed requests): client p50 minus those is HTTP and the client. Every loop stops "
        f"early after {s['time_cap']} s. Failed = any answer other than 200 or a connection error.\n",
        "## In process, batch 1 latency (ms)\n",
        markdown_table(payload["in_process"] + payload["service"], lat_cols),
        f"\n## In process, batch {BATCH} throughput (images/s)\n",
        markdown_table(payload["in_process"], ["model", "runtime", "threads", "b64_batches", "b64_img_s"]),
        "\n## REST, 1 sequential client, batch 1 (ms)\n",
        markdown_table(
            payload["rest_sequential"],
            ["model", *lat_cols[3:], "ts_mean_ms", "ts_queue_ms", "failed", "response_bytes"],
        ),
        f"\n## REST, {CONCURRENT_CLIENTS} concurrent clients\n",
        markdown_table(payload["rest_concurrent"], ["model", "clients", "n", "req_s", *lat_cols[4:], "failed"]),
        "\n## REST, feature maps, 1 sequential client (ms)\n",
        markdown_table(
            payload["rest_feature_maps"],
            ["model", "layer", "n", "p50_ms", "p95_ms", "ts_mean_ms", "failed", "response_bytes"],
        ),
        "\n## Targets\n",
        f"REST p50 at most {TARGET_P50_OVERHEAD_MS:g} ms above in-process ONNX Runtime p50 (1 thread); "
        f"{CONCURRENT_CLIENTS} clients reach at least {TARGET_THROUGHPUT_RATIO:.0%} of in-process ONNX Runtime "
        f"batch-{BATCH} throughput (1 thread); no failed request.\n",
        markdown_table(
            payload["targets"],
            [
                "model",
                "ort_p50_ms",
                "rest_p50_ms",
                "overhead_ms",
                "latency_pass",
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
    parser.add_argument("--requests", type=int, default=1000, help="REST requests per measurement (default: 1000)")
    parser.add_argument("--iters", type=int, default=1000, help="in-process batch-1 calls (default: 1000)")
    parser.add_argument("--batches", type=int, default=40, help=f"in-process batch-{BATCH} calls (default: 40)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed calls before each loop (default: 50)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="in-process thread counts")
    parser.add_argument("--time-cap", type=float, default=120.0, help="seconds per timed loop at most")
    parser.add_argument("--quick", action="store_true", help="few requests, 1 thread: validates the script")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.iters, args.batches, args.warmup = 40, 40, 3, 8
        args.threads, args.time_cap = [1], 20.0
    import torch

    torch.set_num_interop_threads(1)
    info = machine()
    artifacts, model_store, runs = Path(args.artifacts), Path(args.model_store), Path(args.runs)
    data_dir = Path(args.data_dir)
    if not (data_dir / "test").is_dir():
        print(f"error: {data_dir}/test not found: pass --data-dir (a CIFAR-10 ImageFolder root)", file=sys.stderr)
        return 1
    built = ensure_archives(args.models, runs, artifacts, model_store, data_dir)
    for line in built:
        print(line, flush=True)
    x, jpegs = test_inputs(data_dir, 256)

    local: list[dict[str, Any]] = []
    service: list[dict[str, Any]] = []
    for name in args.models:
        for threads in args.threads:
            local += in_process(name, artifacts, runs, x, threads, args)
        service.append(service_in_process(name, artifacts, jpegs, args))

    groups, failures = rest(args.models, artifacts, model_store, jpegs, args)
    configs = {n: archive_config(model_store / f"{n}.mar") for n in args.models}
    payload: dict[str, Any] = {
        "machine": info,
        "load_average_at_end": os.getloadavg(),
        "settings": {**vars(args), "concurrent_clients": CONCURRENT_CLIENTS, "batch": BATCH},
        "archive_configs": configs,
        "built": built,
        "in_process": local,
        "service": service,
        **groups,
        "failures": failures[:50],
        "targets": targets(args.models, local, groups, configs),
    }
    for row in payload["targets"]:
        print(row, flush=True)
    for path in write_results("serve_cpu", payload, markdown(payload)):
        print(path)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
