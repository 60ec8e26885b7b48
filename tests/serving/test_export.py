"""Export: TorchScript and ONNX artefacts agree with the eager model; the metadata describes them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cifarlens_runtime.constants import INPUT_NAME, LOGITS_NAME, METADATA_FILE, ONNX_FILE, ONNX_OPSET, TORCHSCRIPT_FILE
from tests.conftest import WEIGHTS_DIR
from training.models import list_models

MODELS = list_models()


@pytest.mark.parametrize("name", MODELS)
def test_parity_and_metadata(serving_artifacts: Path, cifar10_dir: Path | None, name: str) -> None:
    meta = json.loads((serving_artifacts / name / METADATA_FILE).read_text())
    assert meta["model"] == name
    assert meta["output_names"][0] == LOGITS_NAME
    assert [d["name"] for d in meta["feature_layers"]] == meta["output_names"][1:]
    assert all(len(d["shape"]) == 3 for d in meta["feature_layers"])
    assert meta["metrics"]["test_acc"] == pytest.approx(0.1)
    assert "per_class_test_acc" not in meta["metrics"]  # these checkpoints have no run metrics.json beside them
    assert len(meta["classes"]) == 10 and set(meta["normalization"]) == {"mean", "std"}
    parity = meta["parity"]
    for backend in ("torchscript", "onnxruntime"):
        assert parity[backend]["passed"], parity[backend]
        assert parity[backend]["max_abs_logit_diff"] <= 1e-4
        assert parity[backend]["argmax_mismatches"] == 0
    if cifar10_dir is not None:
        assert "cifar10" in parity["source"]
    else:
        print("no CIFAR-10 test data: parity ran on noise")


@pytest.mark.parametrize("name", MODELS)
def test_onnx_graph(serving_artifacts: Path, name: str) -> None:
    import onnx

    from cifarlens_runtime.predictor import Predictor

    path = serving_artifacts / name / ONNX_FILE
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= ONNX_OPSET
    meta = json.loads((serving_artifacts / name / METADATA_FILE).read_text())
    assert [o.name for o in model.graph.output] == meta["output_names"]
    assert model.graph.input[0].name == INPUT_NAME
    # Dynamic batch axis: any batch size runs, and every layer has its declared shape.
    pred = Predictor(serving_artifacts / name)
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32), dtype=np.float32)
        outs = pred.run(x, meta["output_names"])
        assert outs[0].shape == (batch, 10)
        for out, layer in zip(outs[1:], meta["feature_layers"], strict=True):
            assert list(out.shape) == [batch, *layer["shape"]]


@pytest.mark.parametrize("name", MODELS)
def test_torchscript_matches_onnx_features(serving_artifacts: Path, name: str) -> None:
    """Both backends give the same activations, so a backend switch never changes the feature maps."""
    from cifarlens_runtime.predictor import Predictor

    assert (serving_artifacts / name / TORCHSCRIPT_FILE).is_file()
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    ort, ts = Predictor(serving_artifacts / name), Predictor(serving_artifacts / name, backend="torchscript")
    names = ort.output_names
    for a, b in zip(ort.run(x, names), ts.run(x, names), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def test_parity_failure_says_by_how_much(serving_checkpoints: Path, tmp_path: Path) -> None:
    """A tolerance nothing can meet makes the export fail, naming the difference, and still writes metadata."""
    from serving.export import ParityError, export_checkpoint

    ckpt = serving_checkpoints / "se_net" / "best.pt"
    with pytest.raises(ParityError, match=r"max abs logit diff .* over by"):
        export_checkpoint(ckpt, tmp_path / "se_net", n_images=4, atol=-1.0)
    meta = json.loads((tmp_path / "se_net" / METADATA_FILE).read_text())
    assert meta["parity"]["onnxruntime"]["passed"] is False


def test_cli_exit_code(serving_checkpoints: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from serving.export import main

    assert main(["--runs", str(tmp_path / "missing"), "--out", str(tmp_path / "out"), "--models", "se_net"]) == 1
    assert "checkpoint not found" in capsys.readouterr().err


@pytest.mark.parametrize("name", MODELS)
def test_metadata_carries_the_runs_metrics(weights_artifacts: Path, name: str) -> None:
    """From the shipped run's metrics.json: what the page's comparison shows (per-class accuracy, cost)."""
    meta = json.loads((weights_artifacts / name / METADATA_FILE).read_text())
    recorded = json.loads((WEIGHTS_DIR / name / "metrics.json").read_text())
    metrics = meta["metrics"]
    assert list(metrics["per_class_test_acc"]) == meta["classes"]
    assert metrics["per_class_test_acc"] == recorded["per_class_test_acc"]
    assert metrics["train_seconds"] == recorded["train_seconds"] and metrics["images_seen"] > 0
    assert metrics["train_device"] == recorded["device"] and metrics["test_acc_no_tta"] < metrics["test_acc"]
