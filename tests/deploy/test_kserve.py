"""KServe's Open Inference Protocol (v2) on the cifarlens archives, with deploy/kserve/config.properties.

TorchServe is started the way KServe's TorchServe runtime starts it (`torchserve --start --model-store=...
--ts-config=...`, TS_SERVICE_ENVELOPE=kservev2 in the environment), on free ports, and answers real v2 `infer`
requests: on its own /v2/models/<model>/infer route and on /predictions/<model>, the route KServe's wrapper
forwards to. KServe's wrapper itself (the kserve Python package, port 8080) is not run here. The in-process
tests run TorchServe's real KServev2Envelope around the real handler.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from cifarlens_runtime.constants import CLASSES

REPO = Path(__file__).resolve().parents[2]
KSERVE_DIR = REPO / "deploy" / "kserve"
CONFIG = KSERVE_DIR / "config.properties"
MANIFEST = KSERVE_DIR / "inferenceservice.yaml"


def read_properties(path: Path) -> dict[str, str]:
    """key=value lines of a Java properties file, as TorchServe and KServe's wrapper read them."""
    props = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            props[key.strip()] = value.strip()
    return props


def v2_bytes_request(images: list[bytes], names: list[str] | None = None) -> dict[str, Any]:
    """An Open Inference Protocol request with one BYTES input (one base64 image) per image."""
    names = names or [f"image-{i}" for i in range(len(images))]
    return {
        "id": "cifarlens-test",
        "inputs": [
            {"name": n, "shape": [1], "datatype": "BYTES", "data": [base64.b64encode(img).decode("ascii")]}
            for n, img in zip(names, images, strict=True)
        ],
    }


def v2_uint8_request(pixels: np.ndarray) -> dict[str, Any]:
    """An Open Inference Protocol request with one UINT8 input: an RGB image (H, W, 3), data flattened."""
    return {
        "inputs": [
            {"name": "pixels", "shape": list(pixels.shape), "datatype": "UINT8", "data": pixels.ravel().tolist()}
        ]
    }


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG")
    return buf.getvalue()


@functools.cache
def _predictor(model_dir: Path) -> Any:
    from cifarlens_runtime.predictor import Predictor

    return Predictor(model_dir)


def expected(artifacts: Path, model: str, image: bytes) -> dict[str, Any]:
    """What the REST service answers for `image`, computed in process (cifarlens_runtime.service over ONNX Runtime)."""
    from cifarlens_runtime.service import Request, handle_batch

    [reply] = handle_batch(_predictor(artifacts / model), [Request(body=image)])
    assert reply.status == 200
    return json.loads(reply.body)


def assert_same_prediction(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["model"] == want["model"]
    assert [p["class"] for p in got["predictions"]] == [p["class"] for p in want["predictions"]]
    np.testing.assert_allclose(
        [p["probability"] for p in got["predictions"]], [p["probability"] for p in want["predictions"]], atol=1e-6
    )


# --- the files KServe reads ---


def test_config_is_what_kserve_needs() -> None:
    from training.models import list_models

    props = read_properties(CONFIG)
    assert props["service_envelope"] == "kservev2"
    assert props["enable_envvars_config"] == "true"  # KServe sets TS_SERVICE_ENVELOPE from protocolVersion
    assert props["inference_address"].endswith(":8085") and props["management_address"].endswith(":8085")
    assert props["model_store"] == "/mnt/models/model-store"
    snapshot = json.loads(props["model_snapshot"])
    assert list(snapshot["models"]) == list_models()  # the wrapper serves exactly these names
    for name, versions in snapshot["models"].items():
        [entry] = versions.values()
        assert entry["marName"] == f"{name}.mar"
        assert entry["batchSize"] == 1  # the kservev2 envelope reads one request per batch


def test_inference_service_manifest() -> None:
    isvc = yaml.safe_load(MANIFEST.read_text())
    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    model = isvc["spec"]["predictor"]["model"]
    assert model["modelFormat"]["name"] == "pytorch"
    assert model["protocolVersion"] == "v2"
    assert model["storageUri"]


# --- TorchServe's KServev2Envelope around the handler, in process ---


class StubContext:
    """The parts of ts.context.Context that the handler and the kservev2 envelope use."""

    def __init__(self, model_dir: Path, model: str) -> None:
        self.system_properties = {"model_dir": str(model_dir), "batch_size": 1, "gpu_id": None}
        self.model_yaml_config = {"handler": {"backend": "onnxruntime", "threads": 1}}
        self.manifest = {"model": {"modelName": model, "modelVersion": "1.0"}}
        self.status: dict[int, int] = {}

    def get_request_id(self, idx: int = 0) -> str:
        return f"request-{idx}"

    def get_request_header(self, idx: int, key: str) -> str | None:
        return None

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        self.status[idx] = code

    def set_response_content_type(self, idx: int, value: str) -> None:
        pass


@pytest.fixture(scope="module")
def enveloped(serving_artifacts: Path):
    """A function (v2 request) -> (status, v2 response), through KServev2Envelope(handler.handle)."""
    from ts.torch_handler.request_envelope.kservev2 import KServev2Envelope

    from serving.handler import CifarLensHandler

    ctx = StubContext(serving_artifacts / "plain_cnn", "plain_cnn")
    handler = CifarLensHandler()
    handler.initialize(ctx)
    envelope = KServev2Envelope(handler.handle)

    def call(request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        ctx.status.clear()
        [response] = envelope.handle([{"body": json.dumps(request).encode()}], ctx)
        return ctx.status[0], json.loads(json.dumps(response))  # as TorchServe sends it

    return call


def test_envelope_bytes_inputs(enveloped, serving_artifacts: Path, cifar10_test_jpegs) -> None:
    images = cifar10_test_jpegs(2)
    status, response = enveloped(v2_bytes_request([img for _, img in images], ["first", "second"]))
    assert status == 200
    assert response["id"] == "cifarlens-test" and response["model_name"] == "plain_cnn"
    assert [o["name"] for o in response["outputs"]] == ["first", "second"]
    for out, (_, img) in zip(response["outputs"], images, strict=True):
        assert (out["datatype"], out["shape"]) == ("BYTES", [1])
        assert_same_prediction(json.loads(out["data"][0]), expected(serving_artifacts, "plain_cnn", img))


def test_envelope_uint8_input(enveloped, serving_artifacts: Path, cifar10_test_jpegs) -> None:
    [(_, jpeg)] = cifar10_test_jpegs(1)
    pixels = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    status, response = enveloped(v2_uint8_request(pixels))
    assert status == 200
    [out] = response["outputs"]
    assert out["name"] == "pixels"
    assert_same_prediction(json.loads(out["data"][0]), expected(serving_artifacts, "plain_cnn", png(pixels)))


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        ({"name": "x", "shape": [1], "datatype": "BYTES", "data": ["not base64!"]}, "base64"),
        (
            {"name": "x", "shape": [1], "datatype": "BYTES", "data": [base64.b64encode(b"no image").decode()]},
            "not a readable image",
        ),
        ({"name": "x", "shape": [2, 2], "datatype": "UINT8", "data": [1, 2, 3, 4]}, "[H, W, 3]"),
        ({"name": "x", "shape": [1, 1, 3], "datatype": "FP32", "data": [0.1, 0.2, 0.3]}, "unsupported datatype"),
    ],
)
def test_envelope_rejects_bad_inputs(enveloped, cifar10_test_jpegs, tensor: dict, message: str) -> None:
    """A bad input answers 400 with its reason; a good input beside it still gets its prediction."""
    [(_, jpeg)] = cifar10_test_jpegs(1)
    request = v2_bytes_request([jpeg], ["good"])
    request["inputs"].append(tensor)
    status, response = enveloped(request)
    assert status == 400
    good, bad = (json.loads(o["data"][0]) for o in response["outputs"])
    assert len(good["predictions"]) == 5
    assert bad["code"] == 400 and message in bad["error"]


# --- the real TorchServe with deploy/kserve/config.properties ---


@pytest.fixture(scope="module")
def kserve_torchserve(serving_model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """TorchServe started as KServe's runtime starts it, on free ports; stopped at the end."""
    from serving.server import Ports, Server, free_ports, stop, wait_healthy

    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("TorchServe needs Java (java on PATH or JAVA_HOME)")
    workdir = tmp_path_factory.mktemp("kserve-torchserve")
    (workdir / "tmp").mkdir()
    port, metrics, grpc_inf, grpc_mgmt = free_ports(4)
    overrides = {
        "inference_address": f"http://127.0.0.1:{port}",
        "management_address": f"http://127.0.0.1:{port}",
        "metrics_address": f"http://127.0.0.1:{metrics}",
        "grpc_inference_port": str(grpc_inf),
        "grpc_management_port": str(grpc_mgmt),
        "model_store": str(serving_model_store),
    }
    lines = [
        line
        for line in CONFIG.read_text().splitlines()
        if line.lstrip().startswith("#") or line.split("=", 1)[0].strip() not in overrides
    ]
    config = workdir / "config.properties"
    config.write_text("\n".join([*lines, *(f"{k}={v}" for k, v in overrides.items())]) + "\n")
    env = {
        **os.environ,
        "TS_SERVICE_ENVELOPE": "kservev2",  # what KServe sets for protocolVersion: v2
        "TEMP": str(workdir / "tmp"),
        "TMPDIR": str(workdir / "tmp"),
        "LOG_LOCATION": str(workdir / "logs"),
        "METRICS_LOCATION": str(workdir / "logs"),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("PYTHONPATH", None)
    cmd = [
        str(Path(sys.executable).parent / "torchserve"),
        "--start", "--foreground",
        f"--model-store={serving_model_store}",
        f"--ts-config={config}",
    ]  # fmt: skip
    with open(workdir / "torchserve.out", "wb") as out:
        process = subprocess.Popen(
            cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    server = Server(workdir, Ports(port, port, metrics, grpc_inf, grpc_mgmt), process.pid, False, process, workdir)
    try:
        wait_healthy(server, models=list(json.loads(read_properties(CONFIG)["model_snapshot"])["models"]))
        yield server
    finally:
        stop(server)


def post_json(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


def test_models_ready_without_token_batch_size_one(kserve_torchserve) -> None:
    """What KServe's wrapper asks before serving: the management API on the same port, no token."""
    from training.models import list_models

    for name in list_models():
        [info] = get_json(f"{kserve_torchserve.management_url}/models/{name}?customized=false")
        assert any(w["status"] == "READY" for w in info["workers"])
        assert info["batchSize"] == 1  # model_snapshot wins over the archive's batchSize 8


@pytest.mark.parametrize("route", ["/v2/models/{model}/infer", "/predictions/{model}"])
def test_v2_infer_every_model(kserve_torchserve, serving_artifacts: Path, cifar10_test_jpegs, route: str) -> None:
    """A real image as a BYTES tensor; the v2 response names the model and holds its top-5 classes."""
    from training.models import list_models

    [(true_class, jpeg)] = cifar10_test_jpegs(1)
    for model in list_models():
        status, response = post_json(
            kserve_torchserve.inference_url + route.format(model=model), v2_bytes_request([jpeg])
        )
        assert status == 200, response
        assert (response["model_name"], response["model_version"], response["id"]) == (model, "1.0", "cifarlens-test")
        [out] = response["outputs"]
        assert (out["name"], out["datatype"], out["shape"]) == ("image-0", "BYTES", [1])
        answer = json.loads(out["data"][0])
        classes = [p["class"] for p in answer["predictions"]]
        assert len(set(classes)) == 5 and set(classes) <= set(CLASSES)
        assert_same_prediction(answer, expected(serving_artifacts, model, jpeg))
    print(f"v2 infer on {route}: a {true_class} JPEG -> {classes[0]} ({model}, untrained test nets)")


def test_v2_uint8_and_several_inputs(kserve_torchserve, serving_artifacts: Path, cifar10_test_jpegs) -> None:
    images = [img for _, img in cifar10_test_jpegs(3)]
    url = f"{kserve_torchserve.inference_url}/v2/models/se_net/infer"
    status, response = post_json(url, v2_bytes_request(images))
    assert status == 200
    assert [o["name"] for o in response["outputs"]] == ["image-0", "image-1", "image-2"]
    for out, img in zip(response["outputs"], images, strict=True):
        assert_same_prediction(json.loads(out["data"][0]), expected(serving_artifacts, "se_net", img))

    pixels = np.asarray(Image.open(io.BytesIO(images[0])).convert("RGB"))
    status, response = post_json(url, v2_uint8_request(pixels))
    assert status == 200
    assert_same_prediction(
        json.loads(response["outputs"][0]["data"][0]), expected(serving_artifacts, "se_net", png(pixels))
    )


def test_v2_bad_input_is_400(kserve_torchserve) -> None:
    bad = {"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": [base64.b64encode(b"text").decode()]}]}
    status, response = post_json(f"{kserve_torchserve.inference_url}/v2/models/plain_cnn/infer", bad)
    assert status == 400
    assert "not a readable image" in json.loads(response["outputs"][0]["data"][0])["error"]


def test_concurrent_requests_each_get_their_own_answer(
    kserve_torchserve, serving_artifacts: Path, cifar10_test_jpegs
) -> None:
    """With batchSize 1 no two v2 requests share a batch: 8 at once, each answered with its own image's classes."""
    images = [img for _, img in cifar10_test_jpegs(8)]
    url = f"{kserve_torchserve.inference_url}/v2/models/inception_net/infer"
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda img: post_json(url, v2_bytes_request([img])), images))
    for (status, response), img in zip(results, images, strict=True):
        assert status == 200, response
        assert_same_prediction(
            json.loads(response["outputs"][0]["data"][0]), expected(serving_artifacts, "inception_net", img)
        )
