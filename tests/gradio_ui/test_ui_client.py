"""Backends: the in-process one over real artefacts, the REST one against a small fake TorchServe."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from cifarlens_runtime import responses
from cifarlens_runtime.constants import CLASSES
from cifarlens_runtime.responses import decode_activations
from gradio_ui.client import BackendError, LocalBackend, TorchServeBackend, read_key_file
from gradio_ui.uploads import image_bytes
from training.models import list_models

SERVED = sorted(list_models())


def test_local_models_are_the_exported_ones(local_backend: LocalBackend) -> None:
    assert local_backend.models() == SERVED


def test_local_listing(local_backend: LocalBackend) -> None:
    body = local_backend.listing("se_net")
    assert body["model"] == "se_net"
    assert body["classes"] == list(CLASSES)
    assert body["metrics"]["test_acc"] == 0.1
    assert body["layers"] and all(len(d["shape"]) == 3 for d in body["layers"])


def test_local_predict(local_backend: LocalBackend, example_image) -> None:
    body = local_backend.predict("plain_cnn", image_bytes(example_image[0]))
    probs = [p["probability"] for p in body["predictions"]]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True)
    assert {"model", "backend", "predictions"} <= body.keys()


def test_local_feature_maps_match_listing(local_backend: LocalBackend, example_image) -> None:
    layer = local_backend.listing("inception_net")["layers"][-1]
    body = local_backend.feature_maps("inception_net", layer["name"], image_bytes(example_image[0]))
    act = decode_activations(body)
    assert list(act.shape) == layer["shape"] and act.dtype == np.float32
    assert set(body) == {"model", "backend", "layer", "shape", "dtype", "activations", "predictions"}


def test_local_errors_are_backend_errors(local_backend: LocalBackend, ui_artifacts: Path) -> None:
    with pytest.raises(BackendError, match="unknown layer") as exc:
        local_backend.feature_maps("se_net", "nope", image_bytes(_red()))
    assert exc.value.status == 404
    with pytest.raises(BackendError, match="not a readable image") as exc:
        local_backend.predict("se_net", b"not an image")
    assert exc.value.status == 400
    with pytest.raises(BackendError, match="make export"):
        LocalBackend(ui_artifacts / "missing").models()
    with pytest.raises(
        BackendError, match="unknown net 'no_such_net': this page serves inception_net, plain_cnn, se_net"
    ):
        local_backend.predict("no_such_net", image_bytes(_red()))


def _red():
    from PIL import Image

    return Image.new("RGB", (32, 32), (200, 30, 30))


# --- REST client against a fake TorchServe ---


class _Fake(BaseHTTPRequestHandler):
    """Answers like TorchServe with token auth on: 401 without the right key, JSON bodies otherwise."""

    keys = {"inference": "inf-1", "management": "man-1"}
    seen: list[tuple[str, str, str | None]] = []

    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self, kind: str) -> bool:
        ok = self.headers.get("Authorization") == f"Bearer {self.keys[kind]}"
        if not ok:
            self._send(401, {"code": 401, "type": "InvalidKeyException", "message": "Token Authorization failed."})
        return ok

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.seen.append(("GET", self.path, self.headers.get("Authorization")))
        if self.path.startswith("/models") and self._authorised("management"):
            self._send(200, {"models": [{"modelName": n, "modelUrl": f"{n}.mar"} for n in reversed(list_models())]})
        elif self.path == "/ping" and self._authorised("inference"):
            self._send(200, {"status": "Healthy"})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        self.seen.append(("POST", self.path, self.headers.get("Authorization")))
        if not self._authorised("inference"):
            return
        if body == b"boom":
            self._send(503, responses.error_body("model is not ready", 503))
        elif self.path.startswith("/predictions/plain_cnn/1.0/feature_maps"):
            self._send(200, {"model": "plain_cnn", "layers": [{"name": "conv1", "shape": [8, 32, 32]}]})
        elif self.path.startswith("/predictions/"):
            probs = np.full(len(CLASSES), 0.1)
            self._send(200, responses.prediction_body(self.path.split("/")[2], "onnxruntime", probs, CLASSES))


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
    _Fake.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    key_file = tmp_path / "key_file.json"
    key_file.write_text(json.dumps({k: {"key": v} for k, v in _Fake.keys.items()} | {"API": {"key": "api"}}))
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", key_file
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rest_uses_keys_from_key_file(fake_server) -> None:
    url, key_file = fake_server
    backend = TorchServeBackend(url, management_url=url, key_file=key_file, timeout=5)
    assert backend.models() == SERVED
    assert backend.ping() == "Healthy"
    body = backend.predict("se_net", b"png")
    assert body["model"] == "se_net" and len(body["predictions"]) == 5
    assert ("GET", "/models?limit=100", "Bearer man-1") in _Fake.seen
    assert any(m == "POST" and p == "/predictions/se_net" and a == "Bearer inf-1" for m, p, a in _Fake.seen)


def test_rest_feature_routes(fake_server) -> None:
    url, key_file = fake_server
    backend = TorchServeBackend(url, management_url=url, key_file=key_file, timeout=5)
    assert backend.listing("plain_cnn")["layers"][0]["name"] == "conv1"
    backend.listing("plain_cnn")  # cached: no second request
    assert sum(p.startswith("/predictions/plain_cnn/1.0/feature_maps") for _, p, _ in _Fake.seen) == 1
    backend.feature_maps("plain_cnn", "conv1", b"png")
    assert _Fake.seen[-1][1] == "/predictions/plain_cnn/1.0/feature_maps/conv1"


def test_rest_rereads_key_file_after_restart(fake_server) -> None:
    url, key_file = fake_server
    backend = TorchServeBackend(url, management_url=url, key_file=key_file, timeout=5)
    key_file.write_text(json.dumps({"inference": {"key": "stale"}, "management": {"key": "stale"}}))
    with pytest.raises(BackendError, match="401") as exc:
        backend.predict("se_net", b"png")
    assert "CIFARLENS_KEY_FILE" in str(exc.value) and exc.value.status == 401
    key_file.write_text(json.dumps({k: {"key": v} for k, v in _Fake.keys.items()}))
    assert backend.predict("se_net", b"png")["model"] == "se_net"


def test_rest_error_body_is_reported(fake_server) -> None:
    url, key_file = fake_server
    backend = TorchServeBackend(url, management_url=url, key_file=key_file, timeout=5)
    with pytest.raises(BackendError, match="503: model is not ready"):
        backend.predict("se_net", b"boom")


@pytest.mark.parametrize("name", ["../ping", "../api-description", "se_net/1.0/feature_maps/se1", "SE_NET", ""])
def test_rest_names_are_checked_before_a_url_is_built(fake_server, name: str) -> None:
    """A net the server does not list never reaches a URL: the refusal names the served nets."""
    url, key_file = fake_server
    backend = TorchServeBackend(url, management_url=url, key_file=key_file, timeout=5)
    for call in (
        lambda: backend.predict(name, b"png"),
        lambda: backend.feature_maps(name, "conv1", b"png"),
        lambda: backend.cam(name, b"png"),
        lambda: backend.listing(name),
    ):
        with pytest.raises(BackendError, match=f"unknown net '{re.escape(name)}': this server serves inception_net"):
            call()
    assert not [p for m, p, _ in _Fake.seen if m == "POST"]
    with pytest.raises(BackendError, match="unknown layer '../../ping': plain_cnn has conv1"):
        backend.feature_maps("plain_cnn", "../../ping", b"png")
    with pytest.raises(BackendError, match="unknown class '³'"):
        backend.cam("plain_cnn", b"png", target="³")
    with pytest.raises(BackendError, match="unknown method 'lime'"):
        backend.cam("plain_cnn", b"png", method="lime")


def test_rest_inference_token_only_falls_back_to_known_models(fake_server) -> None:
    url, _ = fake_server
    backend = TorchServeBackend(url, management_url=url, token="inf-1", timeout=5, known_models=["se_net", "a"])
    assert backend.models() == ["a", "se_net"]
    assert backend.predict("se_net", b"png")["model"] == "se_net"
    with pytest.raises(BackendError, match="unknown net 'plain_cnn': this server serves a, se_net"):
        backend.predict("plain_cnn", b"png")
    with pytest.raises(BackendError, match="refused the management token"):  # nothing known: the refusal shows
        TorchServeBackend(url, management_url=url, token="inf-1", timeout=5).models()


def test_a_refusal_states_the_key_lifetime_the_server_uses(fake_server) -> None:
    """The keys last TOKEN_EXPIRATION_MIN (config.properties and the renewer use it), renewed at half of it."""
    from cifarlens_runtime.constants import TOKEN_EXPIRATION_MIN

    url, _ = fake_server
    with pytest.raises(BackendError) as exc:
        TorchServeBackend(url, management_url=url, token="wrong", timeout=5).predict("se_net", b"png")
    hours = TOKEN_EXPIRATION_MIN / 60
    assert f"Keys last {hours:g} h; the server renews them every {hours / 2:g} h" in str(exc.value), exc.value


def test_rest_unreachable_says_so() -> None:
    port = _free_port()
    backend = TorchServeBackend(f"http://127.0.0.1:{port}", management_url=f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(BackendError, match=f"unreachable at 127.0.0.1:{port}.*make serve"):
        backend.predict("se_net", b"png")
    with pytest.raises(BackendError, match="unreachable"):
        backend.models()


def test_rest_missing_key_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="make serve"):
        read_key_file(tmp_path / "key_file.json")
    backend = TorchServeBackend(f"http://127.0.0.1:{_free_port()}", key_file=tmp_path / "key_file.json")
    with pytest.raises(BackendError, match="unreachable"):  # the likelier cause comes first
        backend.predict("se_net", b"png")


def test_rest_missing_key_file_with_server_up(fake_server, tmp_path: Path) -> None:
    url, _ = fake_server
    backend = TorchServeBackend(url, management_url=url, key_file=tmp_path / "nowhere.json", timeout=5)
    with pytest.raises(BackendError, match="401.*No key file at") as exc:
        backend.predict("se_net", b"png")
    assert str(tmp_path / "nowhere.json") in str(exc.value)


def test_from_env(tmp_path: Path) -> None:
    env = {
        "CIFARLENS_URL": "http://example.invalid:9080/",
        "CIFARLENS_TOKEN": "tok",
        "CIFARLENS_KEY_FILE": str(tmp_path / "k.json"),
        "CIFARLENS_TIMEOUT": "3",
    }
    backend = TorchServeBackend.from_env(env)
    assert backend.url == "http://example.invalid:9080"
    assert backend.management_url == "http://127.0.0.1:8081"
    assert backend._headers("inference") == {"Authorization": "Bearer tok"}
    assert backend.timeout == 3.0 and backend.key_file == tmp_path / "k.json"
    assert TorchServeBackend.from_env({}).management_url == "http://127.0.0.1:8081"
    assert TorchServeBackend.from_env({"CIFARLENS_URL": "http://h:8080"}).management_url == "http://h:8081"
