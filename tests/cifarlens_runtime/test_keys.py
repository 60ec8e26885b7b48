"""The key renewer's rules without a server: when renewal is due, what counts as a refused key, and that a
failing renewal (nothing listening on the management port) is logged and retried, never fatal.
tests/serving/test_key_renewal.py checks the renewer against a real TorchServe."""

from __future__ import annotations

import json
import logging
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cifarlens_runtime.constants import TOKEN_EXPIRATION_MIN, Ports
from cifarlens_runtime.keys import (
    TORCHSERVE_DEFAULT_EXPIRATION_MIN,
    Renewer,
    config_lifetime_min,
    expiries,
    lifetime_text,
    refused,
    renewal_due,
    renewal_period_s,
    retry_after_s,
)


def _stamp(epoch: float) -> str:
    """An expiry as TorchServe 0.12 writes it: UTC, nanoseconds, 'Z'."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


def _key_file(path: Path, expires_in_s: float) -> Path:
    at = _stamp(time.time() + expires_in_s)
    path.write_text(
        json.dumps(
            {
                "management": {"key": "m", "expiration time": at},
                "inference": {"key": "i", "expiration time": at},
                "API": {"key": "a"},
            }
        )
    )
    return path


def test_renewal_period_is_half_the_lifetime() -> None:
    assert renewal_period_s(TOKEN_EXPIRATION_MIN) == TOKEN_EXPIRATION_MIN * 30
    assert lifetime_text(TOKEN_EXPIRATION_MIN) == "24 h" and lifetime_text(renewal_period_s() / 60) == "12 h"
    assert retry_after_s(1) == 3 and retry_after_s(TOKEN_EXPIRATION_MIN) == 60


def test_renewal_due_at_half_the_lifetime(tmp_path: Path) -> None:
    path = _key_file(tmp_path / "key_file.json", 60)
    assert abs(min(expiries(path)) - (time.time() + 60)) < 1  # nanoseconds and 'Z' parsed
    assert not renewal_due(path, lifetime_min=1)  # a fresh one-minute key
    assert not renewal_due(_key_file(path, 31), lifetime_min=1)
    assert renewal_due(_key_file(path, 29), lifetime_min=1)
    assert renewal_due(_key_file(path, -5), lifetime_min=1)  # already expired: renew at once


def test_refused_is_a_token_refusal_only() -> None:
    body = '{"code": 400, "type": "InvalidKeyException", "message": "Token Authorization failed."}'
    assert refused(400, body) and refused(400, body.encode()) and refused(401)
    assert not refused(400, '{"error": "not an image", "code": 400}')  # the handler's own 400
    assert not refused(404, body) and not refused(200)


def test_lifetime_comes_from_the_servers_config(tmp_path: Path) -> None:
    from serving.server import write_config

    ports = Ports()
    config = write_config(tmp_path, tmp_path, ports, tmp_path)
    assert config_lifetime_min(config) == TOKEN_EXPIRATION_MIN
    assert config_lifetime_min(write_config(tmp_path, tmp_path, ports, tmp_path, token_expiration_min=1)) == 1
    (tmp_path / "bare.properties").write_text("# token_expiration_min=5\n")
    assert config_lifetime_min(tmp_path / "bare.properties") == TORCHSERVE_DEFAULT_EXPIRATION_MIN


def test_failed_renewal_is_logged_and_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listens on the management port: each due attempt fails, is logged, and the next waits its pause;
    the inference-only file is still written from the key file."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    path = _key_file(tmp_path / "key_file.json", -1)
    only = tmp_path / "ui" / "inference_key.json"
    renewer = Renewer(path, f"http://127.0.0.1:{closed}", lifetime_min=1, inference_key_file=only)
    state: dict[str, float] = {}
    with caplog.at_level(logging.INFO, logger="cifarlens.keys"):
        renewer.step(state)
        first_retry = state["retry_at"]
        renewer.step(state)  # within the pause: no second attempt
    failures = [r for r in caplog.records if "key renewal failed" in r.getMessage()]
    assert len(failures) == 1 and first_retry >= time.time() + retry_after_s(1) - 1
    assert json.loads(only.read_text()) == {"inference": json.loads(path.read_text())["inference"]}
    assert only.stat().st_mode & 0o077 == 0
    looks = iter(range(3))
    state.clear()
    renewer.run(stopped=lambda: next(looks, None) is None)  # ends when told, however renewal goes


def test_renewer_ends_with_the_watched_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    renewer = Renewer(tmp_path / "key_file.json", "http://127.0.0.1:9", 1, watch_pid=proc.pid)
    assert not renewer.alive()
    renewer.run()  # returns at once: the process is gone
