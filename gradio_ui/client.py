"""Where the page gets its answers: TorchServe over REST, or the exported nets in process.

Both backends return the same JSON bodies (built by `cifarlens_runtime.responses` on both sides), so the page
does not know which one it talks to. Every failure becomes a `BackendError` whose message is shown
on the page as is: it says what went wrong and what to do.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import requests

from cifarlens_runtime.constants import (
    ARCHIVE_VERSION,
    CLASS_PARAM,
    CLASSES,
    DEFAULT_BACKEND,
    DEFAULT_WORKDIR,
    EXPLANATIONS_ROUTE,
    FEATURE_ROUTE,
    KEY_FILE,
    LAYER_PARAM,
    METHOD_PARAM,
    Ports,
    url,
)
from cifarlens_runtime.files import KeyFileError
from cifarlens_runtime.files import read_key_file as _read_key_file
from cifarlens_runtime.keys import lifetime_text, refused, renewal_period_s
from cifarlens_runtime.predictor import exported_models
from cifarlens_runtime.vocabulary import METHODS, class_index

DEFAULT_URL = url(Ports.inference)
DEFAULT_MANAGEMENT_URL = url(Ports.management)
DEFAULT_TIMEOUT = 30.0
# Model metadata changes only when the server restarts with new archives.
LISTING_TTL_S = 60.0
ENV_URL = "CIFARLENS_URL"
ENV_MANAGEMENT_URL = "CIFARLENS_MANAGEMENT_URL"
ENV_TOKEN = "CIFARLENS_TOKEN"
ENV_MANAGEMENT_TOKEN = "CIFARLENS_MANAGEMENT_TOKEN"
ENV_KEY_FILE = "CIFARLENS_KEY_FILE"
ENV_TIMEOUT = "CIFARLENS_TIMEOUT"
OCTET_STREAM = "application/octet-stream"


class BackendError(RuntimeError):
    """A request that failed, with a message meant for the page."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Backend(Protocol):
    """What the page needs from a backend; every method raises `BackendError` on failure."""

    name: str
    location: str

    def ping(self) -> str: ...

    def models(self) -> list[str]: ...

    def listing(self, model: str) -> dict[str, Any]: ...

    def predict(self, model: str, image: bytes) -> dict[str, Any]: ...

    def feature_maps(self, model: str, layer: str, image: bytes) -> dict[str, Any]: ...

    def cam(
        self,
        model: str,
        image: bytes,
        layer: str | None = None,
        target: str | None = None,
        method: str | None = None,
    ) -> dict[str, Any]: ...


def _cam_fields(layer: str | None, target: str | None, method: str | None) -> dict[str, str]:
    """The explanations request's form fields that are set (the server's defaults fill the others)."""
    fields = {LAYER_PARAM: layer, CLASS_PARAM: target, METHOD_PARAM: method}
    return {k: v for k, v in fields.items() if v}


def checked(kind: str, value: str, allowed: Sequence[str], owner: str) -> str:
    """`value` if it is one of `allowed`, else a BackendError (404) that names the choices.

    Every name a caller gives (net, layer) is checked against what the server lists before it goes into a URL:
    '../ping' or 'se_net/1.0/feature_maps/se1' must not reach other routes.
    """
    if value not in allowed:
        raise BackendError(f"unknown {kind} '{value}': {owner} {', '.join(allowed) or 'nothing'}", status=404)
    return value


def cam_choices(target: str | None, method: str | None) -> tuple[str | None, str | None]:
    """The class (its name) and method of a CAM request, checked; empty means the server's default.

    Classes and methods match case-insensitively after trimming whitespace (" DOG ", "GradCAM").
    """
    try:
        index = class_index(target)
    except ValueError as exc:
        raise BackendError(str(exc), status=400) from None
    name = (method or "").strip().lower() or None
    if name is not None and name not in METHODS:
        raise BackendError(f"unknown method '{method}': use one of {', '.join(METHODS)}", status=400)
    return (None if index is None else CLASSES[index]), name


def read_key_file(path: str | Path) -> dict[str, str]:
    """{'inference': key, 'management': key, ...} from TorchServe's key_file.json, or a BackendError for the page."""
    try:
        return _read_key_file(path)
    except KeyFileError as exc:
        raise BackendError(f"{exc} (run `make serve`), or set {ENV_TOKEN}") from None


class TorchServeBackend:
    """TorchServe over REST with token authorisation.

    The inference (and management) key comes from the constructor, else from the environment
    (CIFARLENS_TOKEN, CIFARLENS_MANAGEMENT_TOKEN), else from TorchServe's key_file.json
    (CIFARLENS_KEY_FILE), which is re-read on every request: a restarted server writes new keys.
    """

    name = "torchserve"

    def __init__(
        self,
        url: str = DEFAULT_URL,
        management_url: str | None = None,
        token: str | None = None,
        management_token: str | None = None,
        key_file: str | Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        version: str | None = None,
        session: requests.Session | None = None,
        known_models: Sequence[str] = (),
    ) -> None:
        self.url = url.rstrip("/")
        self.management_url = (management_url or _management_from(self.url)).rstrip("/")
        self.token = token or None
        self.management_token = management_token or None
        self.key_file = Path(key_file) if key_file else None
        self.timeout = timeout
        self.version = version or ARCHIVE_VERSION
        self.session = session or requests.Session()
        # Never route calls to the local server through an HTTP proxy.
        self.session.trust_env = False
        # Names to offer when only an inference key is known (the management API lists models).
        self.known_models = sorted(known_models)
        self._listings: dict[str, tuple[float, dict[str, Any]]] = {}
        self._served: tuple[float, list[str]] | None = None

    @property
    def location(self) -> str:
        return self.url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> TorchServeBackend:
        """Build from CIFARLENS_URL, CIFARLENS_MANAGEMENT_URL, CIFARLENS_TOKEN, CIFARLENS_MANAGEMENT_TOKEN,
        CIFARLENS_KEY_FILE (default: .ts_tmp/serve/key_file.json, where `make serve` runs TorchServe) and CIFARLENS_TIMEOUT."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {
            "url": env.get(ENV_URL) or DEFAULT_URL,
            "management_url": env.get(ENV_MANAGEMENT_URL) or None,
            "token": env.get(ENV_TOKEN) or None,
            "management_token": env.get(ENV_MANAGEMENT_TOKEN) or None,
            "key_file": env.get(ENV_KEY_FILE) or default_key_file(),
            "timeout": float(env.get(ENV_TIMEOUT) or DEFAULT_TIMEOUT),
        }
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kwargs)

    # --- authorisation ---

    def _key(self, kind: str) -> str | None:
        """The explicit key of `kind`, else the one in the key file now (renewed keys replace it there)."""
        explicit = self.token if kind == "inference" else self.management_token
        if explicit:
            return explicit
        if self.key_file is None or not self.key_file.is_file():
            # No key file (yet): send no token, so an unreachable server is reported as such, and a
            # refusal says where the key file was expected.
            return None
        return read_key_file(self.key_file).get(kind) or None

    def _headers(self, kind: str) -> dict[str, str]:
        key = self._key(kind)
        return {"Authorization": f"Bearer {key}"} if key else {}

    # --- transport ---

    def _request(self, method: str, url: str, kind: str, **kwargs: Any) -> dict[str, Any]:
        """One call; a refused key read from the key file is read again and the call retried once (the server's
        renewer replaces keys, and TorchServe refuses the old one at once)."""
        extra = kwargs.pop("headers", {})
        from_file = self.key_file is not None and not (self.token if kind == "inference" else self.management_token)
        for attempt in range(2):
            try:
                resp = self.session.request(
                    method, url, headers={**self._headers(kind), **extra}, timeout=self.timeout, **kwargs
                )
            except requests.ConnectionError:
                raise BackendError(
                    f"TorchServe is unreachable at {url.split('/', 3)[:3][-1]}: connection refused. "
                    "Start it with `make serve` (or run the page with --backend local)."
                ) from None
            except requests.Timeout:
                raise BackendError(f"TorchServe did not answer {url} within {self.timeout:g} s") from None
            except requests.RequestException as exc:
                raise BackendError(f"request to {url} failed: {exc}") from None
            if not (attempt == 0 and from_file and refused(resp.status_code, resp.text)):
                break
        if resp.status_code >= 400:
            message = _error_message(resp, kind)
            if resp.status_code in (400, 401) and self._key(kind) is None and self.key_file is not None:
                message += f" No key file at {self.key_file}: is this the server `make serve` started?"
            raise BackendError(message, status=resp.status_code)
        try:
            return resp.json()
        except ValueError:
            raise BackendError(f"{url} answered {resp.status_code} with a body that is not JSON") from None

    def _prediction_url(self, model: str, suffix: str | None = None) -> str:
        model = quote(self._model(model), safe="")
        if suffix is None:
            return f"{self.url}/predictions/{model}"
        return f"{self.url}/predictions/{model}/{self.version}/{suffix}"

    def _model(self, model: str) -> str:
        """`model` if the server serves it (its list is kept LISTING_TTL_S, re-read once for a name not in it)."""
        now = time.monotonic()
        if self._served is None or now - self._served[0] >= LISTING_TTL_S or model not in self._served[1]:
            self._served = (now, self.models())
        return checked("net", model, self._served[1], "this server serves")

    def _layer(self, model: str, layer: str) -> str:
        """`layer` if `model` lists it."""
        return checked("layer", layer, [d["name"] for d in self.listing(model).get("layers", [])], f"{model} has")

    # --- API ---

    def ping(self) -> str:
        """TorchServe's health status ('Healthy' or 'Unhealthy')."""
        return str(self._request("GET", f"{self.url}/ping", "inference").get("status", "unknown"))

    def models(self) -> list[str]:
        """Registered models (sorted by name), from the management API; `known_models` when only an
        inference key is known."""
        try:
            body = self._request("GET", f"{self.management_url}/models", "management", params={"limit": 100})
        except BackendError as exc:
            if exc.status in (400, 401, 403) and self._key("inference") and self.known_models:
                return list(self.known_models)
            raise
        return sorted(m["modelName"] for m in body.get("models", []))

    def listing(self, model: str) -> dict[str, Any]:
        """Classes, normalisation, metrics and layers of `model` (the feature-map route without a layer)."""
        now = time.monotonic()
        cached = self._listings.get(model)
        if cached and now - cached[0] < LISTING_TTL_S:
            return cached[1]
        url = self._prediction_url(model, FEATURE_ROUTE)  # checks the name
        body = self._request("POST", url, "inference", data=b"", headers={"Content-Type": OCTET_STREAM})
        self._listings[model] = (now, body)
        return body

    def predict(self, model: str, image: bytes) -> dict[str, Any]:
        return self._request("POST", self._prediction_url(model), "inference", data=image, headers=_image_type(image))

    def feature_maps(self, model: str, layer: str, image: bytes) -> dict[str, Any]:
        """The layer goes in the path: TorchServe 0.12 drops the query string before the handler."""
        url = self._prediction_url(model, f"{FEATURE_ROUTE}/{quote(self._layer(model, layer), safe='')}")
        return self._request("POST", url, "inference", data=image, headers=_image_type(image))

    def cam(
        self,
        model: str,
        image: bytes,
        layer: str | None = None,
        target: str | None = None,
        method: str | None = None,
    ) -> dict[str, Any]:
        """A class activation map from TorchServe's explanations API: the image and the choices as form fields."""
        mime = _image_type(image)["Content-Type"]
        target, method = cam_choices(target, method)
        layer = self._layer(model, layer) if layer else None
        return self._request(
            "POST",
            f"{self.url}/{EXPLANATIONS_ROUTE}/{quote(self._model(model), safe='')}",
            "inference",
            files={"data": ("image", image, mime)},
            data=_cam_fields(layer, target, method),
        )


def default_key_file() -> Path:
    """The key file of the server `make serve` starts (its working directory), else key_file.json here."""
    candidates = [Path.cwd() / DEFAULT_WORKDIR / KEY_FILE, Path.cwd() / KEY_FILE]
    return next((p for p in candidates if p.is_file()), candidates[0])


def _management_from(inference_url: str) -> str:
    """The management URL beside an inference URL: same host, the default management port beside the
    default inference port."""
    default = f":{Ports.inference}"
    if inference_url.endswith(default):
        return inference_url[: -len(default)] + f":{Ports.management}"
    return DEFAULT_MANAGEMENT_URL


def _error_message(resp: requests.Response, kind: str) -> str:
    """A one-line explanation of an HTTP error from TorchServe or the handler."""
    try:
        body = resp.json()
        detail = body.get("error") or body.get("message") or json.dumps(body)
    except ValueError:
        detail = resp.text.strip()[:200] or resp.reason
    if refused(resp.status_code, resp.text) or (resp.status_code == 400 and "token" in str(detail).lower()):
        return (
            f"TorchServe refused the {kind} token ({resp.status_code}): {detail}. Set {ENV_TOKEN}/{ENV_MANAGEMENT_TOKEN} "
            f"or point {ENV_KEY_FILE} at the key file of the running server (read again, and the request retried "
            f"once, after a refusal). Keys last {lifetime_text()}; the server renews them every "
            f"{lifetime_text(renewal_period_s() / 60)}, so a refusal that stays means another server or a stopped renewer."
        )
    return f"TorchServe answered {resp.status_code}: {detail}"


def _image_type(image: bytes) -> dict[str, str]:
    """A Content-Type that is not a form: TorchServe parses form bodies and fails on image bytes."""
    if image.startswith(b"\x89PNG"):
        return {"Content-Type": "image/png"}
    if image.startswith(b"\xff\xd8"):
        return {"Content-Type": "image/jpeg"}
    return {"Content-Type": OCTET_STREAM}


class LocalBackend:
    """The exported nets run in process with ONNX Runtime (no Java, no server), answered by the same
    `cifarlens_runtime.service` code as the TorchServe handler, so the JSON is identical."""

    name = "local"

    def __init__(self, artifacts: str | Path = "artifacts", engine: str | None = None) -> None:
        self.artifacts = Path(artifacts)
        self.engine = engine or DEFAULT_BACKEND
        self._predictors: dict[str, Any] = {}

    @property
    def location(self) -> str:
        return f"{self.artifacts} (in process, {self.engine})"

    def ping(self) -> str:
        """'Healthy' once at least one exported model is there."""
        self.models()
        return "Healthy"

    def models(self) -> list[str]:
        """The exported nets under the artefacts folder, sorted by name."""
        if not self.artifacts.is_dir():
            raise BackendError(f"no artefacts folder {self.artifacts}: run `make export` first")
        names = exported_models(self.artifacts)
        if not names:
            raise BackendError(f"no exported models under {self.artifacts}: run `make export` first")
        return names

    def _predictor(self, model: str) -> Any:
        if model not in self._predictors:
            checked("net", model, self.models(), "this page serves")
            from cifarlens_runtime.predictor import Predictor

            try:
                self._predictors[model] = Predictor(self.artifacts / model, backend=self.engine)
            except (FileNotFoundError, ValueError, KeyError) as exc:
                raise BackendError(f"cannot load {model}: {exc}", status=404) from None
        return self._predictors[model]

    def _call(self, model: str, image: bytes | None, route: str | None, **params: Any) -> dict[str, Any]:
        """One request through `cifarlens_runtime.service.handle_batch`, exactly as the TorchServe handler answers it."""
        from cifarlens_runtime.service import Request, handle_batch

        reply = handle_batch(self._predictor(model), [Request(body=image, route=route, **params)])[0]
        body = json.loads(reply.body)
        if reply.status >= 400:
            raise BackendError(f"{model} answered {reply.status}: {body.get('error', body)}", status=reply.status)
        return body

    def listing(self, model: str) -> dict[str, Any]:
        return self._call(model, None, FEATURE_ROUTE)

    def predict(self, model: str, image: bytes) -> dict[str, Any]:
        return self._call(model, image, None)

    def feature_maps(self, model: str, layer: str, image: bytes) -> dict[str, Any]:
        return self._call(model, image, f"{FEATURE_ROUTE}/{layer}")

    def cam(
        self,
        model: str,
        image: bytes,
        layer: str | None = None,
        target: str | None = None,
        method: str | None = None,
    ) -> dict[str, Any]:
        return self._call(model, image, None, explain=True, layer=layer or None, target=target or None, method=method)
