"""Fixtures of the UI tests: exported artefacts of freshly initialised nets, and an in-process backend over them."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1,localhost"]))

# The metrics written into the fake checkpoints: a smoke run, which the page must flag as barely trained.
SMOKE_METRICS = {"test_acc": 0.1, "val_acc": 0.1, "epochs": 1}


@pytest.fixture(scope="session")
def ui_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """artifacts/<model>/{model.onnx, model.ts, metadata.json} of every registered net, untrained."""
    import torch

    from serving.export import export_checkpoint
    from training.checkpoint import checkpoint_dict, save_checkpoint
    from training.models import create_model, list_models

    torch.set_num_threads(1)
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("ui")
    for name in list_models():
        ckpt = checkpoint_dict(create_model(name), name, epoch=1, metrics=SMOKE_METRICS)
        path = save_checkpoint(ckpt, root / "runs" / name / "best.pt")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_checkpoint(path, root / "artifacts" / name, data_dir=None, n_images=4)
    return root / "artifacts"


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
