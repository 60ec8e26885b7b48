"""Shared fixtures. Serving: tiny checkpoints -> export -> archives -> one real TorchServe per session.

Reuse from any test (the UI's included) by asking for the fixture by name:

- `cifar10_dir`: the CIFAR-10 ImageFolder root (env DATA_DIR, else ../shared/data/cifar10 beside the
  repository) or None; `cifar10_test_jpegs(n)` gives n real test JPEGs as bytes (skips when absent).
- `serving_artifacts`: artefact folder (`<dir>/<model>/{model.onnx, model.ts, metadata.json}`) of
  freshly initialised, seeded nets of every registered model, exported with the parity check.
- `serving_model_store`: `model_store` folder with one ONNX Runtime archive per model (or the
  folder named by $CIFARLENS_TEST_MODEL_STORE, to skip the export).
- `torchserve`: a `serving.server.Server` started once per session in the foreground, on free
  ports, with its own working directory (TEMP/TMPDIR, key_file.json, logs) and token auth on;
  `torchserve.inference_url`, `.management_url`, `.metrics_url`, `.headers("inference")` give what
  a client needs. It is stopped at the end of the session, also when tests fail.

Everything heavy is imported inside the fixtures, so collecting other tests stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Parity on fewer images than `make export` (256) keeps the session short; the tolerance is the same.
TEST_PARITY_IMAGES = 64
SEED = 0
# Reuse archives built elsewhere (e.g. by an outer test session) instead of exporting again.
MODEL_STORE_ENV = "CIFARLENS_TEST_MODEL_STORE"
# The shipped checkpoints: tests whose claim is about what users get use these, not fresh nets.
WEIGHTS_DIR = REPO_ROOT / "weights"


def committed_models() -> list[str]:
    """The nets with a committed weights/<model>/best.pt, sorted by name."""
    return sorted(p.parent.name for p in WEIGHTS_DIR.glob("*/best.pt"))


def _find_cifar10() -> Path | None:
    env = os.environ.get("DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data" / "cifar10")
    return next((p for p in candidates if (p / "test").is_dir()), None)


def pytest_configure(config: pytest.Config) -> None:
    """Point DATA_DIR at the shared copy beside the repository when it is unset: the shipped code looks only
    in --data-dir, DATA_DIR and ./data, as it would for a user, and only the tests know about ../shared."""
    found = _find_cifar10()
    if found is not None and not os.environ.get("DATA_DIR"):
        os.environ["DATA_DIR"] = str(found)


@pytest.fixture(scope="session")
def cifar10_dir() -> Path | None:
    """CIFAR-10 ImageFolder root with test/, or None when no copy is reachable."""
    return _find_cifar10()


@pytest.fixture(scope="session")
def cifar10_test_jpegs(cifar10_dir: Path | None) -> Callable[[int], list[tuple[str, bytes]]]:
    """A function n -> [(class name, JPEG bytes)] of n test images spread over the classes; skips without data."""

    def take(n: int) -> list[tuple[str, bytes]]:
        if cifar10_dir is None:
            pytest.skip("CIFAR-10 test images not found: set DATA_DIR or provide ../shared/data/cifar10")
        files = sorted((cifar10_dir / "test").glob("*/*.jpg"))
        if len(files) < n:
            pytest.skip(f"only {len(files)} test images under {cifar10_dir / 'test'}")
        step = len(files) // n
        return [(f.parent.name, f.read_bytes()) for f in files[::step][:n]]

    return take


@pytest.fixture(scope="session")
def serving_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/<model>/best.pt of freshly initialised, seeded nets (eval-mode BatchNorm statistics are the defaults)."""
    import torch

    from training.checkpoint import checkpoint_dict, save_checkpoint
    from training.models import create_model, list_models

    torch.set_num_threads(1)
    runs = tmp_path_factory.mktemp("runs")
    for name in list_models():
        torch.manual_seed(SEED)
        model = create_model(name)
        metrics = {"test_acc": 0.1, "val_acc": 0.1, "epochs": 0}
        save_checkpoint(checkpoint_dict(model, name, metrics=metrics), runs / name / "best.pt")
    return runs


@pytest.fixture(scope="session")
def serving_artifacts(
    serving_checkpoints: Path, cifar10_dir: Path | None, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Exported artefacts of every model (TorchScript, ONNX, metadata with parity results)."""
    from serving.export import export_all

    out = tmp_path_factory.mktemp("artifacts")
    export_all(serving_checkpoints, out, data_dir=cifar10_dir, n_images=TEST_PARITY_IMAGES)
    return out


@pytest.fixture(scope="session")
def weights_artifacts(cifar10_dir: Path | None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed weights/, exported (TorchScript, ONNX, metadata; parity checked on 64 images)."""
    from serving.export import export_all

    models = committed_models()
    if not models:
        pytest.skip(f"no committed checkpoints under {WEIGHTS_DIR}")
    out = tmp_path_factory.mktemp("weights_artifacts")
    export_all(WEIGHTS_DIR, out, models, data_dir=cifar10_dir, n_images=TEST_PARITY_IMAGES)
    return out


@pytest.fixture(scope="session")
def serving_model_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ONNX Runtime archive per model, built by `serving.archive` from `serving_artifacts`.

    With MODEL_STORE_ENV set to a folder of .mar files, those archives are used as they are (no export).
    """
    from serving.archive import build_archive
    from training.models import list_models

    prebuilt = os.environ.get(MODEL_STORE_ENV)
    if prebuilt:
        return Path(prebuilt)
    artifacts = request.getfixturevalue("serving_artifacts")
    store = tmp_path_factory.mktemp("model_store")
    for name in list_models():
        build_archive(name, artifacts, store)
    return store


@contextmanager
def running_torchserve(model_store: Path, workdir: Path) -> Iterator[object]:
    """A real TorchServe on the archives of `model_store` (foreground, free ports, its own working directory,
    token auth on), stopped on the way out even when the test fails; skips where Java is missing."""
    import shutil

    from serving.server import Ports, free_ports, start_server, stop

    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("TorchServe needs Java (java on PATH or JAVA_HOME)")
    server = start_server(model_store, Ports(*free_ports()), workdir, foreground=True, token_auth=True)
    try:
        yield server
    finally:
        stop(server)


@pytest.fixture(scope="session")
def torchserve(serving_model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real TorchServe on all archives of fresh nets, started once per session."""
    with running_torchserve(serving_model_store, tmp_path_factory.mktemp("torchserve")) as server:
        yield server
