"""The import graph: the runtime package at the bottom imports nothing above it, and the UI process
loads neither torch nor `training`. Each check runs in a fresh interpreter, so nothing this test
session imported earlier can hide an import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "training", "serving", "gradio_ui", "kornia", "dropblock")


def modules_after(statement: str) -> set[str]:
    """Top-level module names loaded by a fresh interpreter after running `statement`."""
    code = f"import sys\n{statement}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_runtime_imports_nothing_above_it() -> None:
    """Every module of the package, the TorchScript runner's included (torch only once a runner is made)."""
    modules = sorted(p.stem for p in (REPO / "cifarlens_runtime").glob("*.py") if p.stem != "__init__")
    assert {"cam", "predictor", "service", "torchscript", "vocabulary"} <= set(modules)
    loaded = modules_after("import " + ", ".join(f"cifarlens_runtime.{m}" for m in modules))
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


@pytest.mark.parametrize("module", ["gradio_ui.app", "gradio_ui.__main__", "gradio_ui.client", "gradio_ui.examples"])
def test_ui_process_loads_neither_torch_nor_training(module: str) -> None:
    loaded = modules_after(f"import {module}")
    assert "torch" not in loaded and "training" not in loaded, sorted(loaded & {"torch", "training"})


def test_ui_local_backend_answers_without_torch(serving_artifacts: Path) -> None:
    """Not only importing: a prediction and a feature map through the UI's in-process backend load no torch."""
    loaded = modules_after(
        "import io\n"
        "from PIL import Image\n"
        "from gradio_ui.client import LocalBackend\n"
        f"b = LocalBackend({str(serving_artifacts)!r})\n"
        "buf = io.BytesIO(); Image.new('RGB', (32, 32), (1, 2, 3)).save(buf, 'PNG')\n"
        "m = b.models()[0]\n"
        "assert b.predict(m, buf.getvalue())['predictions']\n"
        "layer = b.listing(m)['layers'][0]['name']\n"
        "assert b.feature_maps(m, layer, buf.getvalue())['shape']"
    )
    assert "torch" not in loaded and "training" not in loaded
