"""docker-compose.yml: accepted by `docker-compose config` (Debian's v1, or the `docker compose` plugin).

Nothing is built or started here: `make compose-test` (tests/deploy/test_compose_stack.py) does that.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _compose() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    reason = "neither docker-compose nor the docker compose plugin is installed (run .ci/install-browser.sh)"
    print(f"SKIP: {reason}")
    pytest.skip(reason)


def test_compose_config_accepts_the_file() -> None:
    result = subprocess.run(
        [*_compose(), "-f", str(REPO / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    ts, ui = config["services"]["torchserve"], config["services"]["ui"]
    assert ui["depends_on"]["torchserve"]["condition"] == "service_healthy"
    assert "healthcheck.py" in " ".join(ts["healthcheck"]["test"])
    mounts = " ".join(str(v) for v in ts["volumes"])
    assert "/srv/model_store" in mounts and "/srv/ts" in mounts and "/srv/ui-keys" in mounts
    # The page gets the inference key only: the renewer's inference_key.json, never the volume of key_file.json.
    ui_mounts = dict(_mount(v) for v in ui["volumes"])
    assert "/srv/ts" not in ui_mounts and "ts-keys" not in " ".join(map(str, ui["volumes"])), ui["volumes"]
    assert ui_mounts["/srv/ui-keys"] == ui_mounts["/srv/model_store"] == "ro", ui["volumes"]
    assert ui["environment"]["CIFARLENS_KEY_FILE"] == "/srv/ui-keys/inference_key.json"
    assert ui["environment"]["CIFARLENS_MODEL_STORE"] == "/srv/model_store"  # the nets' names, from the archives
    # Uploads sit in the page's tmpfs (RAM): its size is bounded.
    assert any(str(t).replace(" ", "").startswith("/tmp:size=") for t in ui["tmpfs"]), ui["tmpfs"]


def _mount(volume: str | dict) -> tuple[str, str]:
    """(target, "ro" or "rw") of a service volume in either form `compose config` prints (v1 strings, v2 dicts)."""
    if isinstance(volume, dict):
        return volume["target"], "ro" if volume.get("read_only") else "rw"
    parts = volume.split(":")
    return parts[1], parts[2] if len(parts) > 2 else "rw"


def test_compose_files_exist_and_are_consistent() -> None:
    """The files the compose file mounts are in the repository, and the config keeps token auth on."""
    for path in (
        "docker/serving.Dockerfile",
        "docker/ui.Dockerfile",
        "docker/torchserve-entrypoint.sh",
        "docker/healthcheck.py",
    ):
        assert (REPO / path).is_file(), path
    props = (REPO / "serving" / "config.properties").read_text()
    assert "disable_token_authorization=false" in props
    assert "/srv/ts/key_file.json" in (REPO / "docker" / "healthcheck.py").read_text()
    # The entrypoint starts the key renewer beside TorchServe, writing the page's inference-only key file.
    entrypoint = (REPO / "docker" / "torchserve-entrypoint.sh").read_text()
    assert "-m cifarlens_runtime.keys" in entrypoint and "/srv/ui-keys/inference_key.json" in entrypoint
