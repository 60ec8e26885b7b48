"""Integration against a real TorchServe (the session `torchserve` fixture): REST answers, feature maps, errors."""

from __future__ import annotations

import http.client
import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from cifarlens_runtime.constants import ARCHIVE_VERSION, FEATURE_ROUTE, MAX_IMAGE_BYTES, METADATA_FILE
from cifarlens_runtime.responses import decode_activations
from training.models import list_models

MODELS = list_models()
TIMEOUT = 60
N_IMAGES = 16


def post(server, path: str, data: bytes | None, content_type: str = "image/jpeg", auth: bool = True):
    headers = {"Content-Type": content_type, **(server.headers("inference") if auth else {})}
    return requests.post(f"{server.inference_url}/predictions/{path}", data=data, headers=headers, timeout=TIMEOUT)


def feature_path(model: str, layer: str | None = None) -> str:
    return f"{model}/{ARCHIVE_VERSION}/{FEATURE_ROUTE}" + (f"/{layer}" if layer else "")


def max_response_size(server) -> int:
    text = (server.workdir / "config.properties").read_text()
    return int(re.search(r"^max_response_size=(\d+)", text, re.M).group(1))


@pytest.mark.parametrize("model", MODELS)
def test_predictions_match_in_process_onnxruntime(torchserve, serving_artifacts: Path, cifar10_test_jpegs, model: str):
    """16 real test images, sent concurrently (so dynamic batching mixes them), each answered on its own."""
    from cifarlens_runtime.predictor import Predictor
    from cifarlens_runtime.preprocess import preprocess

    images = cifar10_test_jpegs(N_IMAGES)
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda item: post(torchserve, model, item[1]), images))
    local = Predictor(serving_artifacts / model).predict(np.stack([preprocess(jpeg) for _, jpeg in images]))
    for resp, probs in zip(responses, local, strict=True):
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["model"] == model and body["backend"] == "onnxruntime"
        top = body["predictions"]
        assert len(top) == 5
        assert top[0]["index"] == int(probs.argmax())
        for p in top:
            assert p["probability"] == pytest.approx(float(probs[p["index"]]), abs=1e-5)


@pytest.mark.parametrize("model", MODELS)
def test_feature_maps_of_every_layer(torchserve, serving_artifacts: Path, model: str) -> None:
    meta = json.loads((serving_artifacts / model / METADATA_FILE).read_text())
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(buf, "PNG")
    limit = max_response_size(torchserve)
    listing = post(torchserve, feature_path(model), None, content_type="application/octet-stream")
    assert listing.status_code == 200, listing.text
    assert listing.json()["layers"] == [{"name": d["name"], "shape": d["shape"]} for d in meta["feature_layers"]]
    sizes = {}
    for layer in meta["feature_layers"]:
        resp = post(torchserve, feature_path(model, layer["name"]), buf.getvalue(), content_type="image/png")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["layer"] == layer["name"] and body["shape"] == layer["shape"]
        assert set(body) == {"model", "backend", "layer", "shape", "dtype", "activations", "predictions"}
        assert decode_activations(body).shape == tuple(layer["shape"])
        sizes[layer["name"]] = len(resp.content)
        assert len(resp.content) < limit, f"{layer['name']}: {len(resp.content)} bytes over max_response_size {limit}"
    print(f"{model}: largest feature response {max(sizes.values())} bytes ({max(sizes, key=sizes.get)})")


def test_layer_as_form_field(torchserve) -> None:
    """The other way to name the layer: a multipart form with the image and a `layer` field."""
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 200, 30)).save(buf, "PNG")
    url = f"{torchserve.inference_url}/predictions/{feature_path('se_net')}"
    files = {"data": ("x.png", buf.getvalue(), "image/png")}
    resp = requests.post(url, files=files, data={"layer": "se2"}, headers=torchserve.headers(), timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    assert resp.json()["layer"] == "se2"


def test_query_string_does_not_reach_the_handler(torchserve) -> None:
    """Documents TorchServe 0.12: the query is dropped from url_path, so `?layer=` yields the listing."""
    url = f"{torchserve.inference_url}/predictions/{feature_path('se_net')}?layer=se2"
    headers = {"Content-Type": "application/octet-stream", **torchserve.headers()}
    resp = requests.post(url, data=b"", headers=headers, timeout=TIMEOUT)
    assert resp.status_code == 200 and "layers" in resp.json()


def _big_png() -> bytes:
    side = int((MAX_IMAGE_BYTES / 3) ** 0.5) + 64
    noise = np.random.default_rng(1).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="PNG", compress_level=0)
    return buf.getvalue()


BAD = {
    "not_an_image": ("se_net", b"definitely not an image", "image/jpeg", 400),
    "empty_body": ("se_net", b"", "image/jpeg", 400),
    "over_10_mb": ("se_net", None, "image/png", 413),  # body built lazily
    "unknown_layer": (feature_path("se_net", "nope"), None, "image/png", 404),
    "unknown_model": ("no_such_model", None, "image/png", 404),
    "unknown_version": (feature_path("se_net").replace(ARCHIVE_VERSION, "9.9"), None, "image/png", 404),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_then_good(torchserve, case: str) -> None:
    good = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(good, "PNG")
    path, body, ctype, code = BAD[case]
    if body is None:
        body = _big_png() if case == "over_10_mb" else good.getvalue()
    resp = post(torchserve, path, body, content_type=ctype)
    assert resp.status_code == code, resp.text
    payload = resp.json()
    assert payload["code"] == code
    assert payload.get("error") or payload.get("message")  # ours, or TorchServe's own for an unknown model
    after = post(torchserve, "se_net", good.getvalue(), content_type="image/png")
    assert after.status_code == 200, after.text


def _post_raw(server, path: str, size: int) -> tuple[int, bytes]:
    """POST `size` zero bytes and return the answer's status and body, also when the server answers before
    reading the whole body and stops reading (the upload then breaks off; the answer is still read).
    No answer at all raises, and fails the test."""
    conn = http.client.HTTPConnection("127.0.0.1", server.ports.inference, timeout=TIMEOUT)
    try:
        conn.putrequest("POST", f"/predictions/{path}")
        for key, value in {"Content-Type": "image/jpeg", "Content-Length": str(size), **server.headers()}.items():
            conn.putheader(key, value)
        conn.endheaders()
        chunk = b"\0" * (1 << 16)
        try:
            for start in range(0, size, len(chunk)):
                conn.send(chunk[: min(len(chunk), size - start)])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: its answer may already be waiting
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_body_over_torchserve_request_limit(torchserve) -> None:
    """Beyond max_request_size TorchServe answers itself (413), before the handler; the worker is untouched.

    A server that never answers (a dropped connection, a timeout) fails the test: the client must be told."""
    text = (torchserve.workdir / "config.properties").read_text()
    limit = int(re.search(r"^max_request_size=(\d+)", text, re.M).group(1))
    status, body = _post_raw(torchserve, "se_net", limit + 1024)
    assert status == 413, body[:300]
    good = io.BytesIO()
    Image.new("RGB", (32, 32)).save(good, "PNG")
    assert post(torchserve, "se_net", good.getvalue(), content_type="image/png").status_code == 200


def test_mixed_concurrent_requests(torchserve) -> None:
    """Good and bad requests at once: dynamic batching groups them, each gets its own status."""
    good = io.BytesIO()
    Image.new("L", (100, 80), 90).save(good, "JPEG")
    bodies = [good.getvalue(), b"garbage", good.getvalue(), b""] * 4
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda b: post(torchserve, "plain_cnn", b).status_code, bodies))
    assert codes == [200, 400, 200, 400] * 4


def test_token_auth_is_on(torchserve) -> None:
    """A valid image without the key, or with a wrong one, is refused for want of a token; with the key it is answered."""
    good = io.BytesIO()
    Image.new("RGB", (32, 32), (30, 90, 200)).save(good, "PNG")
    with_key = post(torchserve, "se_net", good.getvalue(), content_type="image/png")
    assert with_key.status_code == 200, with_key.text
    url = f"{torchserve.inference_url}/predictions/se_net"
    for headers in ({}, {"Authorization": "Bearer not-the-key"}):
        resp = requests.post(
            url, data=good.getvalue(), headers={"Content-Type": "image/png", **headers}, timeout=TIMEOUT
        )
        assert resp.status_code in (400, 401), resp.text
        assert "token" in resp.text.lower(), resp.text  # TorchServe's auth error, not the handler's
        assert "predictions" not in resp.text
    assert torchserve.key_file.is_file()


def test_metrics_prometheus(torchserve) -> None:
    resp = requests.get(f"{torchserve.metrics_url}/metrics", timeout=TIMEOUT)
    assert resp.status_code == 200 and "ts_inference_requests_total" in resp.text


def test_models_registered_with_settings(torchserve) -> None:
    import yaml

    from serving.archive import MODEL_CONFIG

    settings = yaml.safe_load(MODEL_CONFIG.read_text())
    headers = torchserve.headers("management")
    for model in MODELS:
        resp = requests.get(f"{torchserve.management_url}/models/{model}", headers=headers, timeout=TIMEOUT)
        assert resp.status_code == 200, resp.text
        info = resp.json()[0]
        assert info["modelVersion"] == ARCHIVE_VERSION
        assert info["batchSize"] == settings["batchSize"] and info["maxBatchDelay"] == settings["maxBatchDelay"]
        assert info["minWorkers"] == info["maxWorkers"] == 1


def test_server_stopped_when_a_test_fails(torchserve, serving_model_store: Path, tmp_path: Path) -> None:
    """A failing test inside a session that started TorchServe: the fixture still stops it (and its workers).

    The inner server runs beside this session's one (own ports, TEMP and workdir); stopping it leaves ours up.
    """
    import os
    import subprocess
    import sys
    import time

    from serving.server import _alive

    repo = Path(__file__).resolve().parents[2]
    record = tmp_path / "server.txt"
    inner = tmp_path / "test_inner_failure.py"
    inner.write_text(
        "from pathlib import Path\n\n\n"
        "def test_fails(torchserve):\n"
        f"    Path({str(record)!r}).write_text(str(torchserve.pid))\n"
        "    raise AssertionError('deliberate failure')\n"
    )
    env = {**os.environ, "CIFARLENS_TEST_MODEL_STORE": str(serving_model_store)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider", str(inner)]
    cmd += ["--rootdir", str(tmp_path), "-c", os.devnull]
    result = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 1 and "deliberate failure" in result.stdout, result.stdout + result.stderr
    pid = int(record.read_text())
    assert not _alive(pid), f"TorchServe launcher {pid} still running"
    # The kernel may take a moment to reap the last exiting worker: allow a few seconds, no more.
    deadline = time.monotonic() + 10
    while True:
        leftovers = subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True).stdout.split()
        if not leftovers or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not leftovers, f"processes of the server's group still running: {leftovers}"
    from serving.server import ping

    assert ping(torchserve), "the session's server went down with the inner one"


# --- class activation maps through TorchServe's explanations API ---


def explain(server, path: str, data: bytes | None = None, fields: dict | None = None, auth: bool = True):
    """POST to /explanations/<path>: the image as the body, or with `fields` as a multipart form."""
    headers = server.headers("inference") if auth else {}
    url = f"{server.inference_url}/explanations/{path}"
    if fields is not None:
        files = {"data": ("image.jpg", data, "image/jpeg")}
        return requests.post(url, files=files, data=fields, headers=headers, timeout=TIMEOUT)
    return requests.post(url, data=data, headers={"Content-Type": "image/jpeg", **headers}, timeout=TIMEOUT)


@pytest.mark.parametrize("model", MODELS)
def test_explanations_match_in_process(torchserve, serving_artifacts: Path, cifar10_test_jpegs, model: str) -> None:
    """Real test images sent concurrently to /explanations/<model>: each answer is the in-process map
    (Grad-CAM of the top-1 class at the default layer), at the layer's size and upsampled to 32x32."""
    from cifarlens_runtime.predictor import Predictor
    from cifarlens_runtime.preprocess import preprocess

    images = cifar10_test_jpegs(8)
    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(lambda item: explain(torchserve, model, item[1]), images))
    predictor = Predictor(serving_artifacts / model)
    probs, cams, chosen = predictor.cam(np.stack([preprocess(jpeg) for _, jpeg in images]))
    for i, (resp, cam, index) in enumerate(zip(responses, cams, chosen, strict=True)):
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert (body["model"], body["layer"], body["method"]) == (model, predictor.cam_layer, predictor.cam_method)
        assert body["index"] == int(index) and body["shape"] == list(cam.shape)
        assert_same_map(np.asarray(body["cam"]), cam)
        with pytest.raises(AssertionError):  # the check tells another image's map apart
            assert_same_map(np.asarray(body["cam"]), cams[(i + 1) % len(cams)])
        assert np.asarray(body["cam_upsampled"]).shape == (32, 32)


def assert_same_map(served: np.ndarray, expected: np.ndarray) -> None:
    """Equal to float noise, but for a few cells: the server batches concurrent requests as they come, and the
    CPU kernels sum in a batch-size-dependent order, so a unit sitting on a ReLU's edge can switch and move a
    cell or two (on an Intel Xeon with AVX-512, one run in three: 2 of InceptionNet's 64 cells off by 0.006).
    Another layer, class or method differs in most cells, by far more."""
    assert served.shape == expected.shape
    close = np.isclose(served, expected, rtol=0, atol=2e-4)
    assert close.mean() >= 0.95 and np.abs(served - expected).max() < 0.02, (
        f"{(~close).sum()} of {close.size} cells differ, by up to {np.abs(served - expected).max():.4f}"
    )


def test_explanations_versioned_path_and_form_fields(torchserve, cifar10_test_jpegs) -> None:
    """The layer and class in the versioned path, or as form fields with the method; the query string never
    reaches the handler in TorchServe 0.12, so it is not a way in."""
    _, jpeg = cifar10_test_jpegs(1)[0]
    cases = [
        (f"se_net/{ARCHIVE_VERSION}", None, ("se4", None, "layercam")),  # se_net's default map
        (f"se_net/{ARCHIVE_VERSION}/se2", None, ("se2", None, "layercam")),
        (f"se_net/{ARCHIVE_VERSION}/se3/cat", None, ("se3", "cat", "layercam")),
        ("se_net", {"layer": "se5", "class": "1", "method": "gradcam"}, ("se5", "automobile", "gradcam")),
        ("se_net", {"method": "eigencam"}, ("se4", None, "eigencam")),
    ]
    for path, fields, (layer, cls, method) in cases:
        resp = explain(torchserve, path, jpeg, fields)
        assert resp.status_code == 200, (path, fields, resp.text)
        body = resp.json()
        assert (body["layer"], body["method"]) == (layer, method)
        if cls:
            assert body["class"] == cls


@pytest.mark.parametrize(
    ("path", "fields", "body", "code", "words"),
    [
        ("se_net", None, b"not an image", 400, "not a readable image"),
        ("se_net", {"class": "kat"}, None, 400, "unknown class 'kat'"),
        (f"se_net/{ARCHIVE_VERSION}/nope", None, None, 404, "unknown layer 'nope'"),
        ("se_net", {"method": "lime"}, None, 400, "unknown method 'lime'"),
        ("se_net", {"method": "eigencam", "class": "cat"}, None, 400, "same map for every class"),
    ],
)
def test_explanations_bad_input_then_good(torchserve, path, fields, body, code, words) -> None:
    good = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(good, "JPEG")
    resp = explain(torchserve, path, body if body is not None else good.getvalue(), fields)
    assert resp.status_code == code, resp.text
    assert resp.json()["code"] == code and words in resp.json()["error"]
    assert explain(torchserve, "se_net", good.getvalue()).status_code == 200


def test_explanations_need_the_token(torchserve) -> None:
    good = io.BytesIO()
    Image.new("RGB", (32, 32), (30, 90, 200)).save(good, "PNG")
    resp = explain(torchserve, "se_net", good.getvalue(), auth=False)
    assert resp.status_code in (400, 401) and "token" in resp.text.lower(), resp.text
