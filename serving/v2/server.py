"""KServe's ModelServer for the exported nets, on one address (loopback by default), with bounded requests.

KServe's SDK (0.21) always listens on every interface (uvicorn on 0.0.0.0, gRPC on [::]) and has no
authentication. Here its own REST server, gRPC servicer and data plane are put together as its `ModelServer.start`
does, but on `host`; only 0.0.0.0 opens the server to other machines (in a pod, behind KServe's own
authentication). Other differences from the SDK's defaults, each for a reason:

- the server metadata lists the `binary_tensor_data` extension, which it serves; the SDK's model repository
  routes (load, unload) are not served, since anyone who can reach the port could unload a net, nor are its v1
  routes (these nets speak v2);
- a REST body over V2_MAX_REQUEST_BYTES is answered 413 before it is parsed; a larger gRPC message is refused
  with RESOURCE_EXHAUSTED;
- malformed requests are answered 400 in words (`serving.v2.errors`), binary REST bodies are read by
  `serving.v2.binary`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from grpc import aio
from grpc_interceptor.exceptions import Unimplemented
from kserve import ModelServer
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING, INFERENCE_CONTENT_LENGTH_HEADER
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.infer_type import InferRequest
from kserve.protocol.rest.server import RESTServer
from uvicorn.importer import import_from_string

from cifarlens_runtime.constants import HOST, V2_GRPC_PORT, V2_MAX_REQUEST_BYTES, V2_MAX_RESPONSE_BYTES, V2_REST_PORT
from cifarlens_runtime.predictor import exported_models
from serving.v2.binary import binary_request
from serving.v2.errors import add_error_handlers
from serving.v2.model import CifarNet

EXTENSIONS: tuple[str, ...] = ("binary_tensor_data",)
# Seconds the servers wait for requests in flight when told to stop (the SDK waits 30).
GRACE_S = 3
# REST paths served: the protocol's /v2 routes, the SDK's liveness at / and its Prometheus metrics.
_KEPT_ROOTS = ("/", "/metrics")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class CifarDataPlane(DataPlane):
    """The SDK's data plane, with this server's extensions and its own reader of binary REST bodies."""

    def metadata(self) -> dict:
        """Server metadata: the SDK's name and version, and the extensions served here."""
        return {**super().metadata(), "extensions": list(EXTENSIONS)}

    def decode_inference_request(self, body: Any, headers: dict, model_name: str) -> InferRequest:
        """JSON bodies as the SDK reads them (already checked by its pydantic model); binary ones here."""
        if isinstance(body, bytes):
            return binary_request(body, headers.get(INFERENCE_CONTENT_LENGTH_HEADER), model_name)
        return super().decode_inference_request(body, headers, model_name)


class BodyLimit:
    """ASGI middleware: a REST body over `limit` bytes is answered 413 in words, and never reaches the app."""

    def __init__(self, app: Callable, limit: int = V2_MAX_REQUEST_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def _refuse(self, send: Send, size: str) -> None:
        body = orjson.dumps({"error": f"the request is {size} bytes, over the limit of {self.limit} bytes"})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send, declared.decode())
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.limit:
                return await self._refuse(send, f"over {self.limit}")
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay() -> MutableMapping[str, Any]:
            return messages.pop(0) if messages else await receive()

        return await self.app(scope, replay, send)


class ServedPaths:
    """ASGI middleware: only the protocol's /v2 routes (less the model repository's), the SDK's liveness at / and
    its Prometheus metrics are served; any other path is answered 404 in words before the SDK's app sees it."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or _served(path):
            return await self.app(scope, receive, send)
        body = orjson.dumps({"error": f"{path} is not served here: the Open Inference Protocol's routes are /v2/..."})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _served(path: str) -> bool:
    return path in _KEPT_ROOTS or (path.startswith("/v2") and not path.startswith("/v2/repository"))


class BoundRESTServer(RESTServer):
    """The SDK's uvicorn REST server on `host`, serving only the v2 routes, with the handlers above."""

    def __init__(self, host: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.host = host

    def create_application(self) -> None:
        """The SDK's app (routes, middlewares, handlers) behind the path gate and the body limit, in words."""
        super().create_application()
        app = import_from_string(FASTAPI_APP_IMPORT_STRING)
        add_error_handlers(app)
        app.add_middleware(BodyLimit, limit=V2_MAX_REQUEST_BYTES)
        app.add_middleware(ServedPaths)


class ServedServicer(InferenceServicer):
    """The SDK's gRPC servicer without the model repository extension (as on REST)."""

    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:  # noqa: N802 (the protocol's name)
        """Refused: the nets are loaded at start."""
        raise Unimplemented("this server loads its nets when it starts: the model repository extension is off")

    RepositoryModelUnload = RepositoryModelLoad


class BoundGRPCServer(GRPCServer):
    """The SDK's gRPC server on `host`, with bounded messages; its `start` otherwise as the SDK's."""

    def __init__(self, host: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._host = f"[{host}]" if ":" in host else host

    async def start(self, max_workers: int) -> None:
        """Serve until stopped."""
        self._server = aio.server(
            ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(ExceptionToStatusInterceptor(),),
            options=[
                ("grpc.max_receive_message_length", V2_MAX_REQUEST_BYTES),
                ("grpc.max_send_message_length", V2_MAX_RESPONSE_BYTES + 2**20),
            ],
        )
        servicer = ServedServicer(self._data_plane, self._model_repository_extension)
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        self._server.add_insecure_port(f"{self._host}:{self._port}")
        await self._server.start()
        await self._server.wait_for_termination()


class V2ModelServer(ModelServer):
    """KServe's ModelServer with REST and gRPC on `host` (HOST, loopback, unless told otherwise)."""

    def __init__(self, host: str = HOST, http_port: int = V2_REST_PORT, grpc_port: int = V2_GRPC_PORT) -> None:
        super().__init__(
            http_port=http_port,
            grpc_port=grpc_port,
            workers=1,
            enable_grpc=True,
            enable_docs_url=False,
            enable_latency_logging=False,
            grace_period=GRACE_S,
        )
        self.host = host
        self.dataplane = CifarDataPlane(model_registry=self.registered_models)

    def start(self, models: list[Any]) -> None:
        """Register the (loaded) models and serve REST and gRPC until a signal stops the process."""
        self._register_and_check_atleast_one_model_is_ready(models)
        self._rest_server = BoundRESTServer(
            self.host,
            FASTAPI_APP_IMPORT_STRING,
            self.dataplane,
            self.model_repository_extension,
            self.http_port,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
        )
        self._grpc_server = BoundGRPCServer(
            self.host, self.grpc_port, self.dataplane, self.model_repository_extension, {}, self.grace_period
        )
        self.servers += [self._rest_server.start(), self._grpc_server.start(self.max_threads)]
        self.setup_event_loop()
        self.register_signal_handler()
        asyncio.run(self._serve())


def serve(
    artifacts: str | Path,
    host: str = HOST,
    rest_port: int = V2_REST_PORT,
    grpc_port: int = V2_GRPC_PORT,
    threads: int = 1,
) -> None:
    """Load every net under `artifacts` and serve them until the process is told to stop."""
    names = exported_models(artifacts)
    if not names:
        raise FileNotFoundError(f"no exported nets under {artifacts}: run `make export` first")
    nets = [CifarNet(Path(artifacts) / name, threads) for name in names]
    for net in nets:
        net.load()
    server = V2ModelServer(host, rest_port, grpc_port)
    # The SDK's timing middleware logs two lines a request at INFO; uvicorn's access log says the same once.
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    server.start(nets)
