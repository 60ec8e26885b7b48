"""TorchServe handler shared by every cifarlens archive.

Overrides `initialize` and `handle` of BaseHandler: the model is an ONNX graph (or a TorchScript
module) from `serving.export`, never a `torch.load`ed pickle, and the request logic lives in
`cifarlens_runtime.service` (the package ships whole in every archive). TorchServe requires this
file to define exactly one class. On the ONNX Runtime backend nothing the request path runs imports
torch (TorchServe's own BaseHandler and worker do, which is outside the hot path).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from ts.torch_handler.base_handler import BaseHandler

from cifarlens_runtime.constants import DEFAULT_BACKEND, LAYER_PARAM
from cifarlens_runtime.predictor import Predictor
from cifarlens_runtime.service import Request, handle_batch

BODY_KEYS = ("body", "data")
URL_PATH_HEADER = "url_path"


class CifarLensHandler(BaseHandler):
    """Predictions and feature maps of one exported net; the backend comes from model-config.yaml."""

    def initialize(self, context: Any) -> None:
        settings = (getattr(context, "model_yaml_config", None) or {}).get("handler", {}) or {}
        self.predictor = Predictor(
            context.system_properties["model_dir"],
            backend=settings.get("backend", DEFAULT_BACKEND),
            threads=int(settings.get("threads", 1)),
        )
        self.context = context
        self.initialized = True

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[bytes]:
        requests = []
        for i, row in enumerate(data or []):
            row = row or {}
            body = next((row[k] for k in BODY_KEYS if k in row), None)
            layer = row.get(LAYER_PARAM)
            if isinstance(layer, (bytes, bytearray)):
                layer = layer.decode("utf-8", "replace")
            requests.append(Request(body=body, route=context.get_request_header(i, URL_PATH_HEADER), layer=layer))
        replies = handle_batch(self.predictor, requests)
        for i, reply in enumerate(replies):
            context.set_response_status(reply.status, HTTPStatus(reply.status).phrase, i)
            context.set_response_content_type(i, "application/json")
        return [reply.body for reply in replies]
