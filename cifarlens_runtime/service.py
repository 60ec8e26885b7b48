"""Request handling of the REST service, independent of TorchServe.

The TorchServe handler turns its batch into `Request`s and calls `handle_batch`; the UI's
in-process backend (`--backend local`) calls the same function, so both give the same status
codes and the same JSON bytes. Every request of a batch gets its own reply: one bad image never
fails the others. NumPy, Pillow and ONNX Runtime only, plus torch for the gradient CAMs (see `torchscript`).

Each request is checked once, here (`resolve`): its route, and the method, layer and class it names against
the net, into a `Route` the predictor then runs as it is, with one set of errors (status and words).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

import numpy as np
from PIL import Image, UnidentifiedImageError

from cifarlens_runtime.constants import (
    CLASS_PARAM,
    EXPLANATIONS_ROUTE,
    FEATURE_ROUTE,
    LAYER_PARAM,
    LOGITS_NAME,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    METHOD_PARAM,
)
from cifarlens_runtime.predictor import Predictor, softmax
from cifarlens_runtime.preprocess import UnsupportedFormat, check_format, plain_reason, to_array, upright
from cifarlens_runtime.responses import cam_body, encode, error_body, feature_body, listing_body, prediction_body
from cifarlens_runtime.vocabulary import GRADIENT_METHODS, METHODS, class_index


class RequestError(Exception):
    """A request the service rejects, with its HTTP status (4xx) and a message for the client."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Request:
    """One REST request: the body, the URL suffix after /predictions/<model>/<version>/ and the parameters.

    `route` is TorchServe's `url_path` header ("" or None for a plain prediction; "feature_maps",
    "feature_maps?layer=x" or "feature_maps/x" for feature maps). `explain` marks a request to
    /explanations/<model> (TorchServe's `explain` header), whose suffix is "", "<layer>" or "<layer>/<class>".
    `layer`, `target` (the class) and `method` are form fields, when TorchServe passes them separately;
    `duplicated` names the form fields the request sent more than once (it is refused: which one counts?).
    """

    body: Any = None
    route: str | None = None
    layer: str | None = None
    explain: bool = False
    target: str | None = None
    method: str | None = None
    duplicated: tuple[str, ...] = ()


@dataclass
class Reply:
    """HTTP status and exact JSON bytes of one answer."""

    status: int
    body: bytes


@dataclass(frozen=True)
class Route:
    """What a request asks for: `predict`, `listing`, `features` (of `layer`) or `cam` (`method`'s map at `layer`
    for class `index`, None: the top-1 class). Checked against the net once it comes out of `resolve`."""

    kind: str
    layer: str | None = None
    method: str | None = None
    index: int | None = None


@dataclass(frozen=True)
class CamWords:
    """The layer, class and method an explanations request names, as sent (the method lowercased; None: not
    named, so the net's default)."""

    layer: str | None = None
    target: str | None = None
    method: str | None = None


def split_route(route: str | None) -> tuple[str, list[str], str]:
    """A URL suffix as (path, its unquoted segments, query string)."""
    path, _, query = (route or "").partition("?")
    return path, [unquote(p) for p in path.strip("/").split("/") if p], query


def parse_explain_route(
    route: str | None, layer: str | None = None, target: str | None = None, method: str | None = None
) -> CamWords:
    """The layer, class and method of an explanations request, from its URL suffix, query or form fields."""
    path, parts, query = split_route(route)
    if len(parts) > 2:
        raise RequestError(
            404,
            f"unknown route '{path}': use /{EXPLANATIONS_ROUTE}/<model> or "
            f"/{EXPLANATIONS_ROUTE}/<model>/<version>/<layer>[/<class>]",
        )
    params = parse_qs(query)
    given = {
        LAYER_PARAM: [parts[0]] if parts else [],
        CLASS_PARAM: [parts[1]] if len(parts) > 1 else [],
        METHOD_PARAM: [],
    }
    for name, field in ((LAYER_PARAM, layer), (CLASS_PARAM, target), (METHOD_PARAM, method)):
        given[name] += [v for v in (field, *params.get(name, [])) if v]
        if len(set(given[name])) > 1:
            raise RequestError(400, f"two different values for '{name}': {' and '.join(sorted(set(given[name])))}")
    first = {name: (values or [None])[0] for name, values in given.items()}
    named = first[METHOD_PARAM]
    return CamWords(first[LAYER_PARAM], first[CLASS_PARAM], None if named is None else named.lower())


def parse_route(route: str | None, layer: str | None = None) -> Route:
    """What a request asks for, from its URL suffix and layer parameter; unknown routes are 404."""
    path, parts, query = split_route(route)
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

    The format and size are checked from the header before any pixel is decoded, so a small file that
    would decode to a huge image, or a format the service does not take, is refused cheaply.
    """
    if not body:
        raise RequestError(400, "empty body: send JPEG or PNG bytes")
    if len(body) > MAX_IMAGE_BYTES:
        raise RequestError(413, f"the image is {len(body)} bytes, over the limit of {MAX_IMAGE_BYTES} bytes")
    try:
        with Image.open(io.BytesIO(body)) as img:
            check_format(img)
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                raise RequestError(
                    413, f"the image is {width}x{height} pixels, over the limit of {MAX_IMAGE_PIXELS} pixels"
                )
            return to_array(upright(img))
    except UnsupportedFormat as exc:
        raise RequestError(415, str(exc)) from None
    except Image.DecompressionBombError:
        raise RequestError(413, f"the image is over the limit of {MAX_IMAGE_PIXELS} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise RequestError(400, f"cannot decode the image: {plain_reason(exc)}") from None


def _error(code: int, message: str) -> Reply:
    return Reply(code, encode(error_body(message, code)))


def _check_layer(predictor: Predictor, layer: str) -> str:
    """`layer` if the net has it, else a 404 that names the layers it has."""
    if layer not in predictor.layer_shapes:
        raise RequestError(404, f"unknown layer '{layer}': {predictor.name} has {', '.join(predictor.layers)}")
    return layer


def check_cam(predictor: Predictor, words: CamWords) -> Route:
    """The CAM route of an explanations request, checked against the net: its method, layer and class index (None:
    the top-1 class). A request that names no method or layer gets the net's defaults (`Predictor.cam_method`,
    `Predictor.cam_layer`)."""
    method = words.method.strip() if words.method is not None else predictor.cam_method
    if method not in METHODS:
        raise RequestError(400, f"unknown method '{words.method}': use one of {', '.join(METHODS)}")
    layer = _check_layer(predictor, words.layer or predictor.cam_layer)
    try:
        index = class_index(words.target, predictor.classes)
    except ValueError as exc:
        raise RequestError(400, str(exc)) from None
    if method not in GRADIENT_METHODS and index is not None:
        raise RequestError(
            400,
            f"{method} gives the same map for every class: leave out the class, or use {', '.join(GRADIENT_METHODS)}",
        )
    return Route("cam", layer, method, index)


def resolve(predictor: Predictor, req: Request) -> Route:
    """What `req` asks of `predictor`, checked: the one place a request's route, method, layer and class are
    validated. Anything wrong is a RequestError with its status and the words the client sees."""
    if req.duplicated:
        names = ", ".join(f"'{n}'" for n in req.duplicated)
        raise RequestError(400, f"the form field {names} was sent more than once: send each field once")
    if req.explain:
        return check_cam(predictor, parse_explain_route(req.route, req.layer, req.target, req.method))
    route = parse_route(req.route, req.layer)
    if route.kind == "features":
        _check_layer(predictor, route.layer)
    return route


Job = tuple[int, Route, np.ndarray]  # a request's place in the batch, what it asks, its image


def handle_batch(predictor: Predictor, requests: list[Request]) -> list[Reply]:
    """Answer every request of a batch, running the net once over all its good images
    (plus one pass per CAM method and layer asked for)."""
    replies: list[Reply | None] = [None] * len(requests)
    jobs: list[Job] = []
    for i, req in enumerate(requests):
        try:
            route = resolve(predictor, req)
            if route.kind == "listing":
                replies[i] = Reply(200, encode(listing_body(predictor.metadata, predictor.backend)))
                continue
            jobs.append((i, route, decode_image(as_bytes(req.body))))
        except RequestError as exc:
            replies[i] = _error(exc.code, exc.message)
    cams = [job for job in jobs if job[1].kind == "cam"]
    forward = [job for job in jobs if job[1].kind != "cam"]
    if forward:
        _answer_forward(predictor, forward, replies)
    for key in sorted({(r.method, r.layer) for _, r, _ in cams}):
        _answer_cams(predictor, [job for job in cams if (job[1].method, job[1].layer) == key], replies)
    return [r for r in replies if r is not None]


def _fail_all(jobs: list[Job], replies: list[Reply | None], code: int, message: str) -> None:
    """The same error for every request of a run that failed as a whole."""
    for i, _, _ in jobs:
        replies[i] = _error(code, message)


def _answer_forward(predictor: Predictor, jobs: list[Job], replies: list[Reply | None]) -> None:
    """Predictions and feature maps: one run of the predictor's engine over the batch."""
    layers = sorted({r.layer for _, r, _ in jobs if r.layer}, key=predictor.layers.index)
    try:
        outs = predictor.run(np.stack([x for _, _, x in jobs]), [LOGITS_NAME, *layers])
    except Exception as exc:  # noqa: BLE001 - the model failing must still answer every request
        _fail_all(jobs, replies, 500, f"{predictor.name} failed on this batch: {exc}")
        return
    probs = softmax(outs[0])
    acts = dict(zip(layers, outs[1:], strict=True))
    for row, (i, route, _) in enumerate(jobs):
        try:
            if route.kind == "predict":
                body = prediction_body(predictor.name, predictor.backend, probs[row], predictor.classes)
            else:
                act = acts[route.layer][row]
                body = feature_body(predictor.name, predictor.backend, route.layer, act, probs[row], predictor.classes)
            replies[i] = Reply(200, encode(body))
        except ValueError as exc:  # e.g. a non-finite activation or probability
            replies[i] = _error(500, f"cannot encode the answer: {exc}")


def _answer_cams(predictor: Predictor, jobs: list[Job], replies: list[Reply | None]) -> None:
    """Class activation maps of one method and layer: one pass over the batch (forward and backward through the
    TorchScript runner for the gradient methods; Eigen-CAM runs the predictor's engine)."""
    method, layer = jobs[0][1].method, jobs[0][1].layer
    backend = "torchscript" if method in GRADIENT_METHODS else predictor.backend
    try:
        batch = np.stack([x for _, _, x in jobs])
        probs, cams, chosen = predictor.cam(batch, method, layer, [r.index for _, r, _ in jobs])
    except (ImportError, FileNotFoundError) as exc:
        _fail_all(jobs, replies, 501, f"{method} is not available for {predictor.name} here ({exc}); use eigencam")
        return
    except Exception as exc:  # noqa: BLE001 - the model failing must still answer every request
        _fail_all(jobs, replies, 500, f"{predictor.name} failed on this batch: {exc}")
        return
    for row, (i, _, _) in enumerate(jobs):
        try:
            body = cam_body(
                predictor.name, backend, method, layer, cams[row], int(chosen[row]), probs[row], predictor.classes
            )
            replies[i] = Reply(200, encode(body))
        except ValueError as exc:
            replies[i] = _error(500, f"cannot encode the answer: {exc}")
