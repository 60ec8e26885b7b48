"""`make serve-v2` and `make stop-v2` as a user runs them, the README's default tritonclient call against them, the
same probabilities as TorchServe's REST route to 1e-6 (when the outer test hands its TorchServe over), and where
the server listens: loopback by default, the address V2_HOST names otherwise."""

from __future__ import annotations

import socket
import subprocess

import numpy as np
import psutil
import pytest
import requests
import tritonclient.http as httpclient

from cifarlens_runtime.constants import HOST
from cifarlens_runtime.predictor import Predictor, exported_models
from serving.server import free_ports
from serving.v2.process import running_pid
from tests.conftest import REPO_ROOT
from tests.serving.v2.conftest import ATOL, expected

# Every 127/8 address is loopback on Linux: a second one shows V2_HOST is honoured without opening a port wider.
OTHER_LOOPBACK = "127.0.0.2"


def listening(pid: int) -> set[tuple[str, int]]:
    """The process's listening addresses; gRPC's IPv4-mapped IPv6 form (::ffff:127.0.0.1) said as IPv4."""
    sockets = psutil.Process(pid).connections(kind="inet")
    return {(c.laddr.ip.removeprefix("::ffff:"), c.laddr.port) for c in sockets if c.status == psutil.CONN_LISTEN}


def refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return False
    except OSError:
        return True


def test_the_server_listens_on_loopback_only(v2_server) -> None:
    """REST and gRPC on 127.0.0.1 and nowhere else (KServe's ModelServer alone would take 0.0.0.0 and [::])."""
    port_of = {v2_server.address.rest_port, v2_server.address.grpc_port}
    assert listening(v2_server.pid) == {(HOST, port) for port in port_of}
    outward = [a.address for addrs in psutil.net_if_addrs().values() for a in addrs if a.family == socket.AF_INET]
    for address in [a for a in outward if not a.startswith("127.")]:
        assert all(refused(address, port) for port in port_of), address


def readme_call(target: str, jpeg: bytes, model: str) -> np.ndarray:
    """The README's default tritonclient call (binary tensor data both ways)."""
    client = httpclient.InferenceServerClient(target)
    image = httpclient.InferInput("image", [1], "BYTES")
    image.set_data_from_numpy(np.array([jpeg], dtype=object))
    result = client.infer(model, [image])
    return result.as_numpy("probabilities")


def torchserve_probabilities(route, model: str, jpeg: bytes) -> dict[int, float]:
    """TorchServe's REST answer for one image: its top-5 class indices and probabilities."""
    resp = requests.post(f"{route.url}/predictions/{model}", data=jpeg, headers=route.headers, timeout=60)
    assert resp.status_code == 200, resp.text
    return {p["index"]: p["probability"] for p in resp.json()["predictions"]}


def make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def test_make_serve_v2_answers_the_readme_call_then_stops(
    v2_artifacts, torchserve_route, jpegs, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """On the nets TorchServe serves (when given, else the session's): the README's call, compared with TorchServe's
    REST route and the in-process predictor, on V2_HOST=127.0.0.2; then make stop-v2 ends it."""
    artifacts = torchserve_route.artifacts if torchserve_route else v2_artifacts
    rest, grpc = free_ports(2)
    workdir = tmp_path_factory.mktemp("make_serve_v2")
    names = [f"ARTIFACTS_DIR={artifacts}", f"V2_HOST={OTHER_LOOPBACK}", f"V2_WORKDIR={workdir}"]
    started = make("serve-v2", *names, f"V2_REST_PORT={rest}", f"V2_GRPC_PORT={grpc}")
    assert started.returncode == 0, started.stdout + started.stderr
    pid = running_pid(workdir)
    try:
        assert "ready" in started.stdout and pid is not None
        assert listening(pid) == {(OTHER_LOOPBACK, rest), (OTHER_LOOPBACK, grpc)}
        assert refused(HOST, rest) and refused(HOST, grpc)
        for model in exported_models(artifacts):
            want = expected(Predictor(artifacts / model), jpegs)[0]
            for jpeg, row in zip(jpegs, want):
                got = readme_call(f"{OTHER_LOOPBACK}:{rest}", jpeg, model)[0]
                np.testing.assert_allclose(got, row, rtol=0, atol=ATOL)
                if torchserve_route:
                    for index, probability in torchserve_probabilities(torchserve_route, model, jpeg).items():
                        assert abs(got[index] - probability) <= ATOL, (model, index, got[index], probability)
    finally:
        stopped = make("stop-v2", f"V2_WORKDIR={workdir}")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert refused(OTHER_LOOPBACK, rest) and refused(OTHER_LOOPBACK, grpc)
    if torchserve_route is None:
        pytest.skip("TorchServe not compared: tests/serving/test_kserve_v2.py hands its TorchServe over")
