"""docker/v2.Dockerfile's image run as deploy/kserve/inferenceservice-v2.yaml runs it (artefacts at /mnt/models,
REST 8080 and gRPC 8081 on every interface of the container, read-only root file system, user 1000), published to
127.0.0.1 only and called from the host with tritonclient: the README's default call and gRPC, on every net, equal
to the in-process predictor to 1e-6; health, metadata and a refusal in words.

The container runs under `make v2-container-test` (CIFARLENS_V2_CONTAINER_TEST=1, the image in CIFARLENS_V2_IMAGE,
a Docker daemon); without it those tests skip. The manifest is checked against the image's command always.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import yaml

from cifarlens_runtime.constants import HOST, PROBABILITIES_NAME
from serving.server import free_ports
from serving.v2.process import Address, is_ready
from tests.conftest import REPO_ROOT
from tests.serving.v2.conftest import ATOL, expected

DOCKERFILE = REPO_ROOT / "docker" / "v2.Dockerfile"
MANIFEST = REPO_ROOT / "deploy" / "kserve" / "inferenceservice-v2.yaml"
GATE_ENV = "CIFARLENS_V2_CONTAINER_TEST"
IMAGE_ENV = "CIFARLENS_V2_IMAGE"
READY_S = 120


def image_command() -> list[str]:
    """The image's CMD (the server's arguments), from the Dockerfile."""
    line = next(li for li in DOCKERFILE.read_text().splitlines() if li.startswith("CMD "))
    return json.loads(line.removeprefix("CMD "))


def test_the_manifest_runs_the_image_as_built() -> None:
    """The InferenceService's container: the image's own arguments, its REST port, STORAGE_URI, v2 readiness."""
    isvc = yaml.safe_load(MANIFEST.read_text())
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1" and isvc["kind"] == "InferenceService"
    (container,) = isvc["spec"]["predictor"]["containers"]
    assert container["name"] == "kserve-container"
    assert container["args"] == image_command()
    args = dict(zip(container["args"][::2], container["args"][1::2]))
    assert args["--artifacts"] == "/mnt/models" and args["--host"] == "0.0.0.0"
    assert [p["containerPort"] for p in container["ports"]] == [int(args["--rest-port"])]
    assert any(e["name"] == "STORAGE_URI" for e in container["env"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert re.search(r"^USER 1000:1000$", DOCKERFILE.read_text(), re.M)
    assert container["securityContext"]["runAsUser"] == 1000


def _logs(name: str) -> str:
    return subprocess.run(["docker", "logs", "--tail", "30", name], capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def container(v2_artifacts) -> Iterator[tuple[str, Address]]:
    """The image in a container (read-only, no tmpfs, the artefacts read-only at /mnt/models), removed at the end."""
    if os.environ.get(GATE_ENV) != "1":
        pytest.skip(f"the v2 image runs under `make v2-container-test` ({GATE_ENV}=1 and a Docker daemon)")
    image = os.environ.get(IMAGE_ENV, "cifarlens-v2:latest")
    address = Address(HOST, *free_ports(2))
    name = f"cifarlens-v2-test-{os.getpid()}"
    cmd = [
        "docker", "run", "-d", "--rm", "--name", name, "--read-only", "--user", "1000:1000",
        "-p", f"{HOST}:{address.rest_port}:8080", "-p", f"{HOST}:{address.grpc_port}:8081",
        "-v", f"{v2_artifacts.resolve()}:/mnt/models:ro", image,
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    try:
        deadline = time.monotonic() + READY_S
        while not is_ready(address):
            assert time.monotonic() < deadline, f"the container was not ready in {READY_S} s:\n{_logs(name)}"
            time.sleep(0.5)
        yield name, address
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_health_and_metadata(container, models) -> None:
    _, address = container
    client = httpclient.InferenceServerClient(address.rest_url.removeprefix("http://"))
    assert client.is_server_ready() and client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    for model in models:
        assert client.is_model_ready(model)
        assert [o["name"] for o in client.get_model_metadata(model)["outputs"]][:2] == ["probabilities", "logits"]


def test_the_readme_call_and_grpc_on_every_net(container, models, predictors, jpegs) -> None:
    _, address = container
    http = httpclient.InferenceServerClient(address.rest_url.removeprefix("http://"))
    grpc = grpcclient.InferenceServerClient(address.grpc_target)
    for model in models:
        want = expected(predictors[model], jpegs)[0]
        for module, client in ((httpclient, http), (grpcclient, grpc)):
            image = module.InferInput("image", [len(jpegs)], "BYTES")
            image.set_data_from_numpy(np.array(jpegs, dtype=object))
            got = client.infer(model, [image]).as_numpy(PROBABILITIES_NAME)
            np.testing.assert_allclose(got, want, rtol=0, atol=ATOL, err_msg=f"{model} over {module.__name__}")


def test_a_malformed_request_is_refused_in_words(container) -> None:
    name, address = container
    resp = requests.post(f"{address.rest_url}/v2/models/se_net/infer", json={"inputs": {}}, timeout=30)
    assert resp.status_code == 400 and resp.json() == {"error": "inputs must be a list"}
    user = subprocess.run(["docker", "exec", name, "id", "-u"], capture_output=True, text=True).stdout.strip()
    assert user == "1000"
