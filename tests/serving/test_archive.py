"""Archives: one shared handler, torch-free helper packages, the backend's model file and model-config.yaml."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import yaml

from serving import ARCHIVE_VERSION, METADATA_FILE, ONNX_FILE, TORCHSCRIPT_FILE


@pytest.mark.parametrize(
    ("backend", "model_file", "absent"),
    [("onnxruntime", ONNX_FILE, TORCHSCRIPT_FILE), ("torchscript", TORCHSCRIPT_FILE, ONNX_FILE)],
)
def test_archive_contents(serving_artifacts: Path, tmp_path: Path, backend: str, model_file: str, absent: str) -> None:
    import json

    from serving.archive import build_archive

    mar = build_archive("se_net", serving_artifacts, tmp_path, backend=backend)
    assert mar == tmp_path / "se_net.mar"
    with zipfile.ZipFile(mar) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read("MAR-INF/MANIFEST.json"))
        config = yaml.safe_load(z.read("model-config.yaml"))
        handler = z.read("handler.py").decode()
        init = z.read("training/__init__.py")
    assert {"handler.py", METADATA_FILE, model_file, "serving/service.py", "training/preprocess.py"} <= names
    assert absent not in names and "serving/export.py" not in names and "training/models/__init__.py" not in names
    assert init == b""  # whatever the repository's training/__init__ imports never reaches the worker
    assert manifest["model"]["modelVersion"] == ARCHIVE_VERSION and manifest["model"]["handler"] == "handler.py"
    assert config["handler"]["backend"] == backend
    assert config["batchSize"] >= 1 and config["minWorkers"] == config["maxWorkers"] == 1
    assert handler.count("\nclass ") == 1


def test_archive_without_export_fails_clearly(tmp_path: Path) -> None:
    from serving.archive import build_archive

    with pytest.raises(FileNotFoundError, match="make export"):
        build_archive("se_net", tmp_path / "nothing", tmp_path / "store")
