"""Request handling of the REST service, independent of TorchServe.

The TorchServe handler turns its batch into `Request`s and calls `handle_batch`; the UI's
in-process backend (`--backend local`) calls the same function, so both give the same status
codes and the same JSON bytes. Every request of a batch gets its own reply: one bad image never
fails the others. NumPy, Pillow and ONNX Runtime only.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

import numpy as np
from PIL import Image, UnidentifiedImageError

from serving import FEATURE_ROUTE, LOGITS_NAME, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS
from serving.predictor import Predictor, softmax
from serving.responses import encode, error_body, feature_body, listing_body, prediction_body
from training.preprocess import ImageError, preprocess

LAYER_PARAM = "layer"


class RequestError(Exception):
    """A request the service rejects, with its HTTP status (4xx)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Request:
    """One REST request: the body, the URL suffix after /predictions/<model>/<version>/ and the layer.

    `route` is TorchServe's `url_path` header ("" or None for a plain prediction; "feature_maps",
    "feature_maps?layer=x" or "feature_maps/x" for feature maps). `layer` is the query parameter
    when TorchServe passes it separately.
    """

    body: Any = None
    route: str | None = None
    layer: str | None = None


@dataclass
class Reply:
    """HTTP status and exact JSON bytes of one answer."""

    status: int
    body: bytes


@dataclass
class _Parsed:
    kind: str  # "predict", "features" or "listing"
    layer: str | None = None


def parse_route(route: str | None, layer: str | None = None) -> _Parsed:
    """What a request asks for, from its URL suffix and layer parameter; unknown routes are 404."""
    path, _, query = (route or "").partition("?")
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    query_layer = parse_qs(query).get(LAYER_PARAM, [None])[0]
    if not parts:
        if layer or query_layer:
            raise RequestError(400, f"'{LAYER_PARAM}' is only accepted on the {FEATURE_ROUTE} route")
        return _Parsed("predict")
    if parts[0] != FEATURE_ROUTE or len(parts) > 2:
        raise RequestError(404, f"unknown route {path!r}; use /predictions/<model> or .../<version>/{FEATURE_ROUTE}")
    chosen = parts[1] if len(parts) == 2 else (query_layer or layer)
    return _Parsed("features", chosen) if chosen else _Parsed("listing")


def as_bytes(value: Any) -> bytes | None:
    """A TorchServe parameter value as bytes (it arrives as bytes, str or decoded JSON)."""
    if value is None or isinstance(value, (bytes, bytearray)):
        return bytes(value) if value is not None else None
    if isinstance(value, str):
        return value.encode("utf-8")
    raise RequestError(415, "expected a JPEG or PNG body, got JSON")


def decode_image(body: bytes | None) -> np.ndarray:
    """Image bytes -> normalised (3, 32, 32) float32, or a RequestError saying why not."""
    if not body:
        raise RequestError(400, "empty body: send JPEG or PNG bytes")
    if len(body) > MAX_IMAGE_BYTES:
        raise RequestError(413, f"image of {len(body)} bytes is over the {MAX_IMAGE_BYTES} byte limit")
    try:
        with Image.open(io.BytesIO(body)) as probe:
            width, height = probe.size
    except Image.DecompressionBombError as exc:
        raise RequestError(413, f"image too large: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise RequestError(400, f"not an image: {exc}") from None
    if width * height > MAX_IMAGE_PIXELS:
        raise RequestError(413, f"image of {width}x{height} pixels is over the {MAX_IMAGE_PIXELS} pixel limit")
    try:
        return preprocess(body)
    except ImageError as exc:
        raise RequestError(400, str(exc)) from None


def handle_batch(predictor: Predictor, requests: list[Request]) -> list[Reply]:
    """Answer every request of a batch, running the net once over all its good images."""
    replies: list[Reply | None] = [None] * len(requests)
    jobs: list[tuple[int, _Parsed, np.ndarray]] = []
    for i, req in enumerate(requests):
        try:
            parsed = parse_route(req.route, req.layer)
            if parsed.kind == "listing":
                replies[i] = Reply(200, encode(listing_body(predictor.metadata, predictor.backend)))
                continue
            if parsed.kind == "features" and parsed.layer not in predictor.layer_shapes:
                raise RequestError(
                    404, f"unknown layer {parsed.layer!r}; {predictor.name} has {', '.join(predictor.layers)}"
                )
            jobs.append((i, parsed, decode_image(as_bytes(req.body))))
        except RequestError as exc:
            replies[i] = Reply(exc.code, encode(error_body(exc.message, exc.code)))
    if jobs:
        layers = sorted({p.layer for _, p, _ in jobs if p.layer}, key=predictor.layers.index)
        try:
            outs = predictor.run(np.stack([x for _, _, x in jobs]), [LOGITS_NAME, *layers])
        except Exception as exc:  # noqa: BLE001 - the model failing must still answer every request
            for i, _, _ in jobs:
                replies[i] = Reply(500, encode(error_body(f"inference failed: {exc}", 500)))
            return [r for r in replies if r is not None]
        probs = softmax(outs[0])
        acts = dict(zip(layers, outs[1:], strict=True))
        for row, (i, parsed, _) in enumerate(jobs):
            try:
                if parsed.kind == "predict":
                    body = prediction_body(predictor.name, predictor.backend, probs[row], predictor.classes)
                else:
                    act = acts[parsed.layer][row]
                    body = feature_body(
                        predictor.name, predictor.backend, parsed.layer, act, probs[row], predictor.classes
                    )
                replies[i] = Reply(200, encode(body))
            except ValueError as exc:  # e.g. a non-finite activation cannot be written as JSON
                replies[i] = Reply(500, encode(error_body(f"cannot encode the answer: {exc}", 500)))
    return [r for r in replies if r is not None]
