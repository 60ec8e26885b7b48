"""`docker compose up`, end to end: build both images, start the stack, check it as a user would, tear it down.

Run by `make compose-test` (which exports the committed weights into archives, makes the local base image when
needed and sets the variables below); skipped, saying why, in `make test`. The stack gets its own compose project
and free host ports, so it runs beside `make serve`. Teardown (`down -v`) runs also when a check fails.

Environment: CIFARLENS_COMPOSE_TEST=1, COMPOSE (e.g. "docker compose" or "docker-compose"), CIFARLENS_BASE_IMAGE,
MODEL_STORE (folder of .mar files), CIFARLENS_COMPOSE_ARTIFACTS (the artefacts they were built from), DATA_DIR.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
PROJECT = "cifarlens-compose-test"
HEALTH_TIMEOUT_S = 420
BUILD_TIMEOUT_S = 1800
TIMEOUT_MS = 60_000

if os.environ.get("CIFARLENS_COMPOSE_TEST") != "1":
    reason = "the compose stack is tested by `make compose-test` (needs a Docker daemon), not by `make test`"
    print(f"SKIP: {reason}")
    pytest.skip(reason, allow_module_level=True)


@dataclass
class Stack:
    """The running compose project: how to call compose, host ports, and what the build took."""

    compose: list[str]
    env: dict[str, str]
    ports: dict[str, int]
    artifacts: Path
    data_dir: Path
    timings: dict[str, float] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [*self.compose, "-p", PROJECT, "-f", str(REPO / "docker-compose.yml"), *args],
            cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise RuntimeError(
                f"compose {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result

    def container(self, service: str) -> str:
        return self.run("ps", "-q", service).stdout.strip()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def keys(self) -> dict[str, str]:
        """TorchServe's keys, read from the named volume inside the container (the host never sees them)."""
        raw = self.run("exec", "-T", "torchserve", "cat", "/srv/ts/key_file.json").stdout
        return {kind: entry["key"] for kind, entry in json.loads(raw).items()}


def _free_ports(n: int) -> list[int]:
    from serving.server import free_ports

    return free_ports(n)


def _inspect(container: str) -> dict[str, Any]:
    out = subprocess.run(["docker", "inspect", container], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


def _health(container: str) -> str:
    return _inspect(container)["State"].get("Health", {}).get("Status", "none") if container else "missing"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    compose = shlex.split(os.environ.get("COMPOSE", "docker compose"))
    model_store = Path(os.environ["MODEL_STORE"]).resolve()
    artifacts = Path(os.environ["CIFARLENS_COMPOSE_ARTIFACTS"]).resolve()
    data_dir = Path(os.environ["DATA_DIR"]).resolve()
    assert sorted(p.name for p in model_store.glob("*.mar")), f"no archives in {model_store}"
    ports = dict(zip(("inference", "management", "metrics", "ui"), _free_ports(4), strict=True))
    env = {
        **os.environ,
        "MODEL_STORE": str(model_store),
        "DATA_DIR": str(data_dir),
        "CIFARLENS_INFERENCE_PORT": str(ports["inference"]),
        "CIFARLENS_MANAGEMENT_PORT": str(ports["management"]),
        "CIFARLENS_METRICS_PORT": str(ports["metrics"]),
        "CIFARLENS_UI_PORT": str(ports["ui"]),
    }
    s = Stack(compose, env, ports, artifacts, data_dir)
    try:
        start = time.monotonic()
        s.run("build", timeout=BUILD_TIMEOUT_S)
        s.timings["build_s"] = time.monotonic() - start
        start = time.monotonic()
        s.run("up", "-d", timeout=HEALTH_TIMEOUT_S)
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while not all(_health(s.container(svc)) == "healthy" for svc in ("torchserve", "ui")):
            if time.monotonic() > deadline:
                logs = s.run("logs", "--tail", "60", check=False)
                pytest.fail(f"stack not healthy after {HEALTH_TIMEOUT_S} s:\n{logs.stdout}{logs.stderr}")
            time.sleep(2)
        s.timings["up_to_healthy_s"] = time.monotonic() - start
        print(f"compose: build {s.timings['build_s']:.0f} s, up to healthy {s.timings['up_to_healthy_s']:.0f} s")
        yield s
    finally:
        down = s.run("down", "-v", "--remove-orphans", "-t", "20", timeout=180, check=False)
        print(f"compose down -v: rc={down.returncode}")


def _request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET, or POST of image bytes (as image/jpeg: urllib's default form type makes TorchServe parse a form)."""
    headers = {**(headers or {}), **({"Content-Type": "image/jpeg"} if data is not None else {})}
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _expected(artifacts: Path, model: str, image: bytes, explain: bool = False) -> dict[str, Any]:
    from cifarlens_runtime.predictor import Predictor
    from cifarlens_runtime.service import Request, handle_batch

    [reply] = handle_batch(Predictor(artifacts / model), [Request(body=image, explain=explain)])
    return json.loads(reply.body)


def test_images(stack: Stack) -> None:
    """Report sizes; the serving image has a CPU-only torch; say whether the UI image still carries torch."""
    sizes = {}
    for svc in ("torchserve", "ui"):
        image = _inspect(stack.container(svc))["Config"]["Image"]
        out = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", image], capture_output=True, text=True)
        sizes[image] = int(out.stdout.strip())
    print("images: " + ", ".join(f"{name} {size / 1e6:.0f} MB" for name, size in sizes.items()))
    probe = "import torch; print(torch.__version__, torch.version.cuda)"
    version, cuda = stack.run("exec", "-T", "torchserve", "python", "-c", probe).stdout.split()
    assert cuda == "None" and "+cpu" in version, f"serving image has torch {version} (CUDA {cuda})"
    has_torch = "import importlib.util as u; print(u.find_spec('torch') is not None)"
    ui_torch = stack.run("exec", "-T", "ui", "python", "-c", has_torch).stdout.strip()
    print(f"UI image carries torch: {ui_torch} (True while gradio_ui imports training.models)")
    assert max(sizes.values()) < 2.5e9


def test_page_holds_the_inference_key_only(stack: Stack) -> None:
    """The ui container sees the renewer's inference_key.json (the current inference key), not key_file.json."""
    probe = "import json; print(json.dumps(json.load(open('/srv/ui-keys/inference_key.json'))))"
    held = json.loads(stack.run("exec", "-T", "ui", "python", "-c", probe).stdout)
    assert list(held) == ["inference"] and held["inference"]["key"] == stack.keys()["inference"]
    assert stack.run("exec", "-T", "ui", "test", "-e", "/srv/ts/key_file.json", check=False).returncode != 0


def test_nothing_written_outside_named_volumes(stack: Stack) -> None:
    """Read-only root file systems; the only writable mount is the named volume; bind mounts are read-only."""
    for svc in ("torchserve", "ui"):
        info = _inspect(stack.container(svc))
        assert info["HostConfig"]["ReadonlyRootfs"], svc
        for mount in info["Mounts"]:
            if mount["RW"]:
                assert mount["Type"] == "volume" and mount["Name"].startswith(PROJECT), (svc, mount)
            else:
                assert mount["Type"] in ("bind", "volume"), (svc, mount)


def test_rest_prediction_with_token(stack: Stack, cifar10_test_jpegs) -> None:
    """A CIFAR-10 test JPEG through the published REST port: refused without the key, answered with it, and the
    answer equals the same archives' nets run on the host."""
    from training.models import list_models

    [(true_class, jpeg)] = cifar10_test_jpegs(1)
    keys = stack.keys()
    inference = {"Authorization": f"Bearer {keys['inference']}"}
    status, body = _request(f"{stack.url('inference')}/ping", headers=inference)
    assert status == 200 and json.loads(body)["status"] == "Healthy"
    status, _ = _request(f"{stack.url('inference')}/predictions/plain_cnn", jpeg)
    assert status in (400, 401, 403), f"a request without the key got {status}"
    status, _ = _request(f"{stack.url('inference')}/predictions/plain_cnn", jpeg, {"Authorization": "Bearer wrong"})
    assert status in (400, 401, 403), f"a request with a wrong key got {status}"
    for model in list_models():
        status, body = _request(f"{stack.url('inference')}/predictions/{model}", jpeg, inference)
        assert status == 200, body
        got, want = json.loads(body), _expected(stack.artifacts, model, jpeg)
        assert got["model"] == model and got["backend"] == "onnxruntime"
        assert [p["class"] for p in got["predictions"]] == [p["class"] for p in want["predictions"]]
        np.testing.assert_allclose(
            [p["probability"] for p in got["predictions"]], [p["probability"] for p in want["predictions"]], atol=1e-6
        )
        print(f"REST {model}: true {true_class}, top-1 {got['predictions'][0]['class']}")
        # The default map through the explanations API: autograd in the container's torch, the map computed on the host.
        status, body = _request(f"{stack.url('inference')}/explanations/{model}", jpeg, inference)
        assert status == 200, body
        got, want = json.loads(body), _expected(stack.artifacts, model, jpeg, explain=True)
        assert (got["layer"], got["class"], got["method"]) == (want["layer"], want["class"], want["method"])
        np.testing.assert_allclose(np.asarray(got["cam"]), np.asarray(want["cam"]), atol=2e-4)


def test_page_in_chromium(stack: Stack) -> None:
    """The page, served by the ui container, asks the containerised TorchServe for the three nets' answers."""
    from tests.gradio_ui.test_ui_browser import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"chromium not installed at {CHROMIUM} (run .ci/install-browser.sh)")
    from playwright.sync_api import sync_playwright

    from gradio_ui.examples import load_examples
    from gradio_ui.uploads import image_bytes
    from training.models import list_models

    example = load_examples(stack.data_dir)[3]  # the page's gallery, from the same files
    expected = {m: _expected(stack.artifacts, m, image_bytes(example.image)) for m in list_models()}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(stack.url("ui") + "/")
            page.wait_for_selector("#status:has-text('Backend')")
            assert "http://torchserve:8080" in page.inner_text("#status")
            page.locator("#example-gallery img").nth(3).click()
            page.wait_for_selector(f"#true-class:has-text('{example.label}')")
            page.wait_for_selector("#status:has-text('nets answered')")
            status = page.inner_text("#status")
            assert "3 nets answered via torchserve at http://torchserve:8080" in status.replace("`", ""), status
            for i, model in enumerate(sorted(list_models())):  # the page lists the served nets by name
                text = page.inner_text(f"#pred-{i}") + "\n" + page.inner_text(f"#pred-info-{i}")
                assert model in text and text.count("%") >= 5, text
                ranked = [q["class"] for q in expected[model]["predictions"]]
                if ranked[0] == example.label:
                    assert f"correct: {example.label}" in text, text
                elif example.label in ranked:
                    assert f"ranked {ranked.index(example.label) + 1}" in text, text
                else:
                    assert "not in the top" in text, text
                print(f"page {model}: true {example.label}, expected top-1 {ranked[0]}: shown")
            for i in range(len(list_models())):  # the class activation maps come through the explanations API
                page.locator(f"#cam-info-{i}").filter(has_text=re.compile(r"CAM\S* for")).wait_for()  # net's default
                assert "via torchscript" in page.inner_text(f"#cam-info-{i}")
                assert page.locator(f"#cam-{i} img").first.get_attribute("src")
        finally:
            browser.close()
