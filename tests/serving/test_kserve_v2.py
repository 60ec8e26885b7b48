"""The v2 server's suite (tests/serving/v2/) in its own environment, .venv-v2 (`make install-v2`, which `make test`
runs first): KServe's SDK pins pandas, psutil and protobuf below this environment's, so neither it nor the
standard clients can be imported here.

The inner session gets what this one has already built: the committed weights exported (`weights_artifacts`) for
the clients' checks, and the fresh nets' artefacts with the real TorchServe serving them (`torchserve`), so that
`make serve-v2` on those same nets is compared with TorchServe's REST route. Its report is printed here, and its
output is the failure message when it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from serving.v2.process import V2_PYTHON, V2_STAMP, V2_VENV
from tests.conftest import REPO_ROOT

INNER_TIMEOUT_S = 480


def v2_environment(weights: Path, torchserve: tuple | None) -> dict[str, str]:
    """The inner session's environment: the artefacts to serve and, when there is one, TorchServe's route."""
    env = {**os.environ, "CIFARLENS_V2_ARTIFACTS": str(weights)}
    if torchserve is not None:
        server, artifacts = torchserve
        env["CIFARLENS_V2_TS_URL"] = server.inference_url
        env["CIFARLENS_V2_TS_HEADERS"] = json.dumps(server.headers("inference"))
        env["CIFARLENS_V2_TS_ARTIFACTS"] = str(artifacts)
    return env


@pytest.fixture(scope="module")
def torchserve_or_none(request: pytest.FixtureRequest) -> tuple | None:
    """(the session's TorchServe, the artefacts behind its archives), or None where it cannot run (no Java)."""
    try:
        return request.getfixturevalue("torchserve"), request.getfixturevalue("serving_artifacts")
    except pytest.skip.Exception:
        return None


def test_the_v2_suite_passes_in_its_own_environment(weights_artifacts: Path, torchserve_or_none) -> None:
    if not V2_STAMP.exists():
        pytest.skip(f"{V2_VENV.name} is not built (`make install-v2` failed or was not run): the v2 tests need it")
    cmd = [str(V2_PYTHON), "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--durations=5", "tests/serving/v2"]
    start = time.monotonic()
    done = subprocess.run(
        cmd, cwd=REPO_ROOT, env=v2_environment(weights_artifacts, torchserve_or_none),
        capture_output=True, text=True, timeout=INNER_TIMEOUT_S,
    )  # fmt: skip
    report = done.stdout[-6000:] + done.stderr[-3000:]
    print(f"\ntests/serving/v2 in {V2_VENV.name} ({time.monotonic() - start:.0f} s):\n{report}")
    assert done.returncode == 0, report
    assert " passed" in done.stdout and " failed" not in done.stdout
