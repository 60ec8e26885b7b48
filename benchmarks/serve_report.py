"""The serving benchmark's verdict and report: the issue's targets per net, and the Markdown of serve_cpu.md.

Targets are judged only by ratios and differences of medians from one run (so a slower machine or a busier
moment moves both sides alike): REST p50 at most 3 ms above in-process ONNX Runtime p50; feature-map p50 at most
3 ms above the prediction p50, for every layer; 8 clients reach 70 % of in-process batch-64 throughput; the v2
server's p50 at most 1.5 ms above in-process ONNX Runtime p50 (issue 20); no failed request.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from benchmarks.common import describe_machine, markdown_table
from benchmarks.serve_inprocess import BATCH
from benchmarks.serve_rest import CONCURRENT_CLIENTS

TARGET_P50_OVERHEAD_MS = 3.0
TARGET_FEATURE_OVERHEAD_MS = 3.0
TARGET_THROUGHPUT_RATIO = 0.7
# Issue 20: the v2 route's p50 at most this much above in-process ONNX Runtime's.
V2_TARGET_MS = 1.5

LATENCY_COLUMNS = ["model", "runtime", "threads", "n", "p50_ms", "p50_spread_ms", "p95_ms", "p99_ms"]
SEQUENTIAL_COLUMNS = ["model", "n", "p50_ms", "p50_spread_ms", "p95_ms", "p99_ms", "ts_mean_ms", "ts_queue_ms",
                      "failed", "response_bytes"]  # fmt: skip
CONCURRENT_COLUMNS = ["model", "clients", "n", "req_s", "p50_ms", "p95_ms", "failed"]
FEATURE_COLUMNS = ["model", "layer", "shape", "n", "p50_ms", "p50_spread_ms", "p95_ms", "ts_mean_ms", "failed",
                   "response_bytes"]  # fmt: skip
TARGET_COLUMNS = ["model", "ort_p50_ms", "rest_p50_ms", "overhead_ms", "latency_pass", "worst_layer",
                  "feature_over_prediction_ms", "feature_pass", "ort_b64_img_s", "rest_8c_req_s", "ratio",
                  "throughput_pass", "v2_p50_ms", "v2_added_ms", "v2_pass", "v2_8c_req_s", "failed",
                  "failed_pass"]  # fmt: skip
V2_SEQUENTIAL_COLUMNS = ["model", "n", "p50_ms", "p50_spread_ms", "p95_ms", "p99_ms", "failed", "response_bytes"]


def _row(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    return next(r for r in rows if all(r.get(k) == v for k, v in match.items()))


def _verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def targets(
    names: Sequence[str], groups: dict[str, list[dict[str, Any]]], configs: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Pass/fail per net against the issue's targets (the archive's backend is shown: the targets compare REST
    with in-process ONNX Runtime)."""
    return [target_row(name, groups, configs.get(name, {})) for name in names]


def target_row(name: str, groups: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """One net's row of the targets table, from the summary rows of every group."""
    ort = _row(groups["in_process"], model=name, runtime="onnxruntime", threads=1)
    seq = _row(groups["rest_sequential"], model=name)
    conc = _row(groups["rest_concurrent"], model=name)
    features = [r for r in groups["rest_feature_maps"] if r["model"] == name]
    failed = sum(r.get("failed", 0) for g in groups.values() for r in g if r["model"] == name)
    v2 = v2_row(name, groups, ort["p50_ms"])
    overhead = float(seq["p50_ms"] - ort["p50_ms"])
    feature_overhead = max(float(r["p50_ms"] - seq["p50_ms"]) for r in features)
    ratio = conc["req_s"] / ort["b64_img_s"]
    latency_ok = bool(overhead <= TARGET_P50_OVERHEAD_MS)
    feature_ok = bool(feature_overhead <= TARGET_FEATURE_OVERHEAD_MS)
    tput_ok = bool(ratio >= TARGET_THROUGHPUT_RATIO)
    return {
        "model": name,
        "rest_backend": (config.get("handler") or {}).get("backend", "?"),
        "ort_p50_ms": ort["p50_ms"],
        "rest_p50_ms": seq["p50_ms"],
        "overhead_ms": round(overhead, 3),
        "latency_pass": _verdict(latency_ok),
        "worst_layer": max(features, key=lambda r: r["p50_ms"])["layer"],
        "feature_over_prediction_ms": round(feature_overhead, 3),
        "feature_pass": _verdict(feature_ok),
        "ort_b64_img_s": ort["b64_img_s"],
        "rest_8c_req_s": conc["req_s"],
        "ratio": round(ratio, 3),
        "throughput_pass": _verdict(tput_ok),
        **v2,
        "failed": failed,
        "failed_pass": _verdict(failed == 0),
        "all_pass": latency_ok and feature_ok and tput_ok and v2.get("v2_pass", "pass") == "pass" and failed == 0,
    }


def v2_row(name: str, groups: dict[str, list[dict[str, Any]]], ort_p50_ms: float) -> dict[str, Any]:
    """The v2 server's part of one net's targets row; {} from a run without it (`--no-v2`)."""
    seq = [r for r in groups.get("v2_sequential", []) if r["model"] == name]
    conc = [r for r in groups.get("v2_concurrent", []) if r["model"] == name]
    if not seq:
        return {}
    added = round(float(seq[0]["p50_ms"] - ort_p50_ms), 3)
    return {
        "v2_p50_ms": seq[0]["p50_ms"],
        "v2_added_ms": added,
        "v2_pass": _verdict(added <= V2_TARGET_MS),
        "v2_8c_req_s": conc[0]["req_s"] if conc else None,
    }


def markdown(payload: dict[str, Any]) -> str:
    """serve_cpu.md after its machine line: the settings, one table per group, and the targets."""
    parts = [
        "## Settings\n",
        settings_text(payload),
        "## In process, batch 1 latency (ms)\n",
        markdown_table(payload["in_process"] + payload["service"], LATENCY_COLUMNS),
        f"\n## In process, batch {BATCH} throughput (images/s)\n",
        markdown_table(payload["in_process"], ["model", "runtime", "threads", "b64_img_s"]),
        "\n## REST, 1 sequential client, batch 1 (ms)\n",
        markdown_table(payload["rest_sequential"], SEQUENTIAL_COLUMNS),
        f"\n## REST, {CONCURRENT_CLIENTS} concurrent clients\n",
        markdown_table(payload["rest_concurrent"], CONCURRENT_COLUMNS),
        "\n## REST, feature maps of every layer, 1 sequential client (ms)\n",
        markdown_table(payload["rest_feature_maps"], FEATURE_COLUMNS),
        *v2_tables(payload),
        "\n## Targets\n",
        f"REST p50 at most {TARGET_P50_OVERHEAD_MS:g} ms above in-process ONNX Runtime p50 (1 thread); feature-map "
        f"p50 at most {TARGET_FEATURE_OVERHEAD_MS:g} ms above the prediction p50, for every layer (the worst layer "
        f"shown); {CONCURRENT_CLIENTS} clients reach at least {TARGET_THROUGHPUT_RATIO:.0%} of in-process ONNX "
        f"Runtime batch-{BATCH} throughput (1 thread); the v2 server's p50 at most {V2_TARGET_MS:g} ms above in-process "
        "ONNX Runtime p50; no failed request.\n",
        markdown_table(payload["targets"], TARGET_COLUMNS),
    ]
    if payload["settings"]["quick"]:
        parts.insert(0, "**Quick validation run (`--quick`): too few requests for meaningful percentiles.**\n")
    return "\n".join(parts)


def v2_tables(payload: dict[str, Any]) -> list[str]:
    """The v2 server's two tables; none from a run without it."""
    if not payload.get("v2_sequential"):
        return []
    return [
        "\n## v2 (Open Inference Protocol), 1 sequential client, batch 1 (ms)\n",
        markdown_table(payload["v2_sequential"], V2_SEQUENTIAL_COLUMNS),
        f"\n## v2 (Open Inference Protocol), {CONCURRENT_CLIENTS} concurrent clients\n",
        markdown_table(payload["v2_concurrent"], CONCURRENT_COLUMNS),
    ]


def settings_text(payload: dict[str, Any]) -> str:
    """How the run was made: rounds, machine, and what each group measured with."""
    s, m = payload["settings"], payload["machine"]
    busiest = "; ".join(
        f"{when}: " + (", ".join(f"{p['name']} {p['cpu_percent']:.0f} %" for p in m[key]["busiest"]) or "none")
        for when, key in (("start", "at_start"), ("end", "at_end"))
        if key in m
    )
    return (
        f"{s['rounds']} rounds; in each, every variant below runs once. Rounds go in pairs, the second running the "
        "first's order backwards, and each pair starts at another place in the list (`benchmarks.rounds`), so a "
        "burst of other work hits all variants alike. Every figure is the median of the per-round figures; "
        "`p50_spread_ms` is the largest minus the smallest per-round p50 (how much the machine moved under the "
        "run). Targets compare medians of this one run only.\n\n"
        f"Machine: {describe_machine(m)}. Busiest other processes (% of one core) at {busiest}.\n\n"
        + in_process_text(s)
        + rest_text(payload)
        + v2_text(payload)
    )


def in_process_text(s: dict[str, Any]) -> str:
    """What the in-process rows measured."""
    return (
        f"In process: batch-1 latency over {s['iters']} calls in all (after {s['warmup']} warm-up calls) on "
        f"preprocessed CIFAR-10 test images; batch-{BATCH} throughput over about {s['batches']} batches in all. Thread "
        "counts as listed (`torch.set_num_threads`, ONNX Runtime intra-op threads; inter-op 1). Eager is the "
        "checkpoint's net (logits only); TorchScript and ONNX Runtime run the exported FeatureModel through "
        "`cifarlens_runtime.predictor.Predictor`, asking for the logits. The service row is the handler's code "
        "(`cifarlens_runtime.service.handle_batch`: JPEG decode, preprocessing, ONNX Runtime, JSON) without "
        "TorchServe.\n\n"
    )


def rest_text(payload: dict[str, Any]) -> str:
    """What the REST and feature-map rows measured, with the archives' settings."""
    s = payload["settings"]
    return (
        f"REST: one TorchServe on 127.0.0.1 (token auth on, `OMP_NUM_THREADS=1`) with the archives of "
        f"`{s['model_store']}`; per-model settings from the archives: {json.dumps(payload['archive_configs'])}. "
        f"Clients are Python threads with one keep-alive `http.client` connection each, on the same machine "
        f"(they share its cores with the server), sending real JPEG test images (`image/jpeg`). Sequential: "
        f"{s['requests']} requests in all, 1 client. Concurrent: {CONCURRENT_CLIENTS} clients sharing "
        f"{s['requests']} requests in all; req/s over the time from the common start to the last client's end. "
        f"Feature maps: every layer, 1 client, 1/{s['feature_share']} as many requests. `ts_mean_ms` and "
        "`ts_queue_ms` are TorchServe's own mean time per request and in its queue (Prometheus counters): client "
        f"p50 minus those is HTTP and the client. Every loop stops early after {s['time_cap']} s. Failed = any "
        "answer other than 200 or a connection error.\n"
    )


def v2_text(payload: dict[str, Any]) -> str:
    """What the v2 rows measured; nothing from a run without them."""
    if not payload.get("v2_sequential"):
        return ""
    return (
        "\nv2: the Open Inference Protocol server (`serving/v2`, KServe's SDK, in .venv-v2, 1 ONNX Runtime thread) on "
        f"`{payload['settings']['artifacts']}`, REST on a free loopback port, no auth; the same clients and request "
        "counts as the REST rows, each request what tritonclient sends by default (the JPEG as one BYTES element "
        "in binary tensor data, binary outputs asked for), to `/v2/models/<net>/infer`.\n"
    )
