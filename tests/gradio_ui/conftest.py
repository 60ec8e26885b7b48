"""Fixtures of the UI tests: exported artefacts of freshly initialised nets, and an in-process backend over them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1,localhost"]))


@pytest.fixture(scope="session")
def ui_artifacts(serving_artifacts: Path) -> Path:
    """Exported artefacts of freshly initialised nets (tests/conftest.py: metrics of an untrained run)."""
    return serving_artifacts


@pytest.fixture(scope="session")
def local_backend(ui_artifacts: Path):
    from gradio_ui.client import LocalBackend

    return LocalBackend(ui_artifacts)


@pytest.fixture(scope="session")
def example_image():
    """A real CIFAR-10 test image when the data is reachable, else a synthetic one (true class unknown)."""
    from PIL import Image

    from gradio_ui.examples import load_examples

    examples = load_examples(per_class=1)
    if examples:
        return examples[3].image, examples[3].label
    return Image.new("RGB", (32, 32), (200, 30, 30)), None


def free_port() -> int:
    """A port free right now on 127.0.0.1 (the one helper serving.server uses for its test servers)."""
    from serving.server import free_ports

    return free_ports(1)[0]


@pytest.fixture
def dead_backend():
    """A TorchServe backend pointed at a port where nothing answers (free right now)."""
    from gradio_ui.client import TorchServeBackend

    port = free_port()
    return TorchServeBackend(f"http://127.0.0.1:{port}", management_url=f"http://127.0.0.1:{port}", timeout=2)


@contextmanager
def launched(backend: Any, gallery: list | None = None) -> Iterator[str]:
    """The page over `backend`, launched in this process on a free port; yields its URL, closes it after."""
    from gradio_ui import app, examples

    demo = app.build_app(backend, examples.load_examples() if gallery is None else gallery)
    port = free_port()
    app.launch(demo, port=port, block=False)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="session")
def phone_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-megapixel JPEG (4032x3024) like a phone's, about 3 MB: a smooth scene with sensor-like noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(12)
    ramp = np.linspace(0, 200, 4032, dtype=np.float32)
    scene = np.add.outer(ramp[:3024] * 0.4, ramp * 0.6)[..., None] * np.array([1.0, 0.8, 0.6], np.float32)
    pixels = (scene + rng.normal(0, 6, (3024, 4032, 3))).clip(0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("phone") / "IMG_0001.jpg"
    Image.fromarray(pixels).save(path, format="JPEG", quality=85)
    return path
