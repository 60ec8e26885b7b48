"""Keys renew before they expire: a real TorchServe whose keys last one minute, past the original keys' expiry.

The server (serving.server.start_server, as `make serve` and the benchmarks start it) runs with the key renewer
beside it. After the keys TorchServe made at start have expired, REST calls with the key file, the page's backend
(`TorchServeBackend(key_file=...)`, with the full key file and with the inference-only one) still work, and a
refused key is read again from the file and retried exactly once. Wall time: the start plus one key lifetime.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from cifarlens_runtime.keys import expiries, refused
from gradio_ui.client import BackendError, TorchServeBackend

LIFETIME_MIN = 1
TIMEOUT = 60


@dataclass
class Renewing:
    """The server, its keys and their expiry as TorchServe wrote them at start."""

    server: object
    original: dict[str, str]
    original_expiry: float
    models: list[str]


@pytest.fixture(scope="module")
def renewing(serving_model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Renewing]:
    """A real TorchServe with one-minute keys, handed over once the keys it started with have expired."""
    from serving.server import Ports, free_ports, read_key_file, start_server, stop

    if shutil.which("java") is None:
        pytest.skip("TorchServe needs Java")
    workdir = tmp_path_factory.mktemp("renewing")
    server = start_server(
        serving_model_store, Ports(*free_ports()), workdir, foreground=True, token_expiration_min=LIFETIME_MIN
    )
    try:
        original = read_key_file(server.key_file)
        # The keys made at start expire together, a minute after the file was first written.
        expiry = max(expiries(server.key_file))
        assert expiry <= time.time() + LIFETIME_MIN * 60
        time.sleep(max(expiry - time.time(), 0) + 2)
        models = sorted(p.stem for p in serving_model_store.glob("*.mar"))
        yield Renewing(server, original, expiry, models)
    finally:
        stop(server)


def _get(url: str, key: str) -> requests.Response:
    return requests.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=TIMEOUT)


def _with_key_file(server, call) -> requests.Response:
    """`call(key)` with the inference key read from the key file; after a refusal, read again and retry once."""
    resp = call(server.token("inference"))
    return call(server.token("inference")) if refused(resp.status_code, resp.text) else resp


def test_original_keys_expired_and_were_replaced(renewing: Renewing) -> None:
    """The start's keys are refused now; the file holds newer keys, renewed when half their minute was left."""
    from serving.server import RENEWER_LOG, read_key_file

    server = renewing.server
    assert time.time() > renewing.original_expiry
    ping = _get(f"{server.inference_url}/ping", renewing.original["inference"])
    assert refused(ping.status_code, ping.text), (ping.status_code, ping.text)
    listing = _get(f"{server.management_url}/models", renewing.original["management"])
    assert refused(listing.status_code, listing.text), (listing.status_code, listing.text)
    now = read_key_file(server.key_file)
    assert now["inference"] != renewing.original["inference"]
    assert now["management"] != renewing.original["management"]
    assert now["API"] == renewing.original["API"]  # the API key does not expire and is never renewed
    # Renewed at half the lifetime: each renewal moves the expiry on by at least half a minute.
    assert min(expiries(server.key_file)) >= renewing.original_expiry + LIFETIME_MIN * 60 / 2 - 5
    log = (server.log_dir / RENEWER_LOG).read_text()
    assert "renewed the inference and management keys" in log, log
    # The inference-only file follows (the page's container reads it): the current key, nothing else.
    only = json.loads(server.inference_key_file.read_text())
    assert list(only) == ["inference"]
    assert only["inference"]["key"] in (now["inference"], read_key_file(server.key_file)["inference"])
    assert server.inference_key_file.stat().st_mode & 0o077 == 0


def test_rest_with_the_key_file_after_expiry(renewing: Renewing, cifar10_test_jpegs) -> None:
    """Predictions of every net and the management listing, with keys read from the key file."""
    server = renewing.server
    [(_, jpeg)] = cifar10_test_jpegs(1)
    for model in renewing.models:
        resp = _with_key_file(
            server,
            lambda key, m=model: requests.post(
                f"{server.inference_url}/predictions/{m}",
                data=jpeg,
                headers={"Authorization": f"Bearer {key}", "Content-Type": "image/jpeg"},
                timeout=TIMEOUT,
            ),
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["model"] == model and len(resp.json()["predictions"]) == 5
    listing = _get(f"{server.management_url}/models", server.token("management"))
    assert sorted(m["modelName"] for m in listing.json()["models"]) == renewing.models


def test_page_backend_after_expiry(renewing: Renewing, cifar10_test_jpegs) -> None:
    """The page's backend with the full key file, and with the inference key only (as in its container)."""
    server = renewing.server
    [(_, jpeg)] = cifar10_test_jpegs(1)
    full = TorchServeBackend(server.inference_url, server.management_url, key_file=server.key_file, timeout=TIMEOUT)
    assert full.ping() == "Healthy"
    assert full.models() == renewing.models
    assert full.predict(renewing.models[0], jpeg)["model"] == renewing.models[0]
    inference_only = TorchServeBackend(
        server.inference_url,
        server.management_url,
        key_file=server.inference_key_file,
        timeout=TIMEOUT,
        known_models=renewing.models,
    )
    assert inference_only.models() == renewing.models  # the management API refuses it: the known names
    for model in renewing.models:
        assert inference_only.predict(model, jpeg)["model"] == model


def _counting_backend(server, key_file: Path, on_refusal) -> tuple[TorchServeBackend, list[int]]:
    """A page backend on `key_file` whose session records every answer's status and calls `on_refusal` once."""
    statuses: list[int] = []

    def hook(resp: requests.Response, *args, **kwargs) -> None:
        statuses.append(resp.status_code)
        if refused(resp.status_code, resp.text) and len(statuses) == 1:
            on_refusal()

    backend = TorchServeBackend(server.inference_url, server.management_url, key_file=key_file, timeout=TIMEOUT)
    backend.session.hooks["response"].append(hook)
    return backend, statuses


def test_stale_key_is_read_again_and_retried_once(renewing: Renewing, cifar10_test_jpegs, tmp_path: Path) -> None:
    """A key file holding the expired keys: the first call is refused; a renewal landing in the file then (as the
    renewer writes it) makes the one retry succeed; a file that stays stale gets exactly one retry, then the error."""
    server = renewing.server
    [(_, jpeg)] = cifar10_test_jpegs(1)
    model = renewing.models[0]
    stale = json.dumps({kind: {"key": key} for kind, key in renewing.original.items()})
    key_file = tmp_path / "key_file.json"
    key_file.write_text(stale)

    backend, statuses = _counting_backend(server, key_file, lambda: shutil.copyfile(server.key_file, key_file))
    assert backend.predict(model, jpeg)["model"] == model
    # One refusal, then only answers (a net-name check may ask the management API before the prediction).
    assert statuses[0] == 400 and set(statuses[1:]) == {200}, statuses

    key_file.write_text(stale)
    backend, statuses = _counting_backend(server, key_file, lambda: None)
    with pytest.raises(BackendError, match="refused the (inference|management) token") as exc:
        backend.predict(model, jpeg)
    assert exc.value.status == 400 and statuses == [400, 400], statuses


def test_benchmark_and_healthcheck_clients_after_expiry(
    renewing: Renewing, cifar10_test_jpegs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The benchmarks' REST clients, handed the expired key, read the key file again and retry; the compose
    healthcheck's GET works with the key file after expiry."""
    import importlib.util

    from benchmarks.cam import rest
    from benchmarks.serve import Client

    server = renewing.server
    [(_, jpeg)] = cifar10_test_jpegs(1)
    model = renewing.models[0]
    stale = {"Authorization": f"Bearer {renewing.original['inference']}"}
    client = Client(server)
    client.headers = {**stale, "Content-Type": "image/jpeg"}
    assert client.post(f"/predictions/{model}", jpeg) and not client.failures, client.failures
    client.close()

    class StaleFirst:
        """The server, except that the first key it hands out is the expired one."""

        inference_url = server.inference_url
        handed = 0

        def headers(self, kind: str) -> dict[str, str]:
            self.handed += 1
            return dict(stale) if self.handed == 1 else server.headers(kind)

    stale_first = StaleFirst()
    calls = rest(stale_first, model, [jpeg])
    calls["REST predict"](0)  # raises unless the retry got a 200
    assert stale_first.handed == 2

    spec = importlib.util.spec_from_file_location("healthcheck", Path(__file__).parents[2] / "docker/healthcheck.py")
    healthcheck = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(healthcheck)
    monkeypatch.setattr(healthcheck, "KEY_PATH", str(server.key_file))
    assert healthcheck.get(f"{server.inference_url}/ping", "inference")["status"] == "Healthy"
    assert healthcheck.get(f"{server.management_url}/models", "management")["models"]


def test_renewer_stops_with_the_server(renewing: Renewing) -> None:
    """Stopping the server ends its renewer too (nothing of it is left running)."""
    from serving.server import stop

    server = renewing.server
    assert server.renewer is not None and server.renewer.poll() is None
    stop(server)
    assert server.renewer.wait(timeout=10) is not None
