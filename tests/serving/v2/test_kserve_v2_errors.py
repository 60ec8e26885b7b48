"""What a careless or hostile caller sends to the real v2 server: every malformed request is answered 4xx with the
protocol's {"error": "..."} in words (INVALID_ARGUMENT and the same words over gRPC), and the server keeps serving.
The first ten REST cases are the ones TorchServe's kservev2 envelope answered 503 "Prediction failed"."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from PIL import Image
from tritonclient.utils import InferenceServerException

from cifarlens_runtime.constants import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, V2_MAX_IMAGES, V2_MAX_REQUEST_BYTES

TIMEOUT = 60
INFER = "/v2/models/se_net/infer"
HEADER = "Inference-Header-Content-Length"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def image_input(jpeg: bytes, **change) -> dict:
    return {"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64(jpeg)], **change}


def pixels_input(data, shape=(1, 32, 32, 3)) -> dict:
    return {"name": "pixels", "shape": list(shape), "datatype": "UINT8", "data": data}


def encoded(fmt: str, size: tuple[int, int] = (40, 30), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format=fmt)
    return buf.getvalue()


def binary(header: dict, *parts: bytes, length: str | None = None) -> tuple[bytes, dict]:
    """A binary tensor data body: the JSON header, then the parts; its length header unless told otherwise."""
    head = json.dumps(header).encode()
    headers = {"Content-Type": "application/octet-stream"}
    if length != "omit":
        headers[HEADER] = length or str(len(head))
    return head + b"".join(parts), headers


def length_prefixed(*elements: bytes) -> bytes:
    return b"".join(len(e).to_bytes(4, "little") + e for e in elements)


# (id, body from a real JPEG: a dict (sent as JSON) or (bytes, headers), status, words in the answer)
JSON_CASES = [
    ("no-inputs", lambda j: {"id": "a"}, 400, "inputs is missing"),
    ("inputs-not-a-list", lambda j: {"inputs": image_input(j)}, 400, "inputs must be a list"),
    ("no-datatype", lambda j: {"inputs": [{"name": "image", "shape": [1], "data": [b64(j)]}]}, 400, "inputs[0].datatype is missing"),
    ("no-data", lambda j: {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES"}]}, 400, "inputs[0].data is missing"),
    ("empty-data", lambda j: {"inputs": [image_input(j, shape=[0], data=[])]}, 400, "holds no images"),
    ("empty-data-for-one", lambda j: {"inputs": [image_input(j, data=[])]}, 400, "so 1 value, but its data holds 0"),
    ("shape-and-size-disagree", lambda j: {"inputs": [image_input(j, shape=[2])]}, 400, "so 2 values, but its data holds 1"),
    ("ragged", lambda j: {"inputs": [pixels_input([[1, 2], [3]])]}, 400, "ragged list"),
    ("not-json", lambda j: (b"{not json", {"Content-Type": "application/json"}), 400, "the body is not json"),
    ("numeric-id", lambda j: {"id": 7, "inputs": [image_input(j)]}, 400, "id must be a string"),
    ("input-not-an-object", lambda j: {"inputs": [1]}, 400, "inputs[0] must be an object"),
    ("shape-not-numbers", lambda j: {"inputs": [image_input(j, shape=["one"])]}, 400, "inputs[0].shape[0] must be a whole number"),
    ("body-not-an-object", lambda j: [image_input(j)], 400, "the body must be an object"),
    ("unknown-input", lambda j: {"inputs": [image_input(j, name="img")]}, 400, "unknown input 'img'"),
    ("wrong-datatype", lambda j: {"inputs": [image_input(j, datatype="FP32")]}, 400, "is bytes, got fp32"),
    ("two-inputs", lambda j: {"inputs": [image_input(j), image_input(j)]}, 400, "one input per request"),
    ("image-shape-2d", lambda j: {"inputs": [image_input(j, shape=[1, 1])]}, 400, "it takes [n]"),
    ("not-base64", lambda j: {"inputs": [image_input(j, data=["@@@"])]}, 400, "not base64"),
    ("bytes-element-a-number", lambda j: {"inputs": [image_input(j, data=[5])]}, 400, "must be a base64 string"),
    ("not-an-image", lambda j: {"inputs": [image_input(j, data=[b64(b"hello")])]}, 400, "cannot decode the image"),
    ("tiff", lambda j: {"inputs": [image_input(j, data=[b64(encoded("TIFF"))])]}, 415, "tiff images are not supported"),
    ("second-image-bad", lambda j: {"inputs": [image_input(j, shape=[2], data=[b64(j), b64(b"x")])]}, 400, "image 1: cannot decode"),
    ("pixels-out-of-range", lambda j: {"inputs": [pixels_input([300] * 3072)]}, 400, "0..255"),
    ("pixels-floats", lambda j: {"inputs": [pixels_input([0.5] * 3072)]}, 400, "whole numbers in 0..255"),
    ("pixels-wrong-size", lambda j: {"inputs": [pixels_input([0] * 2352, (1, 28, 28, 3))]}, 400, "it takes [n, 32, 32, 3]"),
    ("unknown-output", lambda j: {"inputs": [image_input(j)], "outputs": [{"name": "nope"}]}, 400, "unknown output 'nope': se_net has probabilities, logits, se1"),
    ("output-twice", lambda j: {"inputs": [image_input(j)], "outputs": [{"name": "se1"}, {"name": "se1"}]}, 400, "asked for twice"),
    ("too-many-images", lambda j: {"inputs": [image_input(j, shape=[V2_MAX_IMAGES + 1], data=["eA=="] * (V2_MAX_IMAGES + 1))]}, 400, f"over the limit of {V2_MAX_IMAGES}"),
    ("answer-too-big", lambda j: {"inputs": [image_input(j, shape=[V2_MAX_IMAGES], data=[b64(j)] * V2_MAX_IMAGES)], "outputs": [{"name": f"se{i}"} for i in range(1, 6)]}, 400, "ask for fewer images or layers"),
    ("over-the-byte-limit", lambda j: {"inputs": [image_input(j, data=[b64(bytes(MAX_IMAGE_BYTES + 1))])]}, 413, f"over the limit of {MAX_IMAGE_BYTES} bytes"),
    ("over-the-pixel-limit", lambda j: {"inputs": [image_input(j, data=[b64(encoded("PNG", (int(MAX_IMAGE_PIXELS**0.5) + 100,) * 2, "L"))])]}, 413, "pixels"),
]  # fmt: skip

BINARY_CASES = [
    ("no-length-header", lambda j: binary({"inputs": []}, length="omit"), 400, "lacks the inference-header-content-length"),
    ("length-not-a-number", lambda j: binary({"inputs": []}, length="ten"), 400, "must be a whole number"),
    ("length-past-the-body", lambda j: binary({"inputs": []}, length="999"), 400, "is 999, but the body is"),
    ("header-not-json", lambda j: (b"{nope" + j, {"Content-Type": "application/octet-stream", HEADER: "5"}), 400, "json part of the body is not json"),
    ("header-without-inputs", lambda j: binary({"id": "x"}), 400, "inputs is missing"),
    ("numeric-id", lambda j: binary({"id": 3, "inputs": []}), 400, "id must be a string"),
    ("size-past-the-body", lambda j: binary({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 10**6}}]}, length_prefixed(j)), 400, "says 1000000 binary bytes, but only"),
    ("bytes-left-over", lambda j: binary({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": len(j) + 4}}]}, length_prefixed(j), b"extra"), 400, "5 bytes after the last binary input"),
    ("data-and-binary", lambda j: binary({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64(j)], "parameters": {"binary_data_size": len(j) + 4}}]}, length_prefixed(j)), 400, "has both `data` and"),
    ("neither", lambda j: binary({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES"}]}), 400, "has neither `data` nor"),
    ("cut-short-bytes", lambda j: binary({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 10}}]}, (1000).to_bytes(4, "little") + b"abcdef"), 400, "4-byte little-endian length"),
    ("pixels-short", lambda j: binary({"inputs": [{"name": "pixels", "shape": [1, 32, 32, 3], "datatype": "UINT8", "parameters": {"binary_data_size": 100}}]}, bytes(100)), 400, "is not 3072 bytes"),
]  # fmt: skip


@pytest.fixture(scope="module")
def jpeg(jpegs) -> bytes:
    return jpegs[3]


def post(server, body, path: str = INFER) -> requests.Response:
    if isinstance(body, tuple):
        return requests.post(server.address.rest_url + path, data=body[0], headers=body[1], timeout=TIMEOUT)
    return requests.post(server.address.rest_url + path, json=body, timeout=TIMEOUT)


def still_serving(server, jpeg: bytes) -> None:
    resp = post(server, {"inputs": [image_input(jpeg)]})
    assert resp.status_code == 200, resp.text
    assert [o["name"] for o in resp.json()["outputs"]] == ["probabilities", "logits"]


def refused_in_words(resp: requests.Response, status: int, words: str) -> None:
    assert resp.status_code == status, resp.text[:500]
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert list(body) == ["error"] and isinstance(body["error"], str), body
    assert words.lower() in body["error"].lower(), body["error"]


@pytest.mark.parametrize(("make", "status", "words"), [c[1:] for c in JSON_CASES], ids=[c[0] for c in JSON_CASES])
def test_malformed_json_requests(v2_server, jpeg, make, status: int, words: str) -> None:
    refused_in_words(post(v2_server, make(jpeg)), status, words)
    still_serving(v2_server, jpeg)


@pytest.mark.parametrize(("make", "status", "words"), [c[1:] for c in BINARY_CASES], ids=[c[0] for c in BINARY_CASES])
def test_malformed_binary_requests(v2_server, jpeg, make, status: int, words: str) -> None:
    refused_in_words(post(v2_server, make(jpeg)), status, words)
    still_serving(v2_server, jpeg)


def test_a_body_over_the_limit_is_refused_unread(v2_server, jpeg) -> None:
    body = b"x" * (V2_MAX_REQUEST_BYTES + 1)
    resp = post(v2_server, (body, {"Content-Type": "application/json"}))
    refused_in_words(resp, 413, f"over the limit of {V2_MAX_REQUEST_BYTES} bytes")
    still_serving(v2_server, jpeg)


@pytest.mark.parametrize(
    ("path", "method", "status", "words"),
    [
        ("/v2/models/resnet/infer", "POST", 404, "resnet does not exist"),
        ("/v2/models/resnet", "GET", 404, "resnet does not exist"),
        (INFER, "GET", 405, "method not allowed"),
        ("/v2/repository/models/se_net/unload", "POST", 404, "is not served here"),
        ("/v1/models/se_net:predict", "POST", 404, "is not served here"),
        ("/docs", "GET", 404, "is not served here"),
    ],
)
def test_routes_not_served(v2_server, jpeg, path: str, method: str, status: int, words: str) -> None:
    resp = requests.request(
        method, v2_server.address.rest_url + path, json={"inputs": [image_input(jpeg)]}, timeout=TIMEOUT
    )
    refused_in_words(resp, status, words)
    still_serving(v2_server, jpeg)


def grpc_refusal(server, model: str, inputs, outputs=None) -> InferenceServerException:
    client = grpcclient.InferenceServerClient(server.address.grpc_target)
    with pytest.raises(InferenceServerException) as caught:
        client.infer(model, inputs, outputs=outputs)
    return caught.value


def grpc_input(name: str, array: np.ndarray, datatype: str):
    given = grpcclient.InferInput(name, list(array.shape), datatype)
    given.set_data_from_numpy(array)
    return given


def test_malformed_grpc_requests(v2_server, jpeg) -> None:
    """Over gRPC: INVALID_ARGUMENT with the same words, NOT_FOUND, RESOURCE_EXHAUSTED; then a good request works."""
    image = grpc_input("image", np.array([jpeg], dtype=object), "BYTES")
    cases = [
        ("se_net", [grpc_input("img", np.array([jpeg], dtype=object), "BYTES")], None, "INVALID_ARGUMENT", "unknown input 'img'"),
        ("se_net", [grpc_input("image", np.array([b"hello"], dtype=object), "BYTES")], None, "INVALID_ARGUMENT", "cannot decode"),
        ("se_net", [grpc_input("pixels", np.zeros((1, 28, 28, 3), np.uint8), "UINT8")], None, "INVALID_ARGUMENT", "takes [N, 32, 32, 3]"),
        ("se_net", [grpc_input("pixels", np.zeros((1, 32, 32, 3), np.float32), "FP32")], None, "INVALID_ARGUMENT", "is UINT8, got FP32"),
        ("se_net", [image], [grpcclient.InferRequestedOutput("nope")], "INVALID_ARGUMENT", "unknown output 'nope'"),
        ("resnet", [image], None, "NOT_FOUND", "resnet does not exist"),
        ("se_net", [grpc_input("image", np.array([b"x" * (V2_MAX_REQUEST_BYTES + 1)], dtype=object), "BYTES")], None, "RESOURCE_EXHAUSTED", "larger than max"),
    ]  # fmt: skip
    for model, inputs, outputs, status, words in cases:
        error = grpc_refusal(v2_server, model, inputs, outputs)
        assert error.status() == f"StatusCode.{status}" and words in error.message(), (words, str(error))
    client = grpcclient.InferenceServerClient(v2_server.address.grpc_target)
    assert client.infer("se_net", [image]).as_numpy("probabilities").shape == (1, 10)
