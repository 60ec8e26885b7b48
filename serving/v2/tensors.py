"""v2 tensors and the nets' batches: the one input a request may hold, checked in words, and the outputs it gets.

Inputs (one per request, N images in, N answers out):
- `image`, BYTES [-1]: encoded images (JPEG, PNG, WebP, GIF, BMP), decoded and resized exactly as on the REST
  route (`cifarlens_runtime.service.decode_image`, with its size limits). In JSON each element is a base64 string;
  in binary tensor data (REST extension, gRPC raw contents) each is the file's bytes.
- `pixels`, UINT8 [-1, 32, 32, 3]: RGB pixels in height, width, channel order, normalised as a 32x32 image is.

Outputs, all FP32: `probabilities` [-1, 10] and `logits` [-1, 10] by default; every feature layer of
metadata.json ([-1, C, H, W]) when a request names it in `outputs`.
"""

from __future__ import annotations

import binascii
import math
import struct
import uuid
from base64 import b64decode
from collections.abc import Sequence

import numpy as np
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse
from PIL import Image

from cifarlens_runtime.constants import (
    IMAGE_SIZE,
    IN_CHANNELS,
    LOGITS_NAME,
    PROBABILITIES_NAME,
    V2_IMAGE_INPUT,
    V2_MAX_IMAGES,
    V2_MAX_RESPONSE_BYTES,
    V2_PIXELS_INPUT,
)
from cifarlens_runtime.predictor import Predictor, softmax
from cifarlens_runtime.preprocess import to_array
from cifarlens_runtime.service import RequestError, decode_image
from serving.v2.errors import Rejected

INPUT_SPECS: tuple[dict, ...] = (
    {"name": V2_IMAGE_INPUT, "datatype": "BYTES", "shape": [-1]},
    {"name": V2_PIXELS_INPUT, "datatype": "UINT8", "shape": [-1, IMAGE_SIZE, IMAGE_SIZE, IN_CHANNELS]},
)
_SPECS = {spec["name"]: spec for spec in INPUT_SPECS}
DEFAULT_OUTPUTS: tuple[str, ...] = (PROBABILITIES_NAME, LOGITS_NAME)
_TAKES = f"{V2_IMAGE_INPUT!r} (BYTES [-1], encoded images) or {V2_PIXELS_INPUT!r} (UINT8 [-1, 32, 32, 3], RGB)"


def output_shapes(predictor: Predictor) -> dict[str, list[int]]:
    """Every output a request may name, with its shape (-1: the batch), in the order of the model metadata."""
    classes = [-1, len(predictor.classes)]
    shapes = {PROBABILITIES_NAME: classes, LOGITS_NAME: classes}
    shapes.update({name: [-1, *shape] for name, shape in predictor.layer_shapes.items()})
    return shapes


def output_specs(predictor: Predictor) -> list[dict]:
    """The outputs as the protocol's metadata tensors."""
    return [{"name": n, "datatype": "FP32", "shape": s} for n, s in output_shapes(predictor).items()]


def the_input(request: InferRequest) -> InferInput:
    """The request's one input, known by name and datatype."""
    inputs = request.inputs or []
    if not inputs:
        raise Rejected(f"the request has no inputs: send one, {_TAKES}")
    if len(inputs) > 1:
        names = ", ".join(repr(i.name) for i in inputs)
        raise Rejected(f"send one input per request, {_TAKES}; got {len(inputs)}: {names}")
    given = inputs[0]
    spec = _SPECS.get(given.name)
    if spec is None:
        raise Rejected(f"unknown input {given.name!r}: send {_TAKES}")
    if given.datatype != spec["datatype"]:
        raise Rejected(f"input {given.name!r} is {spec['datatype']}, got {given.datatype}")
    return given


def batch_size(given: InferInput) -> int:
    """N, the first dimension of the input's shape, after checking the rest against the metadata."""
    shape, expected = list(given.shape), _SPECS[given.name]["shape"]
    if len(shape) != len(expected) or shape[1:] != expected[1:]:
        wanted = str(["N", *expected[1:]]).replace("'", "")
        raise Rejected(f"input {given.name!r} has shape {shape}; it takes {wanted}")
    n = shape[0]
    if n < 1:
        raise Rejected(f"input {given.name!r} holds no images (shape {shape}): send at least one")
    if n > V2_MAX_IMAGES:
        raise Rejected(f"input {given.name!r} holds {n} images, over the limit of {V2_MAX_IMAGES} a request")
    return n


def _binary(given: InferInput) -> bool:
    """True when the input's data came as binary tensor data (the SDK keeps it in `_raw_data`, with no public
    accessor; over gRPC `data` is then an empty list beside it)."""
    return getattr(given, "_raw_data", None) is not None


def _size_error(given: InferInput, count: int, found: int | str) -> Rejected:
    values = "value" if count == 1 else "values"
    return Rejected(
        f"input {given.name!r} has shape {list(given.shape)}, so {count} {values}, but its data holds {found}"
    )


def _base64(given: InferInput, i: int, element: object) -> bytes:
    """One BYTES element of a JSON request: a base64 string (bytes arrive as they are over gRPC)."""
    if isinstance(element, (bytes, bytearray)):
        return bytes(element)
    if not isinstance(element, str):
        raise Rejected(f"element {i} of input {given.name!r} must be a base64 string, got {type(element).__name__}")
    try:
        return b64decode(element, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected(f"element {i} of input {given.name!r} is not base64") from None


def encoded_images(given: InferInput, n: int) -> list[bytes]:
    """The N encoded images of a BYTES input, from JSON (base64) or binary data (bytes as they are)."""
    if not _binary(given):
        if not isinstance(given.data, list) or len(given.data) != n:
            raise _size_error(given, n, len(given.data or []))
        return [_base64(given, i, e) for i, e in enumerate(given.data)]
    try:
        elements = given.as_numpy().reshape(-1)
    except (ValueError, struct.error):
        raise Rejected(
            f"the binary data of input {given.name!r} does not hold {n} length-prefixed elements (each a 4-byte "
            "little-endian length, then that many bytes)"
        ) from None
    if elements.size != n:
        raise _size_error(given, n, elements.size)
    return [bytes(e) for e in elements]


def _pixel_list(given: InferInput, count: int) -> np.ndarray:
    """UINT8 values given as a (possibly nested) JSON list: regular, whole numbers in 0..255."""
    try:
        values = np.asarray(given.data if isinstance(given.data, list) else [])
    except ValueError:
        raise Rejected(
            f"the data of input {given.name!r} is a ragged list: nested lists must be equally long"
        ) from None
    if values.size != count:
        raise _size_error(given, count, values.size)
    if values.dtype.kind not in "iu":
        raise Rejected(f"input {given.name!r} holds UINT8 values, whole numbers in 0..255; got {values.dtype.name}")
    if values.min() < 0 or values.max() > 255:
        raise Rejected(f"input {given.name!r} holds UINT8 values, whole numbers in 0..255")
    return values.astype(np.uint8)


def pixel_arrays(given: InferInput, n: int) -> np.ndarray:
    """The (N, 32, 32, 3) uint8 pixels of a UINT8 input, from JSON or binary data."""
    shape = [n, IMAGE_SIZE, IMAGE_SIZE, IN_CHANNELS]
    count = math.prod(shape)
    if not _binary(given):
        return _pixel_list(given, count).reshape(shape)
    try:
        return given.as_numpy().reshape(shape)
    except ValueError:
        raise Rejected(
            f"the binary data of input {given.name!r} is not {count} bytes, one per value of {shape}"
        ) from None


def _decoded(blob: bytes, i: int, n: int) -> np.ndarray:
    try:
        return decode_image(blob)
    except RequestError as exc:
        raise Rejected(f"image {i}: {exc.message}" if n > 1 else exc.message, exc.code) from None


def batch(given: InferInput, n: int) -> np.ndarray:
    """The input's N images as the nets' normalised (N, 3, 32, 32) float32 batch."""
    if given.name == V2_IMAGE_INPUT:
        return np.stack([_decoded(blob, i, n) for i, blob in enumerate(encoded_images(given, n))])
    return np.stack([to_array(Image.fromarray(p, "RGB")) for p in pixel_arrays(given, n)])


def output_names(request: InferRequest, predictor: Predictor, n: int) -> list[str]:
    """The outputs the request names (by default probabilities and logits), known and within the answer limit."""
    asked = [o.name for o in request.request_outputs or []] or list(DEFAULT_OUTPUTS)
    shapes = output_shapes(predictor)
    unknown = [name for name in asked if name not in shapes]
    if unknown:
        raise Rejected(f"unknown output {', '.join(map(repr, unknown))}: {predictor.name} has {', '.join(shapes)}")
    twice = sorted({name for name in asked if asked.count(name) > 1})
    if twice:
        raise Rejected(f"output {', '.join(map(repr, twice))} is asked for twice")
    size = 4 * n * sum(math.prod(shapes[name][1:]) for name in asked)
    if size > V2_MAX_RESPONSE_BYTES:
        raise Rejected(
            f"{n} images with {', '.join(asked)} would be {size} bytes of float32, over the limit of "
            f"{V2_MAX_RESPONSE_BYTES} an answer: ask for fewer images or layers"
        )
    return asked


def forward(predictor: Predictor, images: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """One graph run for every named output; probabilities are the softmax the in-process predictor takes."""
    graph = [LOGITS_NAME, *(name for name in names if name not in DEFAULT_OUTPUTS)]
    results = dict(zip(graph, predictor.run(images, graph)))
    results[PROBABILITIES_NAME] = softmax(results[LOGITS_NAME])
    return {name: results[name] for name in names}


def response(request: InferRequest, model_name: str, arrays: dict[str, np.ndarray]) -> InferResponse:
    """The answer, binary or JSON as a REST request asks (the SDK's InferResponse does the encoding).

    Over gRPC, NumPy outputs always travel as raw contents; the SDK's `to_grpc` fails on NumPy data when told
    to use raw outputs (it tests the array's truth), so it is told only for REST.
    """
    outputs = [InferOutput(name, list(a.shape), "FP32", data=a) for name, a in arrays.items()]
    return InferResponse(
        response_id=request.id or uuid.uuid4().hex,
        model_name=model_name,
        infer_outputs=outputs,
        use_binary_outputs=bool(request.use_binary_outputs) and not request.from_grpc,
        requested_outputs=request.request_outputs,
    )
