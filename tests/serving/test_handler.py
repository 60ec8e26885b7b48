"""The TorchServe handler without the server, through a context stub: image modes, errors, mixed batches."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cifarlens_runtime.constants import FEATURE_ROUTE, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS
from cifarlens_runtime.responses import decode_activations

MODEL = "se_net"


class StubContext:
    """The parts of ts.context.Context the handler uses, recording statuses and content types."""

    def __init__(self, model_dir: Path, backend: str = "onnxruntime") -> None:
        self.system_properties = {"model_dir": str(model_dir), "batch_size": 8, "gpu_id": None}
        self.model_yaml_config = {"handler": {"backend": backend, "threads": 1}}
        self.manifest = {"model": {"modelName": MODEL}}
        self.headers: list[dict[str, str]] = []
        self.status: dict[int, tuple[int, str]] = {}
        self.content_type: dict[int, str] = {}

    def get_request_header(self, idx: int, key: str) -> str | None:
        return self.headers[idx].get(key)

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        self.status[idx] = (code, phrase)

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.content_type[idx] = value


def image_bytes(mode: str, fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    rng = np.random.default_rng(0)
    rgba = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8), "RGBA")
    img = rgba.convert("RGB").quantize(16) if mode == "P" else rgba.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def handler_factory(serving_artifacts: Path):
    from serving.handler import CifarLensHandler

    def make(backend: str = "onnxruntime") -> tuple[Any, StubContext]:
        ctx = StubContext(serving_artifacts / MODEL, backend)
        handler = CifarLensHandler()
        handler.initialize(ctx)
        return handler, ctx

    return make


def call(handler: Any, ctx: StubContext, requests: list[tuple[Any, str | None]]) -> list[tuple[int, dict]]:
    """Run one batch of (body, url_path) through the handler; returns (status, JSON) per request."""
    ctx.headers = [{"url_path": route} if route is not None else {} for _, route in requests]
    ctx.status.clear()
    data = [{"body": body} if body is not None else {} for body, _ in requests]
    out = handler.handle(data, ctx)
    assert len(out) == len(requests)
    assert all(ctx.content_type[i] == "application/json" for i in range(len(requests)))
    return [(ctx.status[i][0], json.loads(body)) for i, body in enumerate(out)]


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("RGB", "PNG"), ("RGBA", "PNG"), ("L", "PNG"), ("P", "PNG"), ("RGB", "JPEG"), ("L", "JPEG")],
)
def test_image_modes(handler_factory, mode: str, fmt: str) -> None:
    handler, ctx = handler_factory()
    [(status, body)] = call(handler, ctx, [(image_bytes(mode, fmt), "")])
    assert status == 200, body
    assert body["model"] == MODEL and body["backend"] == "onnxruntime"
    probs = [p["probability"] for p in body["predictions"]]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True)


def test_big_image_is_resized(handler_factory) -> None:
    handler, ctx = handler_factory()
    body = image_bytes("RGB", "JPEG", size=(3000, 2000))
    assert len(body) < MAX_IMAGE_BYTES
    [(status, _)] = call(handler, ctx, [(body, None)])
    assert status == 200


def test_feature_maps_and_listing(handler_factory) -> None:
    handler, ctx = handler_factory()
    img = image_bytes("RGB", "PNG")
    layers = handler.predictor.layers
    replies = call(handler, ctx, [(img, f"{FEATURE_ROUTE}/{layer}") for layer in layers] + [(None, FEATURE_ROUTE)])
    for layer, (status, body) in zip(layers, replies, strict=False):
        assert status == 200
        assert body["layer"] == layer and body["shape"] == handler.predictor.layer_shapes[layer]
        assert decode_activations(body).shape == tuple(body["shape"])
    status, listing = replies[-1]
    assert status == 200 and [d["name"] for d in listing["layers"]] == layers
    assert listing["metrics"]["test_acc"] == pytest.approx(0.1)


def test_torchscript_backend_same_answer(handler_factory) -> None:
    img = image_bytes("RGB", "PNG")
    (h1, c1), (h2, c2) = handler_factory("onnxruntime"), handler_factory("torchscript")
    [(s1, b1)] = call(h1, c1, [(img, "")])
    [(s2, b2)] = call(h2, c2, [(img, "")])
    assert s1 == s2 == 200 and b2["backend"] == "torchscript"
    assert [p["index"] for p in b1["predictions"]] == [p["index"] for p in b2["predictions"]]
    np.testing.assert_allclose(
        [p["probability"] for p in b1["predictions"]], [p["probability"] for p in b2["predictions"]], atol=1e-5
    )


def oversized_png() -> bytes:
    """A real PNG of noise just over the byte limit."""
    side = int((MAX_IMAGE_BYTES / 3) ** 0.5) + 64
    noise = np.random.default_rng(1).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="PNG", compress_level=0)
    assert len(buf.getvalue()) > MAX_IMAGE_BYTES
    return buf.getvalue()


def too_many_pixels_png() -> bytes:
    """A small file that would decode to more pixels than the cap (a decompression bomb in miniature)."""
    side = int(MAX_IMAGE_PIXELS**0.5) + 100
    buf = io.BytesIO()
    Image.new("L", (side, side)).save(buf, format="PNG")
    return buf.getvalue()


BAD_REQUESTS: dict[str, tuple[Any, str | None, int]] = {
    "not_an_image": (b"this is not an image", "", 400),
    "empty_body": (b"", "", 400),
    "no_body": (None, "", 400),
    "truncated_png": (image_bytes("RGB", "PNG")[:100], "", 400),
    "json_body": ({"image": "x"}, "", 415),
    "over_10_mb": (oversized_png(), "", 413),
    "too_many_pixels": (too_many_pixels_png(), "", 413),
    "unknown_layer": (image_bytes("RGB", "PNG"), f"{FEATURE_ROUTE}/nope", 404),
    "unknown_route": (image_bytes("RGB", "PNG"), "bogus", 404),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_every_error(handler_factory, case: str) -> None:
    handler, ctx = handler_factory()
    body, route, code = BAD_REQUESTS[case]
    [(status, reply)] = call(handler, ctx, [(body, route)])
    assert status == code and reply["code"] == code
    assert isinstance(reply["error"], str) and reply["error"]
    assert ctx.status[0][1]  # a reason phrase for the status line


def test_mixed_batch(handler_factory) -> None:
    """Bad requests in a batch get their own 4xx; the good ones still get their answers, in order."""
    handler, ctx = handler_factory()
    good = image_bytes("RGB", "JPEG")
    requests = [(good, "")]
    for body, route, _ in BAD_REQUESTS.values():
        requests += [(body, route), (good, f"{FEATURE_ROUTE}/se1")]
    replies = call(handler, ctx, requests)
    assert replies[0][0] == 200 and "predictions" in replies[0][1]
    for k, (_, _, code) in enumerate(BAD_REQUESTS.values()):
        bad, ok = replies[1 + 2 * k], replies[2 + 2 * k]
        assert bad[0] == code and bad[1]["code"] == code
        assert ok[0] == 200 and ok[1]["layer"] == "se1"
    # The worker keeps serving after a batch of errors.
    [(status, _)] = call(handler, ctx, [(good, "")])
    assert status == 200


def test_batch_answers_match_single_requests(handler_factory) -> None:
    handler, ctx = handler_factory()
    images = [image_bytes(m, "PNG") for m in ("RGB", "L", "RGBA")]
    batch = call(handler, ctx, [(img, "") for img in images])
    for img, (_, body) in zip(images, batch, strict=True):
        [(_, single)] = call(handler, ctx, [(img, "")])
        assert [p["index"] for p in single["predictions"]] == [p["index"] for p in body["predictions"]]
        np.testing.assert_allclose(
            [p["probability"] for p in single["predictions"]],
            [p["probability"] for p in body["predictions"]],
            atol=1e-6,
        )
