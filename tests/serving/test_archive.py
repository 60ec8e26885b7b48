"""Archives: one shared handler, the torch-free runtime package, the backend's model file and model-config.yaml."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import yaml

import cifarlens_runtime
from cifarlens_runtime.constants import ARCHIVE_VERSION, METADATA_FILE, ONNX_FILE, TORCHSCRIPT_FILE

RUNTIME = Path(cifarlens_runtime.__file__).resolve().parent


# Every archive holds the TorchScript file (Grad-CAM differentiates it); the ONNX one only on its backend.
@pytest.mark.parametrize(
    ("backend", "model_file", "absent"),
    [("onnxruntime", ONNX_FILE, None), ("torchscript", TORCHSCRIPT_FILE, ONNX_FILE)],
)
def test_archive_contents(
    serving_artifacts: Path, tmp_path: Path, backend: str, model_file: str, absent: str | None
) -> None:
    import json

    from serving.archive import build_archive

    mar = build_archive("se_net", serving_artifacts, tmp_path, backend=backend)
    assert mar == tmp_path / "se_net.mar"
    with zipfile.ZipFile(mar) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read("MAR-INF/MANIFEST.json"))
        config = yaml.safe_load(z.read("model-config.yaml"))
        handler = z.read("handler.py").decode()
        shipped = {n: z.read(n) for n in names if n.startswith("cifarlens_runtime/")}
    assert {"handler.py", METADATA_FILE, model_file, TORCHSCRIPT_FILE} <= names
    assert absent not in names
    # The runtime package ships whole and as it is (its real __init__.py), and nothing of the layers above it.
    modules = {p.name for p in RUNTIME.glob("*.py")}
    assert {n.split("/", 1)[1] for n in shipped} == modules
    assert all(shipped[f"cifarlens_runtime/{m}"] == (RUNTIME / m).read_bytes() for m in modules)
    assert not any(n.startswith(("training/", "serving/", "gradio_ui/")) for n in names), sorted(names)
    assert "from cifarlens_runtime." in handler and "import serving" not in handler and "training" not in handler
    assert manifest["model"]["modelVersion"] == ARCHIVE_VERSION and manifest["model"]["handler"] == "handler.py"
    assert config["handler"]["backend"] == backend
    assert config["batchSize"] >= 1 and config["minWorkers"] == config["maxWorkers"] == 1
    assert handler.count("\nclass ") == 1


def test_archive_without_export_fails_clearly(tmp_path: Path) -> None:
    from serving.archive import build_archive

    with pytest.raises(FileNotFoundError, match="make export"):
        build_archive("se_net", tmp_path / "nothing", tmp_path / "store")
