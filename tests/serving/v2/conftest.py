"""The v2 server's tests, run in its own environment (.venv-v2, `make install-v2`): KServe's SDK and the standard
clients (tritonclient, kserve's own) do not install beside the main stack. tests/serving/test_kserve_v2.py runs
this folder there with what the main session has built; in the main environment it is not collected.

Fixtures:
- `v2_artifacts`: exported nets, $CIFARLENS_V2_ARTIFACTS (the committed weights, exported by the main session),
  else weights/ exported here through the main environment's python (.venv, torch) on 16 parity images;
- `v2_server`: the real server on them (serving.v2.process.start, the path of `make serve-v2`), on free
  loopback ports with its own workdir, stopped at the end of the session;
- `jpegs`: real CIFAR-10 test JPEGs, one per class; `predictors`: the in-process ONNX Runtime predictor per net;
- `torchserve_route`: TorchServe's REST route and the artefacts it serves, when the outer test passes them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

# KServe's SDK and tritonclient.grpc cannot share a process (both register the protocol's `inference.*` protobuf
# messages: "duplicate symbol", kserve/kserve#3099), so these tests import tritonclient only and run KServe's
# clients in a subprocess (kserve_clients.py); the server is a process of its own anyway.
if not all(importlib.util.find_spec(name) for name in ("kserve", "tritonclient")):
    collect_ignore_glob = ["test_*.py"]

from serving.v2.process import Address
from tests.conftest import REPO_ROOT, TEST_PARITY_IMAGES, WEIGHTS_DIR

ARTIFACTS_ENV = "CIFARLENS_V2_ARTIFACTS"
# TorchServe's inference URL, the JSON of its inference headers, and the artefacts behind its archives.
TS_URL_ENV = "CIFARLENS_V2_TS_URL"
TS_HEADERS_ENV = "CIFARLENS_V2_TS_HEADERS"
TS_ARTIFACTS_ENV = "CIFARLENS_V2_TS_ARTIFACTS"
MAIN_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
# Probabilities (and logits) equal to this, as the issue asks.
ATOL = 1e-6


@dataclass(frozen=True)
class V2Server:
    """A running v2 server: where it listens, its pid and its workdir (pid file, log)."""

    address: Address
    pid: int
    workdir: Path
    artifacts: Path

    @property
    def http_target(self) -> str:
        """host:port, the form tritonclient.http takes."""
        return self.address.rest_url.removeprefix("http://")


@pytest.fixture(scope="session")
def v2_artifacts(cifar10_dir: Path | None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Exported nets to serve (see the module docstring)."""
    given = os.environ.get(ARTIFACTS_ENV)
    if given:
        return Path(given)
    if not MAIN_PYTHON.exists():
        pytest.skip(f"no artefacts: set {ARTIFACTS_ENV}, or build .venv (make install) to export {WEIGHTS_DIR}")
    out = tmp_path_factory.mktemp("v2_artifacts")
    data = ["--data-dir", str(cifar10_dir)] if cifar10_dir else []
    cmd = [str(MAIN_PYTHON), "-m", "serving.export", "--runs", str(WEIGHTS_DIR), "--out", str(out)]
    subprocess.run([*cmd, "--images", str(TEST_PARITY_IMAGES), *data], cwd=REPO_ROOT, check=True)
    return out


@contextmanager
def running_v2(artifacts: Path, workdir: Path) -> Iterator[V2Server]:
    """The real v2 server in the background on free loopback ports, stopped on the way out."""
    from cifarlens_runtime.constants import HOST
    from serving.server import free_ports
    from serving.v2.process import start, stop

    address = Address(HOST, *free_ports(2))
    pid = start(artifacts, address, workdir, timeout_s=120)
    try:
        yield V2Server(address, pid, workdir, artifacts)
    finally:
        stop(workdir)


@pytest.fixture(scope="session")
def v2_server(v2_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[V2Server]:
    """One v2 server for the session, on `v2_artifacts`."""
    with running_v2(v2_artifacts, tmp_path_factory.mktemp("v2_server")) as server:
        yield server


@pytest.fixture(scope="session")
def models(v2_artifacts: Path) -> list[str]:
    from cifarlens_runtime.predictor import exported_models

    return exported_models(v2_artifacts)


@pytest.fixture(scope="session")
def jpegs(cifar10_test_jpegs) -> list[bytes]:
    """Ten real CIFAR-10 test JPEGs, one per class."""
    return [data for _, data in cifar10_test_jpegs(10)]


@pytest.fixture(scope="session")
def predictors(v2_artifacts: Path, models: list[str]) -> dict:
    """The in-process ONNX Runtime predictor of every served net."""
    from cifarlens_runtime.predictor import Predictor

    return {name: Predictor(v2_artifacts / name) for name in models}


def expected(predictor, images: list[bytes]) -> tuple:
    """(probabilities, logits) of the in-process predictor for these encoded images, decoded as REST decodes them."""
    import numpy as np

    from cifarlens_runtime.constants import LOGITS_NAME
    from cifarlens_runtime.predictor import softmax
    from cifarlens_runtime.service import decode_image

    logits = predictor.run(np.stack([decode_image(b) for b in images]), [LOGITS_NAME])[0]
    return softmax(logits), logits


@dataclass(frozen=True)
class TorchServeRoute:
    """TorchServe's REST route (URL, inference headers) and the artefacts its archives were built from."""

    url: str
    headers: dict
    artifacts: Path


@pytest.fixture(scope="session")
def torchserve_route() -> TorchServeRoute | None:
    """The outer test's TorchServe, or None when this folder runs on its own."""
    url = os.environ.get(TS_URL_ENV)
    if not url:
        return None
    return TorchServeRoute(url, json.loads(os.environ.get(TS_HEADERS_ENV, "{}")), Path(os.environ[TS_ARTIFACTS_ENV]))
