"""Fixtures of the UI tests: exported artefacts of freshly initialised nets, and an in-process backend over them."""

from __future__ import annotations

import os
from pathlib import Path

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
