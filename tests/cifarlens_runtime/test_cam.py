"""Class activation maps: the map arithmetic, Grad-CAM against Captum on the eager nets, and the explanations route."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifarlens_runtime.cam import (
    MIN_CAM_SIZE,
    class_index,
    default_layer,
    eigen_cam,
    grad_cam,
    normalize,
    upsample,
)
from cifarlens_runtime.constants import CLASSES, IMAGE_SIZE, TORCHSCRIPT_FILE
from cifarlens_runtime.predictor import Predictor
from cifarlens_runtime.service import Request, handle_batch
from training.models import list_models

MODELS = list_models()


def png(seed: int = 0, size: int = 40) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


# --- the arithmetic ---


def test_default_layer_is_the_last_with_a_map_big_enough() -> None:
    shapes = {"a": [8, 32, 32], "b": [16, MIN_CAM_SIZE, MIN_CAM_SIZE], "c": [32, 2, 2], "d": [64, 1, 1]}
    assert default_layer(shapes) == "b"
    assert default_layer({"x": [4, 2, 2], "y": [4, 1, 1]}) == "x"  # none big enough: the first
    with pytest.raises(ValueError):
        default_layer({})


@pytest.mark.parametrize(
    ("given", "index"), [("dog", 5), ("DOG", 5), (" cat ", 3), ("9", 9), (0, 0), (None, None), ("", None)]
)
def test_class_index(given, index) -> None:
    assert class_index(given) == index


@pytest.mark.parametrize("given", ["kat", "10", "-1", "3.5"])
def test_class_index_names_the_choices(given) -> None:
    with pytest.raises(ValueError) as info:
        class_index(given)
    assert "airplane" in str(info.value) and "0-9" in str(info.value)


def test_grad_cam_by_hand() -> None:
    """Weights are the mean gradients; the weighted sum is rectified and scaled by its maximum."""
    act = np.array([[[1.0, 0.0], [0.0, 2.0]], [[0.0, 3.0], [1.0, 0.0]]])
    grad = np.stack([np.full((2, 2), 0.5), np.full((2, 2), -1.0)])
    raw = 0.5 * act[0] - 1.0 * act[1]  # [[0.5, -3], [-1, 1]]
    np.testing.assert_allclose(grad_cam(act, grad), np.maximum(raw, 0) / 1.0)
    assert grad_cam(act, -np.abs(grad) * 0 - 1).max() == 0.0  # nothing positive: all zeros, not NaN
    with pytest.raises(ValueError):
        grad_cam(act, grad[:1])


def test_eigen_cam_finds_the_dominant_pattern_with_a_fixed_sign() -> None:
    rng = np.random.default_rng(0)
    spot = np.zeros((8, 8), np.float32)
    spot[2:4, 5:7] = 1.0
    act = rng.normal(0, 0.05, (16, 8, 8)).astype(np.float32) + rng.uniform(1, 2, (16, 1, 1)) * spot
    cam = eigen_cam(act)
    assert cam.shape == (8, 8) and cam.min() >= 0 and cam.max() == pytest.approx(1.0)
    assert cam[2:4, 5:7].mean() > 0.8 and np.delete(cam.reshape(-1), [21, 22, 29, 30]).mean() < 0.2
    np.testing.assert_allclose(eigen_cam(act), cam)  # deterministic, whatever sign the SVD returns


def test_normalize_and_upsample() -> None:
    cam = normalize(np.array([[-1.0, 2.0], [4.0, 0.0]]))
    np.testing.assert_allclose(cam, [[0, 0.5], [1, 0]])
    up = upsample(cam)
    assert up.shape == (IMAGE_SIZE, IMAGE_SIZE) and up.min() >= 0 and up.max() <= 1
    assert up[-1, 0] == pytest.approx(1.0) and up[0, 0] == pytest.approx(0.0)  # corners keep their cells
    np.testing.assert_allclose(upsample(np.full((4, 4), 0.3, np.float32)), 0.3, atol=1e-6)


# --- Grad-CAM of the exported graph against Captum on the eager net ---

# Both sides run in float64, so they agree to rounding in double precision whatever float32 kernels the CPU's
# oneDNN picks (in float32, on an AMX Xeon, the two differed by up to 9e-4 once a map with a small maximum was
# normalised). 1e-8 leaves eight orders of magnitude for float64's 2e-16 to grow through the net and the
# 832-channel sums, and is still far below what a picture shows (an overlay has 256 levels: 4e-3).
FLOAT64_MAP_ATOL = 1e-8


def assert_same_maps(ours: np.ndarray, theirs: np.ndarray) -> None:
    """Normalised maps equal to double-precision rounding."""
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=FLOAT64_MAP_ATOL)


def captum_grad_cams(eager, x: np.ndarray, layer: str, chosen: np.ndarray) -> np.ndarray:
    """Captum's LayerGradCam of the eager net in float64, normalised as the service normalises."""
    import torch
    from captum.attr import LayerGradCam

    attr = LayerGradCam(eager, eager.get_submodule(layer)).attribute(
        torch.from_numpy(x.astype(np.float64)), target=torch.from_numpy(chosen)
    )
    return np.stack([normalize(a[0]) for a in attr.detach().numpy()])


@pytest.fixture(scope="module")
def noise_batch() -> np.ndarray:
    from cifarlens_runtime.preprocess import preprocess

    return np.stack([preprocess(png(seed)) for seed in range(4)])


@pytest.mark.parametrize("model", MODELS)
def test_grad_cam_equals_captum_on_the_eager_net(
    serving_artifacts: Path, serving_checkpoints: Path, model: str, noise_batch: np.ndarray
) -> None:
    """The served Grad-CAM (autograd through the TorchScript export) is Captum's LayerGradCam on the net rebuilt
    from the checkpoint, at the default layer and an earlier one, for the top-1 and for chosen classes; both in
    float64, so that the check does not depend on the CPU's kernels."""
    from cifarlens_runtime.cam import GradientModel
    from training.checkpoint import model_from_checkpoint

    predictor = Predictor(serving_artifacts / model)
    exact = GradientModel(serving_artifacts / model / TORCHSCRIPT_FILE, predictor.layers, dtype="float64")
    eager = model_from_checkpoint(serving_checkpoints / model / "best.pt")[0].double()
    for layer in (predictor.cam_layer, predictor.layers[1]):
        for targets in ([None] * 4, [0, 3, 5, 9]):
            logits, acts, grads, chosen = exact(noise_batch, layer, targets)
            assert acts.dtype == grads.dtype == np.float64
            expected = logits.argmax(1) if targets[0] is None else targets
            np.testing.assert_array_equal(chosen, expected)
            ours = np.stack([grad_cam(a, g) for a, g in zip(acts, grads, strict=True)])
            assert ours.shape == (4, *predictor.layer_shapes[layer][1:])
            assert_same_maps(ours, captum_grad_cams(eager, noise_batch, layer, chosen))

            # The service runs the same code in float32 (compared with nothing: see FLOAT64_MAP_ATOL).
            _, served, served_chosen = predictor.cam(noise_batch, "gradcam", layer, list(chosen))
            assert served.dtype == np.float32 and served.shape == ours.shape
            np.testing.assert_array_equal(served_chosen, chosen)


def test_the_map_checks_fail_on_a_wrong_map(serving_artifacts: Path, noise_batch: np.ndarray) -> None:
    """The check above rejects a map that is not the right one: a single cell moved by 1e-6, another class's map."""
    from cifarlens_runtime.cam import GradientModel

    predictor = Predictor(serving_artifacts / "inception_net")
    exact = GradientModel(serving_artifacts / "inception_net" / TORCHSCRIPT_FILE, predictor.layers, dtype="float64")
    layer = predictor.cam_layer
    _, acts, grads, _ = exact(noise_batch, layer, [0, 3, 5, 9])
    maps = np.stack([grad_cam(a, g) for a, g in zip(acts, grads, strict=True)])
    assert maps.reshape(4, -1).max(axis=1).min() == 1.0  # no blank map, so another class's can differ
    nudged = maps.copy()
    nudged[0, 1, 1] += 1e-6
    with pytest.raises(AssertionError):
        assert_same_maps(nudged, maps)
    _, acts2, grads2, _ = exact(noise_batch, layer, [1, 4, 6, 8])
    with pytest.raises(AssertionError):
        assert_same_maps(np.stack([grad_cam(a, g) for a, g in zip(acts2, grads2, strict=True)]), maps)


# --- the explanations route, without TorchServe ---


def answer(predictor: Predictor, **kwargs) -> tuple[int, dict]:
    reply = handle_batch(predictor, [Request(explain=True, **{"body": png(), **kwargs})])[0]
    return reply.status, json.loads(reply.body)


def test_cam_answer(serving_artifacts: Path) -> None:
    predictor = Predictor(serving_artifacts / "se_net")
    status, body = answer(predictor)
    assert status == 200, body
    assert {"model", "layer", "class", "index", "shape", "cam", "cam_upsampled", "method"} <= set(body)
    assert body["layer"] == predictor.cam_layer and body["method"] == "gradcam"
    assert body["class"] == CLASSES[body["index"]] == body["predictions"][0]["class"]
    cam = np.asarray(body["cam"])
    assert list(cam.shape) == body["shape"] == predictor.layer_shapes[body["layer"]][1:]
    assert np.asarray(body["cam_upsampled"]).shape == (IMAGE_SIZE, IMAGE_SIZE)
    assert cam.min() >= 0 and cam.max() <= 1


@pytest.mark.parametrize(
    ("kwargs", "layer", "cls", "method"),
    [
        ({"route": "se3"}, "se3", None, "gradcam"),
        ({"route": "se3/cat"}, "se3", "cat", "gradcam"),
        ({"route": "se2/7"}, "se2", "horse", "gradcam"),
        ({"layer": "se4", "target": "ship"}, "se4", "ship", "gradcam"),
        ({"route": "se4", "layer": "se4"}, "se4", None, "gradcam"),  # the same value twice is fine
        ({"route": "?layer=se1&class=dog&method=gradcam"}, "se1", "dog", "gradcam"),
        ({"method": "EigenCAM"}, "se5", None, "eigencam"),
    ],
)
def test_cam_choices(serving_artifacts: Path, kwargs, layer, cls, method) -> None:
    status, body = answer(Predictor(serving_artifacts / "se_net"), **kwargs)
    assert status == 200, body
    assert (body["layer"], body["method"]) == (layer, method)
    if cls:
        assert body["class"] == cls


@pytest.mark.parametrize(
    ("kwargs", "code", "words"),
    [
        ({"target": "kat"}, 400, "unknown class 'kat'"),
        ({"route": "se5/11"}, 400, "unknown class '11'"),
        ({"route": "nope"}, 404, "unknown layer 'nope': se_net has se1"),
        ({"route": "se5/cat/extra"}, 404, "unknown route"),
        ({"method": "lime"}, 400, "unknown method 'lime': use one of gradcam, eigencam"),
        ({"method": "eigencam", "target": "cat"}, 400, "same map for every class"),
        ({"route": "se5", "layer": "se4"}, 400, "two different values for 'layer'"),
        ({"body": b"not an image"}, 400, "not a readable image"),
        ({"body": b""}, 400, "empty body"),
    ],
)
def test_cam_errors_in_plain_words(serving_artifacts: Path, kwargs, code, words) -> None:
    status, body = answer(Predictor(serving_artifacts / "se_net"), **kwargs)
    assert (status, body["code"]) == (code, code)
    assert words in body["error"], body


def test_batch_mixes_predictions_feature_maps_and_maps(serving_artifacts: Path) -> None:
    """One batch, several kinds: each request gets the answer it would get alone."""
    predictor = Predictor(serving_artifacts / "plain_cnn")
    requests = [
        Request(body=png(1)),
        Request(body=png(2), explain=True),
        Request(body=b"bad", explain=True),
        Request(body=png(3), explain=True, route="block1/cat"),
        Request(body=png(4), route="feature_maps/block2"),
        Request(body=png(5), explain=True, method="eigencam"),
        Request(body=png(2), explain=True, route="block1/cat"),
    ]
    together = handle_batch(predictor, requests)
    alone = [handle_batch(predictor, [r])[0] for r in requests]
    assert [r.status for r in together] == [200, 200, 400, 200, 200, 200, 200]
    for a, b in zip(together, alone, strict=True):
        ja, jb = json.loads(a.body), json.loads(b.body)
        if "cam" in ja:
            np.testing.assert_allclose(ja["cam"], jb["cam"], atol=2e-4)
            assert ja["class"] == jb["class"]
        else:
            assert ja.keys() == jb.keys()


def test_without_the_torchscript_file_grad_cam_says_so(serving_artifacts: Path, tmp_path: Path) -> None:
    """An artefact folder without model.ts still predicts and gives Eigen-CAMs; Grad-CAM answers 501 in words."""
    folder = tmp_path / "se_net"
    shutil.copytree(serving_artifacts / "se_net", folder)
    (folder / TORCHSCRIPT_FILE).unlink()
    predictor = Predictor(folder)
    status, body = answer(predictor)
    assert status == 501 and "gradcam is not available for se_net" in body["error"], body
    assert TORCHSCRIPT_FILE in body["error"] and "use eigencam" in body["error"]
    assert answer(predictor, method="eigencam")[0] == 200
    assert handle_batch(predictor, [Request(body=png())])[0].status == 200
