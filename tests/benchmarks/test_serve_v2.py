"""The serving benchmark's v2 rows (benchmarks.serve_v2) on the real v2 server, from .venv-v2: the request is
tritonclient's default one byte for byte, every net answers it, a refused request is counted (not raised), and
the targets row judges the v2 route only where it was measured."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest

from benchmarks.serve_report import V2_TARGET_MS, target_row
from benchmarks.serve_rest import HttpClient, sequential
from benchmarks.serve_v2 import binary_request, v2_server, v2_variants
from benchmarks.serve_variant import run_variants
from serving.v2.process import V2_PYTHON, V2_STAMP
from tests.conftest import committed_models

needs_v2 = pytest.mark.skipif(not V2_STAMP.exists(), reason="`make install-v2` has not built .venv-v2")

TRITON_BODY = """
import sys, numpy as np, tritonclient.http as h
jpeg = open(sys.argv[1], "rb").read()
inp = h.InferInput("image", [1], "BYTES")
inp.set_data_from_numpy(np.array([jpeg], dtype=object), binary_data=True)
body, json_size = h.InferenceServerClient.generate_request_body([inp])
sys.stdout.buffer.write(json_size.to_bytes(4, "little") + body)
"""


@needs_v2
def test_the_request_is_tritonclients_default(tmp_path: Path, cifar10_test_jpegs) -> None:
    [(_, jpeg)] = cifar10_test_jpegs(1)
    (tmp_path / "x.jpg").write_bytes(jpeg)
    out = subprocess.run([str(V2_PYTHON), "-c", TRITON_BODY, str(tmp_path / "x.jpg")], capture_output=True, check=True)
    json_size, triton_body = int.from_bytes(out.stdout[:4], "little"), out.stdout[4:]
    body, headers = binary_request(jpeg)
    assert body == triton_body
    assert headers["Inference-Header-Content-Length"] == str(json_size)


@needs_v2
def test_v2_rows_on_the_real_server(weights_artifacts: Path, cifar10_test_jpegs) -> None:
    """Two interleaved rounds of every net's sequential and concurrent rows: all answered, none failed; a request
    for a net not served is counted as failed with the server's words."""
    jpegs = [j for _, j in cifar10_test_jpegs(8)]
    models = committed_models()
    args = argparse.Namespace(requests=16, rounds=2, warmup=1, time_cap=30.0)
    with v2_server(weights_artifacts) as address:
        variants = v2_variants(address, models, jpegs, args)
        run_variants(variants, args.rounds)
        refused = sequential(HttpClient(address.rest_port), "/v2/models/resnet/infer", [binary_request(jpegs[0])],
                             2, 0, 10.0)  # fmt: skip
    rows = {(v.group, v.fields["model"]): v.summary() for v in variants}
    assert set(rows) == {(g, m) for g in ("v2_sequential", "v2_concurrent") for m in models}
    for row in rows.values():
        assert row["failed"] == 0 and row["p50_ms"] > 0, row
        assert row["n"] == 16, row  # sequential: 8 a round; concurrent: 8 clients x 1 a round
    # two FP32 outputs of 10 in binary (80 bytes) after the JSON header that names them
    assert all(rows[("v2_sequential", m)]["response_bytes"] > 80 + len('"outputs"') for m in models)
    assert all(rows[("v2_concurrent", m)]["req_s"] > 0 for m in models)
    assert len(refused["failures"]) == 2 and "HTTP 404" in refused["failures"][0], refused
    assert "resnet" in refused["failures"][0]


def _groups(v2: bool) -> dict[str, list[dict]]:
    """One net's summary rows, as benchmarks.serve makes them, with or without the v2 rows."""
    groups = {
        "in_process": [{"model": "m", "runtime": "onnxruntime", "threads": 1, "p50_ms": 2.0, "b64_img_s": 100.0}],
        "service": [],
        "rest_sequential": [{"model": "m", "p50_ms": 4.0, "failed": 0}],
        "rest_concurrent": [{"model": "m", "req_s": 80.0, "failed": 0}],
        "rest_feature_maps": [{"model": "m", "layer": "a", "p50_ms": 5.0, "failed": 0}],
    }
    if v2:
        groups["v2_sequential"] = [{"model": "m", "p50_ms": 2.0 + V2_TARGET_MS + 0.5, "failed": 0}]
        groups["v2_concurrent"] = [{"model": "m", "req_s": 90.0, "failed": 1}]
    return groups


def test_the_targets_judge_v2_only_where_it_ran() -> None:
    without = target_row("m", _groups(False), {})
    assert "v2_pass" not in without and without["all_pass"]
    with_v2 = target_row("m", _groups(True), {})
    assert with_v2["v2_added_ms"] == pytest.approx(V2_TARGET_MS + 0.5)
    assert with_v2["v2_pass"] == "FAIL" and with_v2["v2_8c_req_s"] == 90.0
    assert with_v2["failed"] == 1 and not with_v2["all_pass"]
    groups = _groups(True)
    groups["v2_sequential"][0]["p50_ms"] = 2.0 + V2_TARGET_MS
    groups["v2_concurrent"][0]["failed"] = 0
    assert target_row("m", groups, {})["v2_pass"] == "pass" and target_row("m", groups, {})["all_pass"]
