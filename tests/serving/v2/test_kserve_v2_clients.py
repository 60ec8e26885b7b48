"""The standard clients, as they are used by default, against the real v2 server: tritonclient HTTP and gRPC
(binary tensor data both ways), and KServe's own REST and gRPC clients (in a process of their own). Every net, real test images;
probabilities and logits equal to the in-process predictor's to 1e-6."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from PIL import Image
from tritonclient.utils import InferenceServerException

from cifarlens_runtime.constants import LOGITS_NAME, PROBABILITIES_NAME
from cifarlens_runtime.predictor import load_metadata
from cifarlens_runtime.preprocess import to_array
from tests.conftest import REPO_ROOT
from tests.serving.v2.conftest import ATOL, expected

MODELS = ("inception_net", "plain_cnn", "se_net")
DEFAULT_OUTPUTS = [PROBABILITIES_NAME, LOGITS_NAME]


def triton_input(module, name: str, array: np.ndarray):
    """A tritonclient input (HTTP or gRPC module) holding `array`, sent as the client sends by default."""
    given = module.InferInput(name, list(array.shape), "BYTES" if array.dtype == object else "UINT8")
    given.set_data_from_numpy(array)
    return given


def encoded(images: list[bytes]) -> np.ndarray:
    return np.array(images, dtype=object)


def check(probs: np.ndarray, logits: np.ndarray, predictor, images: list[bytes]) -> None:
    """FP32 (N, 10) answers equal to the in-process predictor's for the same images."""
    want_probs, want_logits = expected(predictor, images)
    assert probs.dtype == np.float32 and probs.shape == (len(images), 10)
    np.testing.assert_allclose(probs, want_probs, rtol=0, atol=ATOL)
    np.testing.assert_allclose(logits, want_logits, rtol=0, atol=ATOL)


def test_health_and_metadata(v2_server, models) -> None:
    """Live, ready, the extensions served, each net ready, and its tensors by name, datatype and shape."""
    http = httpclient.InferenceServerClient(v2_server.http_target)
    grpc = grpcclient.InferenceServerClient(v2_server.address.grpc_target)
    assert http.is_server_live() and http.is_server_ready() and grpc.is_server_live() and grpc.is_server_ready()
    assert http.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    assert list(grpc.get_server_metadata(as_json=True)["extensions"]) == ["binary_tensor_data"]
    assert sorted(models) == list(MODELS)
    assert not http.is_model_ready("resnet")
    with pytest.raises(InferenceServerException, match="resnet does not exist"):
        grpc.is_model_ready("resnet")
    for name in models:
        assert http.is_model_ready(name) and grpc.is_model_ready(name)
        meta = http.get_model_metadata(name)
        assert meta["inputs"] == [
            {"name": "image", "datatype": "BYTES", "shape": [-1]},
            {"name": "pixels", "datatype": "UINT8", "shape": [-1, 32, 32, 3]},
        ]
        layers = load_metadata(v2_server.artifacts / name)["feature_layers"]
        want = [(n, [-1, 10]) for n in DEFAULT_OUTPUTS] + [(d["name"], [-1, *d["shape"]]) for d in layers]
        assert [(o["name"], o["shape"]) for o in meta["outputs"]] == want
        assert {o["datatype"] for o in meta["outputs"]} == {"FP32"}
        grpc_meta = grpc.get_model_metadata(name, as_json=True)
        assert [(o["name"], [int(s) for s in o["shape"]]) for o in grpc_meta["outputs"]] == want


@pytest.mark.parametrize("model", MODELS)
def test_tritonclient_http_default_call(v2_server, predictors, jpegs, model: str) -> None:
    """Binary BYTES in, binary FP32 out, probabilities and logits only: ten images in, ten answers out."""
    client = httpclient.InferenceServerClient(v2_server.http_target)
    result = client.infer(model, [triton_input(httpclient, "image", encoded(jpegs))])
    outputs = result.get_response()["outputs"]
    assert [o["name"] for o in outputs] == DEFAULT_OUTPUTS
    assert all("binary_data_size" in o["parameters"] for o in outputs)
    check(result.as_numpy(PROBABILITIES_NAME), result.as_numpy(LOGITS_NAME), predictors[model], jpegs)


@pytest.mark.parametrize("model", MODELS)
def test_tritonclient_grpc_default_call(v2_server, predictors, jpegs, model: str) -> None:
    client = grpcclient.InferenceServerClient(v2_server.address.grpc_target)
    result = client.infer(model, [triton_input(grpcclient, "image", encoded(jpegs))])
    assert [o.name for o in result.get_response().outputs] == DEFAULT_OUTPUTS
    check(result.as_numpy(PROBABILITIES_NAME), result.as_numpy(LOGITS_NAME), predictors[model], jpegs)


def kserve_clients(server, models: list[str], images: list[bytes]) -> dict:
    """What KServe's own REST and gRPC clients get (tests/serving/v2/kserve_clients.py, a process of its own)."""
    job = {
        "rest_url": server.address.rest_url,
        "grpc_target": server.address.grpc_target,
        "models": models,
        "images": [base64.b64encode(b).decode("ascii") for b in images],
    }
    cmd = [sys.executable, "-m", "tests.serving.v2.kserve_clients"]
    done = subprocess.run(cmd, input=json.dumps(job), capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_kserve_clients(v2_server, models, predictors, jpegs) -> None:
    """KServe's InferenceRESTClient (binary by default, and a JSON body with base64 BYTES) and its gRPC client."""
    answers = kserve_clients(v2_server, models, jpegs)
    for model in models:
        got = answers[model]
        assert got["ready"] and got["grpc-ready"]
        for route in ("rest-binary", "rest-json", "grpc"):
            assert list(got[route]) == DEFAULT_OUTPUTS, route
            probs, logits = (np.asarray(got[route][name], dtype=np.float32) for name in DEFAULT_OUTPUTS)
            check(probs, logits, predictors[model], jpegs)


def test_n_images_in_n_answers_out(v2_server, predictors, jpegs) -> None:
    """BYTES of shape [2] with two images: two answers, each the image's own (the TorchServe envelope dropped one)."""
    client = httpclient.InferenceServerClient(v2_server.http_target)
    pair = client.infer("plain_cnn", [triton_input(httpclient, "image", encoded(jpegs[:2]))])
    probs = pair.as_numpy(PROBABILITIES_NAME)
    assert probs.shape == (2, 10)
    for row, image in zip(probs, jpegs[:2]):
        alone = client.infer("plain_cnn", [triton_input(httpclient, "image", encoded([image]))])
        np.testing.assert_allclose(row, alone.as_numpy(PROBABILITIES_NAME)[0], rtol=0, atol=ATOL)


def test_pixels_input_equals_the_image_it_came_from(v2_server, predictors, jpegs) -> None:
    """UINT8 [N, 32, 32, 3] RGB pixels: the answers of the JPEGs they were decoded from, over HTTP and gRPC."""
    pixels = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in jpegs])
    assert pixels.dtype == np.uint8 and pixels.shape == (len(jpegs), 32, 32, 3)
    http = httpclient.InferenceServerClient(v2_server.http_target)
    grpc = grpcclient.InferenceServerClient(v2_server.address.grpc_target)
    by_http = http.infer("inception_net", [triton_input(httpclient, "pixels", pixels)])
    by_grpc = grpc.infer("inception_net", [triton_input(grpcclient, "pixels", pixels)])
    check(by_http.as_numpy(PROBABILITIES_NAME), by_http.as_numpy(LOGITS_NAME), predictors["inception_net"], jpegs)
    np.testing.assert_allclose(by_grpc.as_numpy(PROBABILITIES_NAME), by_http.as_numpy(PROBABILITIES_NAME), atol=ATOL)
    direct = predictors["inception_net"].predict(np.stack([to_array(Image.fromarray(p)) for p in pixels]))
    np.testing.assert_allclose(by_http.as_numpy(PROBABILITIES_NAME), direct, rtol=0, atol=ATOL)


@pytest.mark.parametrize("model", MODELS)
def test_outputs_pick_feature_layers(v2_server, predictors, jpegs, model: str) -> None:
    """A request's `outputs` picks what comes back: here the last feature layer, binary, and JSON probabilities."""
    predictor = predictors[model]
    layer = predictor.layers[-1]
    client = httpclient.InferenceServerClient(v2_server.http_target)
    asked = [
        httpclient.InferRequestedOutput(layer),
        httpclient.InferRequestedOutput(PROBABILITIES_NAME, binary_data=False),
    ]
    result = client.infer(model, [triton_input(httpclient, "image", encoded(jpegs[:3]))], outputs=asked)
    outputs = result.get_response()["outputs"]
    assert [o["name"] for o in outputs] == [layer, PROBABILITIES_NAME]
    assert "data" in outputs[1] and "binary_data_size" in outputs[0]["parameters"]
    from cifarlens_runtime.service import decode_image

    want = predictor.run(np.stack([decode_image(b) for b in jpegs[:3]]), [layer])[0]
    assert result.as_numpy(layer).shape == (3, *predictor.layer_shapes[layer])
    np.testing.assert_allclose(result.as_numpy(layer), want, rtol=1e-6, atol=ATOL)
    np.testing.assert_allclose(result.as_numpy(PROBABILITIES_NAME), expected(predictor, jpegs[:3])[0], atol=ATOL)


def _client_round(target: str, grpc: bool, images: list[bytes], model: str, rounds: int) -> list[np.ndarray]:
    module = grpcclient if grpc else httpclient
    client = module.InferenceServerClient(target)
    return [client.infer(model, [triton_input(module, "image", encoded(images))]).as_numpy(PROBABILITIES_NAME)
            for _ in range(rounds)]  # fmt: skip


def test_concurrent_clients(v2_server, predictors, jpegs) -> None:
    """Eight clients at once (HTTP and gRPC, each its own images and net), every answer right."""
    jobs = []
    with ThreadPoolExecutor(8) as pool:
        for i in range(8):
            model, images = MODELS[i % 3], [jpegs[i], jpegs[(i + 3) % 10]]
            target = v2_server.address.grpc_target if i % 2 else v2_server.http_target
            jobs.append((model, images, pool.submit(_client_round, target, bool(i % 2), images, model, 4)))
        for model, images, job in jobs:
            want = expected(predictors[model], images)[0]
            for probs in job.result(timeout=120):
                np.testing.assert_allclose(probs, want, rtol=0, atol=ATOL)
