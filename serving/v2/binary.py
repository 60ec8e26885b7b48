"""The binary tensor data extension on REST requests: a JSON header, then each binary input's bytes in order.

KServe 0.21's own reader (`InferRequest.from_bytes`) turns raw BYTES elements into UTF-8 text, so an encoded
image, which is not UTF-8, fails with a 500, and a header without `inputs` fails with a KeyError. This reader checks
the header against the SDK's own pydantic request (with `data` optional) and keeps BYTES elements as bytes; what it
builds is the SDK's `InferRequest`, as its JSON route builds.
"""

from __future__ import annotations

import orjson
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput
from kserve.protocol.rest.v2_datamodels import InferenceRequest, RequestInput

from serving.v2.errors import Rejected


class BinaryInput(RequestInput):
    """An input of a binary request: its data is either in the JSON (`data`) or after it (`binary_data_size`)."""

    data: list | None = None


class BinaryRequest(InferenceRequest):
    """The JSON part of a binary request."""

    inputs: list[BinaryInput]


def json_length(value: str | None, body_size: int) -> int:
    """The length of the JSON part, from the header the extension requires, checked against the body."""
    if value is None:
        raise Rejected(
            "the body is not JSON (send Content-Type: application/json), and as binary tensor data it lacks the "
            f"{INFERENCE_CONTENT_LENGTH_HEADER} header (its JSON part's length)"
        )
    try:
        length = int(value)
    except ValueError:
        raise Rejected(f"{INFERENCE_CONTENT_LENGTH_HEADER} must be a whole number, got {value!r}") from None
    if not 0 < length <= body_size:
        raise Rejected(f"{INFERENCE_CONTENT_LENGTH_HEADER} is {length}, but the body is {body_size} bytes")
    return length


def _binary_size(model: BinaryInput) -> int | None:
    """The input's `binary_data_size`, or None when its data is in the JSON; one of the two, never both."""
    size = (model.parameters or {}).get("binary_data_size")
    if (size is None) == (model.data is None):
        both = "both `data` and" if size is not None else "neither `data` nor"
        raise Rejected(f"input {model.name!r} has {both} parameters.binary_data_size: give exactly one")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise Rejected(f"input {model.name!r}: binary_data_size must be a whole number of bytes, got {size!r}")
    return size


def _split(inputs: list[BinaryInput], body: bytes, start: int) -> list[bytes | None]:
    """Each input's binary bytes in order (None for one whose data is in the JSON); every byte accounted for."""
    parts: list[bytes | None] = []
    offset = start
    for model in inputs:
        size = _binary_size(model)
        if size is None:
            parts.append(None)
            continue
        if offset + size > len(body):
            left = len(body) - offset
            raise Rejected(f"input {model.name!r} says {size} binary bytes, but only {left} are left in the body")
        parts.append(body[offset : offset + size])
        offset += size
    if offset != len(body):
        raise Rejected(f"the body has {len(body) - offset} bytes after the last binary input")
    return parts


def binary_request(body: bytes, length_header: str | None, model_name: str) -> InferRequest:
    """A binary REST body as the SDK's InferRequest; a malformed one raises Rejected (or pydantic's error)."""
    length = json_length(length_header, len(body))
    try:
        header = orjson.loads(body[:length])
    except orjson.JSONDecodeError as exc:
        raise Rejected(f"the JSON part of the body is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise Rejected("the JSON part of the body must be an object with `inputs`")
    parsed = BinaryRequest.model_validate(header)
    raw = _split(parsed.inputs, body, length)
    inputs = [InferInput(m.name, m.shape, m.datatype, data=m.data, parameters=m.parameters) for m in parsed.inputs]
    outputs = [RequestedOutput(o.name, o.parameters or {}) for o in parsed.outputs or []]
    return InferRequest(
        model_name=model_name,
        infer_inputs=inputs,
        request_id=parsed.id,
        raw_inputs=raw if any(r is not None for r in raw) else None,
        parameters=parsed.parameters,
        request_outputs=outputs or None,
    )
