"""TorchServe handler shared by every cifarlens archive.

Overrides `initialize` and `handle` of BaseHandler: the model is an ONNX graph (or a TorchScript
module) from `serving.export`, never a `torch.load`ed pickle, and the request logic lives in
`cifarlens_runtime.service` (the package ships whole in every archive). TorchServe requires this
file to define exactly one class. On the ONNX Runtime backend nothing the prediction path runs imports
torch (TorchServe's own BaseHandler and worker do, which is outside the hot path).

`/explanations/<model>` (TorchServe marks those requests with the `explain` header) answers class
activation maps, computed per request of the batch like predictions; the gradient methods run the archive's
TorchScript copy with autograd (`cifarlens_runtime.torchscript`), loaded at start so that no request waits for it.

Under KServe (`service_envelope=kservev2`, see deploy/kserve/) TorchServe's envelope hands `handle`
the input tensors of one Open Inference Protocol request instead of REST bodies; each becomes an
image (`v2_image_bytes`) and gets the REST answer's JSON back as one string, which the envelope
sends as a BYTES output named after the input. Such a batch is told apart by the envelope's own mark on
the context (`input_names`), never by the names of a request's fields: a REST form whose fields happen
to be called `name`, `datatype` and `data` is a REST request.

TorchServe's worker folds each request's parameters into a dict, so a form field sent twice would
silently keep its last value. `flag_duplicate_fields` (installed when this module is imported) wraps
that fold and marks such requests, which are then answered 400 naming the field.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
from http import HTTPStatus
from typing import Any

import numpy as np
from PIL import Image
from ts.torch_handler.base_handler import BaseHandler

from cifarlens_runtime.constants import CLASS_PARAM, DEFAULT_BACKEND, LAYER_PARAM, METHOD_PARAM
from cifarlens_runtime.predictor import Predictor
from cifarlens_runtime.responses import encode, error_body
from cifarlens_runtime.service import Reply, Request, RequestError, handle_batch

BODY_KEYS = ("body", "data")
URL_PATH_HEADER = "url_path"
EXPLAIN_HEADER = "explain"  # "True" on /explanations/<model> requests
# What TorchServe's kservev2 envelope sets on the context before it calls the handler.
V2_ENVELOPE_MARK = "input_names"
V2_DATATYPES = ("BYTES", "UINT8")
# The key under which `flag_duplicate_fields` lists a request's repeated form fields.
DUPLICATES_KEY = "\0duplicated"
logger = logging.getLogger(__name__)


def is_v2_batch(context: Any) -> bool:
    """True when TorchServe's kservev2 envelope parsed this batch (it names the inputs on the context)."""
    return getattr(context, V2_ENVELOPE_MARK, None) is not None


def flag_duplicate_fields(service_class: Any) -> None:
    """Wrap `ts.service.Service.retrieve_data_for_inference` so that each request's dict of parameters
    also lists, under DUPLICATES_KEY, the names it received more than once (the dict keeps only one value).

    TorchServe 0.12 is its last release, so the wrapped function will not change under us. Idempotent.
    """
    original = service_class.retrieve_data_for_inference
    if getattr(original, "flags_duplicates", False):
        return

    def retrieve(batch: Any) -> Any:
        headers, inputs, ids = original(batch)
        for request, row in zip(batch or [], inputs):
            names = [p.get("name") for p in request.get("parameters", [])]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                row[DUPLICATES_KEY] = repeated
        return headers, inputs, ids

    retrieve.flags_duplicates = True  # type: ignore[attr-defined]
    service_class.retrieve_data_for_inference = staticmethod(retrieve)


try:  # Inside a TorchServe worker; the handler also runs without it (tests, the UI's local backend).
    from ts.service import Service

    flag_duplicate_fields(Service)
except ImportError:  # pragma: no cover - ts is a dependency of the serving extra
    pass


def v2_image_bytes(tensor: dict[str, Any]) -> bytes:
    """The image of one v2 input: BYTES holds one base64 JPEG/PNG, UINT8 an RGB array (H, W, 3) or (1, H, W, 3).

    The envelope has already taken the first element of a BYTES input and reshaped other tensors to their
    `shape`. A UINT8 array is PNG-encoded so that it takes the same decoding and resizing path as a file.
    """
    datatype, data = tensor.get("datatype"), tensor.get("data")
    if datatype == "BYTES":
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if isinstance(data, (bytes, bytearray)):
            return bytes(data)
        if not isinstance(data, str):
            raise RequestError(400, "a BYTES input holds one base64-encoded JPEG or PNG")
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(400, "a BYTES input holds one base64-encoded JPEG or PNG (not valid base64)") from None
    if datatype == "UINT8":
        arr = np.asarray(data)
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 3 or arr.shape[2] != 3 or not np.issubdtype(arr.dtype, np.integer) or arr.size == 0:
            raise RequestError(400, f"a UINT8 input is one RGB image of shape [H, W, 3], got shape {list(arr.shape)}")
        if arr.min() < 0 or arr.max() > 255:
            raise RequestError(400, "UINT8 values must lie in 0..255")
        buf = io.BytesIO()
        Image.fromarray(arr.astype(np.uint8), "RGB").save(buf, format="PNG")
        return buf.getvalue()
    raise RequestError(400, f"unsupported datatype {datatype!r}: send {' or '.join(V2_DATATYPES)}")


def _text(value: Any) -> str | None:
    """A form field as text (TorchServe passes bytes, str or decoded JSON)."""
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return None if value is None else str(value)


def _rest_request(row: dict[str, Any], i: int, context: Any) -> Request:
    """Request i of a REST batch: its body, route and form fields (and the fields it sent twice)."""
    body = next((row[k] for k in BODY_KEYS if k in row), None)
    return Request(
        body=body,
        route=context.get_request_header(i, URL_PATH_HEADER),
        layer=_text(row.get(LAYER_PARAM)),
        explain=context.get_request_header(i, EXPLAIN_HEADER) == "True",
        target=_text(row.get(CLASS_PARAM)),
        method=_text(row.get(METHOD_PARAM)),
        duplicated=tuple(row.get(DUPLICATES_KEY, ())),
    )


class CifarLensHandler(BaseHandler):
    """Predictions and feature maps of one exported net; the backend comes from model-config.yaml."""

    def initialize(self, context: Any) -> None:
        settings = (getattr(context, "model_yaml_config", None) or {}).get("handler", {}) or {}
        self.predictor = Predictor(
            context.system_properties["model_dir"],
            backend=settings.get("backend", DEFAULT_BACKEND),
            threads=int(settings.get("threads", 1)),
        )
        try:
            self.predictor.gradients()
        except (ImportError, FileNotFoundError, RuntimeError) as exc:  # CAM requests then say why (501)
            logger.warning("gradient CAMs unavailable for %s: %s", self.predictor.name, exc)
        self.context = context
        self.initialized = True

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[bytes] | list[str]:
        rows = [row or {} for row in data or []]
        if rows and is_v2_batch(context):
            return self._handle_v2(rows, context)
        requests = [_rest_request(row, i, context) for i, row in enumerate(rows)]
        replies = handle_batch(self.predictor, requests)
        for i, reply in enumerate(replies):
            context.set_response_status(reply.status, HTTPStatus(reply.status).phrase, i)
            context.set_response_content_type(i, "application/json")
        return [reply.body for reply in replies]

    def _handle_v2(self, tensors: list[dict[str, Any]], context: Any) -> list[str]:
        """The inputs of ONE v2 request (the envelope reads one request per batch): one JSON string per input.

        Predictions only (the feature-map route has no v2 form). The request answers with the worst status of
        its inputs; every output still holds its own answer or error.
        """
        replies: list[Reply | None] = [None] * len(tensors)
        jobs: list[tuple[int, Request]] = []
        for i, tensor in enumerate(tensors):
            try:
                jobs.append((i, Request(body=v2_image_bytes(tensor))))
            except RequestError as exc:
                replies[i] = Reply(exc.code, encode(error_body(exc.message, exc.code)))
        for (i, _), reply in zip(jobs, handle_batch(self.predictor, [req for _, req in jobs]), strict=True):
            replies[i] = reply
        done = [r for r in replies if r is not None]
        status = max(r.status for r in done)
        context.set_response_status(status, HTTPStatus(status).phrase, 0)
        context.set_response_content_type(0, "application/json")
        return [r.body.decode("utf-8") for r in done]
