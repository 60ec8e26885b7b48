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

from cifarlens_runtime.constants import FEATURE_ROUTE, LAYER_PARAM, LOGITS_NAME, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS
from cifarlens_runtime.predictor import Predictor, softmax
from cifarlens_runtime.preprocess import plain_reason, to_array
from cifarlens_runtime.responses import encode, error_body, feature_body, listing_body, prediction_body


class RequestError(Exception):
    """A request the service rejects, with its HTTP status (4xx) and a message for the client."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Request:
    """One REST request: the body, the URL suffix after /predictions/<model>/<version>/ and the layer.

    `route` is TorchServe's `url_path` header ("" or None for a plain prediction; "feature_maps",
    "feature_maps?layer=x" or "feature_maps/x" for feature maps). `layer` is the form field or query
    parameter when TorchServe passes it separately.
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
class Route:
    """What a request asks for: `predict`, `features` (of `layer`) or `listing`."""

    kind: str
    layer: str | None = None


def parse_route(route: str | None, layer: str | None = None) -> Route:
    """What a request asks for, from its URL suffix and layer parameter; unknown routes are 404."""
    path, _, query = (route or "").partition("?")
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    query_layer = parse_qs(query).get(LAYER_PARAM, [None])[0]
    if not parts:
        if layer or query_layer:
            raise RequestError(400, f"'{LAYER_PARAM}' is only accepted on the {FEATURE_ROUTE} route")
        return Route("predict")
    if parts[0] != FEATURE_ROUTE or len(parts) > 2:
        raise RequestError(
            404, f"unknown route '{path}': use /predictions/<model> or /predictions/<model>/<version>/{FEATURE_ROUTE}"
        )
    chosen = parts[1] if len(parts) == 2 else (query_layer or layer)
    return Route("features", chosen) if chosen else Route("listing")


def as_bytes(value: Any) -> bytes | None:
    """A TorchServe parameter value as bytes (it arrives as bytes, str or decoded JSON)."""
    if value is None or isinstance(value, (bytes, bytearray)):
        return bytes(value) if value is not None else None
    if isinstance(value, str):
        return value.encode("utf-8")
    raise RequestError(415, "expected a JPEG or PNG body, got JSON")


def decode_image(body: bytes | None) -> np.ndarray:
    """Image bytes -> normalised (3, 32, 32) float32, or a RequestError saying why not.

    The size is checked from the header before any pixel is decoded, so a small file that would
    decode to a huge image is refused cheaply.
    """
    if not body:
        raise RequestError(400, "empty body: send JPEG or PNG bytes")
    if len(body) > MAX_IMAGE_BYTES:
        raise RequestError(413, f"the image is {len(body)} bytes, over the limit of {MAX_IMAGE_BYTES} bytes")
    try:
        with Image.open(io.BytesIO(body)) as img:
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                raise RequestError(
                    413, f"the image is {width}x{height} pixels, over the limit of {MAX_IMAGE_PIXELS} pixels"
                )
            img.load()
            return to_array(img)
    except Image.DecompressionBombError:
        raise RequestError(413, f"the image is over the limit of {MAX_IMAGE_PIXELS} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise RequestError(400, f"cannot decode the image: {plain_reason(exc)}") from None


def _error(code: int, message: str) -> Reply:
    return Reply(code, encode(error_body(message, code)))


def handle_batch(predictor: Predictor, requests: list[Request]) -> list[Reply]:
    """Answer every request of a batch, running the net once over all its good images."""
    replies: list[Reply | None] = [None] * len(requests)
    jobs: list[tuple[int, Route, np.ndarray]] = []
    for i, req in enumerate(requests):
        try:
            route = parse_route(req.route, req.layer)
            if route.kind == "listing":
                replies[i] = Reply(200, encode(listing_body(predictor.metadata, predictor.backend)))
                continue
            if route.kind == "features" and route.layer not in predictor.layer_shapes:
                raise RequestError(
                    404, f"unknown layer '{route.layer}': {predictor.name} has {', '.join(predictor.layers)}"
                )
            jobs.append((i, route, decode_image(as_bytes(req.body))))
        except RequestError as exc:
            replies[i] = _error(exc.code, exc.message)
    if jobs:
        layers = sorted({r.layer for _, r, _ in jobs if r.layer}, key=predictor.layers.index)
        try:
            outs = predictor.run(np.stack([x for _, _, x in jobs]), [LOGITS_NAME, *layers])
        except Exception as exc:  # noqa: BLE001 - the model failing must still answer every request
            for i, _, _ in jobs:
                replies[i] = _error(500, f"{predictor.name} failed on this batch: {exc}")
            return [r for r in replies if r is not None]
        probs = softmax(outs[0])
        acts = dict(zip(layers, outs[1:], strict=True))
        for row, (i, route, _) in enumerate(jobs):
            try:
                if route.kind == "predict":
                    body = prediction_body(predictor.name, predictor.backend, probs[row], predictor.classes)
                else:
                    act = acts[route.layer][row]
                    body = feature_body(
                        predictor.name, predictor.backend, route.layer, act, probs[row], predictor.classes
                    )
                replies[i] = Reply(200, encode(body))
            except ValueError as exc:  # e.g. a non-finite activation or probability
                replies[i] = _error(500, f"cannot encode the answer: {exc}")
    return [r for r in replies if r is not None]
