"""The one TorchScript runner: it serves the `torchscript` backend and the gradient CAMs from one loaded model.ts,
forward runs and autograd in any order, and it says what is missing in words."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from cifarlens_runtime.constants import LOGITS_NAME, TORCHSCRIPT_FILE
from cifarlens_runtime.predictor import Predictor
from cifarlens_runtime.torchscript import TorchScriptModel


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((4, 3, 32, 32), dtype=np.float32)


def test_the_backend_and_the_gradients_load_model_ts_once(
    serving_artifacts: Path, batch: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A torchscript-backend predictor that predicts and gives gradient CAMs has loaded model.ts once; the ONNX
    Runtime one loads it for its first gradient CAM, then never again."""
    import torch

    loads: list[str] = []
    load = torch.jit.load

    def counted(path, *args, **kwargs):
        loads.append(Path(path).name)
        return load(path, *args, **kwargs)

    monkeypatch.setattr(torch.jit, "load", counted)
    ts = Predictor(serving_artifacts / "se_net", backend="torchscript")
    ts.predict(batch)
    ts.cam(batch, "gradcam")
    ts.cam(batch, "layercam", "se2", [1, 2, 3, 4])
    assert loads == [TORCHSCRIPT_FILE]
    ort = Predictor(serving_artifacts / "se_net")
    ort.predict(batch)
    assert loads == [TORCHSCRIPT_FILE]
    ort.cam(batch, "gradcam")
    ort.cam(batch, "hirescam")
    assert loads == [TORCHSCRIPT_FILE] * 2


@pytest.mark.parametrize("model", ["se_net", "inception_net"])
def test_forward_runs_and_gradients_share_the_runner_in_any_order(
    serving_artifacts: Path, batch: np.ndarray, model: str
) -> None:
    """Predictions first let the graph executor optimise the graph; gradients still reach every layer after them
    and equal a fresh runner's, predictions after gradients equal those before, and both backends give the same
    predictions (to export parity) and the same gradient maps (the same runner code)."""
    folder = serving_artifacts / model
    ts = Predictor(folder, backend="torchscript")
    before = [ts.predict(batch) for _ in range(3)][-1]
    fresh = TorchScriptModel(folder / TORCHSCRIPT_FILE, ts.output_names)
    for layer in ts.layers:
        ours, theirs = ts.gradients().gradients(batch, layer, [None] * 4), fresh.gradients(batch, layer, [None] * 4)
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        assert np.abs(ours[2]).max() > 0, layer  # the gradient reached the layer
    np.testing.assert_allclose(ts.predict(batch), before, rtol=0, atol=1e-7)
    ort = Predictor(folder)
    np.testing.assert_allclose(ort.predict(batch), before, rtol=0, atol=1e-4)
    for method in ("gradcam", "gradcampp"):
        _, a, ca = ts.cam(batch, method, ts.layers[1], [0, None, 5, None])
        _, b, cb = ort.cam(batch, method, ts.layers[1], [0, None, 5, None])
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(ca, cb)


def test_every_layer_at_once_is_each_layer_alone(serving_artifacts: Path, batch: np.ndarray) -> None:
    """One forward and backward pass for several layers gives each layer what a pass for it alone gives."""
    runner = Predictor(serving_artifacts / "plain_cnn").gradients()
    layers = [n for n in runner.output_names if n != LOGITS_NAME]
    logits, acts, grads, chosen = runner.every(batch, layers, [3, None, None, 9])
    assert chosen[0] == 3 and chosen[3] == 9 and list(chosen[1:3]) == list(logits[1:3].argmax(1))
    for layer in layers:
        _, a, g, c = runner.gradients(batch, layer, [3, None, None, 9])
        np.testing.assert_allclose(acts[layer], a, rtol=0, atol=1e-6)
        np.testing.assert_allclose(grads[layer], g, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(chosen, c)
    (out,) = runner.run(batch, [LOGITS_NAME])
    np.testing.assert_allclose(out, logits, rtol=0, atol=1e-5)


def test_double_precision_and_its_guard(serving_artifacts: Path, batch: np.ndarray) -> None:
    folder = serving_artifacts / "plain_cnn"
    names = Predictor(folder).output_names
    exact = TorchScriptModel(folder / TORCHSCRIPT_FILE, names, dtype="float64")
    logits, acts, grads, _ = exact.gradients(batch, names[1], [None] * 4)
    assert logits.dtype == acts.dtype == grads.dtype == np.float64
    with pytest.raises(ValueError, match="float16"):
        TorchScriptModel(folder / TORCHSCRIPT_FILE, names, dtype="float16")


def test_a_missing_export_is_named(serving_artifacts: Path, tmp_path: Path) -> None:
    """Without model.ts the torchscript backend does not start, and the runner names the file and the fix."""
    folder = tmp_path / "se_net"
    shutil.copytree(serving_artifacts / "se_net", folder)
    (folder / TORCHSCRIPT_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="make export"):
        Predictor(folder, backend="torchscript")
    with pytest.raises(FileNotFoundError, match=TORCHSCRIPT_FILE.replace(".", r"\.")):
        Predictor(folder).gradients()
