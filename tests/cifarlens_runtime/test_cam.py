"""Class activation maps: the map arithmetic, Grad-CAM against Captum and every gradient method against
pytorch-grad-cam on the eager nets, and the explanations route."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifarlens_runtime.cam import (
    GRADCAMPP_EPS,
    GRADIENT_CAMS,
    MIN_CAM_SIZE,
    default_layer,
    eigen_cam,
    grad_cam,
    grad_cam_pp,
    hires_cam,
    is_blank,
    layer_cam,
    normalize,
    upsample,
)
from cifarlens_runtime.constants import CLASSES, IMAGE_SIZE, TORCHSCRIPT_FILE
from cifarlens_runtime.predictor import Predictor
from cifarlens_runtime.service import Request, RequestError, Route, decode_image, handle_batch, resolve
from cifarlens_runtime.torchscript import TorchScriptModel
from cifarlens_runtime.vocabulary import GRADIENT_METHODS, METHODS, class_index
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


def test_every_method_has_its_maths() -> None:
    """The request's method names and the maths agree: each gradient method has its map, then Eigen-CAM."""
    assert tuple(GRADIENT_CAMS) == GRADIENT_METHODS and (*GRADIENT_METHODS, "eigencam") == METHODS


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
    from training.checkpoint import model_from_checkpoint

    predictor = Predictor(serving_artifacts / model)
    exact = TorchScriptModel(serving_artifacts / model / TORCHSCRIPT_FILE, predictor.output_names, dtype="float64")
    eager = model_from_checkpoint(serving_checkpoints / model / "best.pt")[0].double()
    for layer in (predictor.cam_layer, predictor.layers[1]):
        for targets in ([None] * 4, [0, 3, 5, 9]):
            logits, acts, grads, chosen = exact.gradients(noise_batch, layer, targets)
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

    predictor = Predictor(serving_artifacts / "inception_net")
    exact = TorchScriptModel(
        serving_artifacts / "inception_net" / TORCHSCRIPT_FILE, predictor.output_names, dtype="float64"
    )
    layer = predictor.cam_layer
    _, acts, grads, _ = exact.gradients(noise_batch, layer, [0, 3, 5, 9])
    maps = np.stack([grad_cam(a, g) for a, g in zip(acts, grads, strict=True)])
    assert maps.reshape(4, -1).max(axis=1).min() == 1.0  # no blank map, so another class's can differ
    nudged = maps.copy()
    nudged[0, 1, 1] += 1e-6
    with pytest.raises(AssertionError):
        assert_same_maps(nudged, maps)
    _, acts2, grads2, _ = exact.gradients(noise_batch, layer, [1, 4, 6, 8])
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
    assert body["layer"] == predictor.cam_layer and body["method"] == predictor.cam_method
    assert body["class"] == CLASSES[body["index"]] == body["predictions"][0]["class"]
    cam = np.asarray(body["cam"])
    assert body["blank"] is is_blank(cam) is False
    assert list(cam.shape) == body["shape"] == predictor.layer_shapes[body["layer"]][1:]
    assert np.asarray(body["cam_upsampled"]).shape == (IMAGE_SIZE, IMAGE_SIZE)
    assert cam.min() >= 0 and cam.max() <= 1


@pytest.mark.parametrize(
    ("kwargs", "layer", "cls", "method"),
    [
        ({"route": "se3"}, "se3", None, None),  # None: the net's default
        ({"route": "se3/cat"}, "se3", "cat", None),
        ({"route": "se2/7"}, "se2", "horse", None),
        ({"layer": "se4", "target": "ship"}, "se4", "ship", None),
        ({"route": "se4", "layer": "se4"}, "se4", None, None),  # the same value twice is fine
        ({"route": "?layer=se1&class=dog&method=gradcam"}, "se1", "dog", "gradcam"),
        ({"route": "se2?method=LayerCAM"}, "se2", None, "layercam"),
        ({"method": "gradcampp", "target": "dog"}, None, "dog", "gradcampp"),
        ({"method": "EigenCAM"}, None, None, "eigencam"),
    ],
)
def test_cam_choices(serving_artifacts: Path, kwargs, layer, cls, method) -> None:
    predictor = Predictor(serving_artifacts / "se_net")
    status, body = answer(predictor, **kwargs)
    assert status == 200, body
    assert (body["layer"], body["method"]) == (layer or predictor.cam_layer, method or predictor.cam_method)
    if cls:
        assert body["class"] == cls


@pytest.mark.parametrize(
    ("kwargs", "code", "words"),
    [
        ({"target": "kat"}, 400, "unknown class 'kat'"),
        ({"route": "se5/11"}, 400, "unknown class '11'"),
        ({"route": "nope"}, 404, "unknown layer 'nope': se_net has se1"),
        ({"route": "se5/cat/extra"}, 404, "unknown route"),
        ({"method": "lime"}, 400, "unknown method 'lime': use one of gradcam, gradcampp, layercam, hirescam, eigencam"),
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


def test_a_request_is_resolved_once_into_what_the_predictor_runs(serving_artifacts: Path) -> None:
    """The service turns a request's words into a checked Route (method, layer, class index), the net's defaults
    where it names none; what it refuses never reaches the predictor, which runs the Route as it is."""
    predictor = Predictor(serving_artifacts / "se_net")
    asked = resolve(predictor, Request(explain=True, route="se2/Cat", method=" LayerCAM"))
    assert asked == Route("cam", "se2", "layercam", 3)
    assert resolve(predictor, Request(explain=True)) == Route("cam", predictor.cam_layer, predictor.cam_method, None)
    assert resolve(predictor, Request(route="feature_maps/se1")) == Route("features", "se1")
    assert resolve(predictor, Request(route="feature_maps")) == Route("listing")
    for req, code in [
        (Request(route="feature_maps/se9"), 404),
        (Request(explain=True, route="se9"), 404),
        (Request(explain=True, method="eigencam", target="3"), 400),
        (Request(explain=True, duplicated=("class",)), 400),
    ]:
        with pytest.raises(RequestError) as info:
            resolve(predictor, req)
        assert info.value.code == code
    _, maps, chosen = predictor.cam(decode_image(png())[None], asked.method, asked.layer, [asked.index])
    reply = handle_batch(predictor, [Request(body=png(), explain=True, route="se2/Cat", method=" LayerCAM")])[0]
    body = json.loads(reply.body)
    assert (body["method"], body["layer"], body["index"]) == ("layercam", "se2", int(chosen[0]))
    np.testing.assert_allclose(body["cam"], maps[0], atol=5e-5)  # the answer rounds to 4 decimals


def test_blank_maps_are_marked() -> None:
    """An all-zero map is marked blank in the answer (the page then says so in words); any positive cell is not."""
    from cifarlens_runtime.responses import cam_body

    probs = np.full(10, 0.1)
    blank = cam_body("se_net", "torchscript", "gradcam", "se5", np.zeros((8, 8)), 3, probs, CLASSES)
    assert blank["blank"] is True and np.asarray(blank["cam_upsampled"]).max() == 0
    one = np.zeros((8, 8))
    one[2, 5] = 1.0
    assert cam_body("se_net", "torchscript", "gradcam", "se5", one, 3, probs, CLASSES)["blank"] is False


def test_each_net_names_its_default_map(serving_artifacts: Path, tmp_path: Path) -> None:
    """The export writes the model file's default method and layer into metadata.json; requests that name neither
    get them (a named method or layer wins), and an artefact exported before names none: Grad-CAM at the last
    layer of at least 8x8."""
    from training.models import MODELS

    for model in MODELS:
        predictor = Predictor(serving_artifacts / model)
        cls = MODELS[model]
        assert predictor.metadata["cam"] == {"method": cls.cam_method, "layer": cls.cam_layer}
        assert (predictor.cam_method, predictor.cam_layer) == (cls.cam_method, cls.cam_layer)
    folder = tmp_path / "se_net"
    shutil.copytree(serving_artifacts / "se_net", folder)
    meta = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**meta, "cam": {"method": "layercam", "layer": "se3"}}))
    status, body = answer(Predictor(folder))
    assert (status, body["method"], body["layer"]) == (200, "layercam", "se3"), body
    body = answer(Predictor(folder), method="gradcam")[1]  # named, even as the old default: it wins
    assert (body["method"], body["layer"]) == ("gradcam", "se3")
    body = answer(Predictor(folder), method="HiResCAM", route="se2")[1]
    assert (body["method"], body["layer"]) == ("hirescam", "se2")
    del meta["cam"]
    (folder / "metadata.json").write_text(json.dumps(meta))
    old = Predictor(folder)
    assert (old.cam_method, old.cam_layer) == ("gradcam", default_layer(old.layer_shapes)) == ("gradcam", "se5")
    assert answer(old)[1]["method"] == "gradcam"


def test_export_refuses_a_default_the_net_does_not_have() -> None:
    from serving.export import cam_defaults

    class Net:
        cam_method, cam_layer = "layercam", "se9"

    with pytest.raises(ValueError, match="se9"):
        cam_defaults(Net(), ["se1", "se2"])
    Net.cam_layer, Net.cam_method = "se2", "lime"
    with pytest.raises(ValueError, match="lime"):
        cam_defaults(Net(), ["se1", "se2"])
    Net.cam_method = "hirescam"
    assert cam_defaults(Net(), ["se1", "se2"]) == {"cam": {"method": "hirescam", "layer": "se2"}}


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
    assert status == 501 and f"{predictor.cam_method} is not available for se_net" in body["error"], body
    assert TORCHSCRIPT_FILE in body["error"] and "use eigencam" in body["error"]
    assert answer(predictor, method="eigencam")[0] == 200
    assert handle_batch(predictor, [Request(body=png())])[0].status == 200


# --- the other gradient methods against jacobgil's pytorch-grad-cam on the eager net ---


def test_gradient_methods_by_hand() -> None:
    """LayerCAM weighs each cell by its own positive gradient, HiResCAM by its gradient, Grad-CAM++ (first-order
    form) weighs channels by alpha-weighted positive gradients; each is rectified and scaled by its maximum."""
    act = np.array([[[1.0, 0.0], [0.0, 2.0]], [[0.0, 3.0], [1.0, 0.0]]])
    grad = np.array([[[0.5, -1.0], [0.0, 1.0]], [[-1.0, 0.5], [2.0, 0.0]]])
    layer = np.array([[0.5 * 1, 0.5 * 3], [2.0 * 1, 1.0 * 2]])  # relu(grad) * act, summed over channels
    np.testing.assert_allclose(layer_cam(act, grad), layer / layer.max())
    hires = np.maximum((grad * act).sum(axis=0), 0)  # [[-0.5, 1.5], [2, 2]] rectified
    np.testing.assert_allclose(hires_cam(act, grad), hires / hires.max())
    s = act.sum(axis=(1, 2))  # per-channel activation sums (3, 4)
    alpha = [grad[c] ** 2 / (2 * grad[c] ** 2 + s[c] * grad[c] ** 3 + GRADCAMPP_EPS) for c in range(2)]
    w = [float((np.maximum(grad[c], 0) * np.where(grad[c] != 0, alpha[c], 0)).sum()) for c in range(2)]
    pp = np.maximum(w[0] * act[0] + w[1] * act[1], 0)
    np.testing.assert_allclose(grad_cam_pp(act, grad), pp / pp.max())
    for fn in GRADIENT_CAMS.values():
        assert (
            fn(act, grad).dtype == np.float64
            and fn(act.astype(np.float32), grad.astype(np.float32)).dtype == np.float32
        )
        assert is_blank(fn(act, -np.abs(grad) - 1))  # only negative gradients: no positive evidence, all zeros
        with pytest.raises(ValueError):
            fn(act, grad[:1])


@pytest.fixture
def reference_cams(monkeypatch: pytest.MonkeyPatch):
    """pytorch-grad-cam's maps at the layer's resolution, in float64, before its display scaling.

    Its public call ends with `scale_cam_image`: min-max scaling with a 1e-7 guard, a cast to float32 and a cv2
    resize to the input's size. That is presentation (the service scales by the maximum and resizes bilinearly
    with Pillow, as cam_upsampled) and the float32 cast alone would hide differences behind float32 rounding. So
    it is replaced by the identity; everything before it (its hooks, the backward pass of the summed target
    logits, each method's own weights and its ReLU) runs as shipped. The result is then scaled as the service
    scales (by the maximum: the same as min-max once rectified, wherever a cell is 0).
    """
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, base_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    monkeypatch.setattr(base_cam, "scale_cam_image", lambda cam, target_size=None: np.asarray(cam))
    classes = {"gradcam": GradCAM, "gradcampp": GradCAMPlusPlus, "layercam": LayerCAM, "hirescam": HiResCAM}

    def compute(eager, x: np.ndarray, layer: str, chosen: np.ndarray, method: str) -> np.ndarray:
        import torch

        with classes[method](model=eager, target_layers=[eager.get_submodule(layer)]) as cam:
            raw = cam(torch.from_numpy(x.astype(np.float64)), [ClassifierOutputTarget(int(c)) for c in chosen])
        assert raw.dtype == np.float64
        return np.stack([normalize(r) for r in raw])

    return compute


@pytest.mark.parametrize("model", MODELS)
def test_gradient_methods_equal_pytorch_grad_cam_on_the_eager_net(
    serving_artifacts: Path, serving_checkpoints: Path, model: str, noise_batch: np.ndarray, reference_cams
) -> None:
    """Every gradient method of the service (one autograd pass through the TorchScript export, NumPy maths) is
    pytorch-grad-cam's on the net rebuilt from the checkpoint, at the net's default layer and an earlier one, for
    the top-1 and for chosen classes; both in float64. A map another method's reference would accept fails."""
    from training.checkpoint import model_from_checkpoint

    predictor = Predictor(serving_artifacts / model)
    exact = TorchScriptModel(serving_artifacts / model / TORCHSCRIPT_FILE, predictor.output_names, dtype="float64")
    eager = model_from_checkpoint(serving_checkpoints / model / "best.pt")[0].double()
    for layer in dict.fromkeys((predictor.cam_layer, predictor.layers[1])):
        for targets in ([None] * 4, [0, 3, 5, 9]):
            _, acts, grads, chosen = exact.gradients(noise_batch, layer, targets)
            for method, fn in GRADIENT_CAMS.items():
                ours = np.stack([fn(a, g) for a, g in zip(acts, grads, strict=True)])
                assert ours.dtype == np.float64 and ours.shape == (4, *predictor.layer_shapes[layer][1:])
                assert_same_maps(ours, reference_cams(eager, noise_batch, layer, chosen, method))
                _, served, _ = predictor.cam(noise_batch, method, layer, list(chosen))  # the same code in float32
                assert served.dtype == np.float32 and served.shape == ours.shape


def test_the_reference_check_fails_on_a_wrong_map(
    serving_artifacts: Path, serving_checkpoints: Path, noise_batch: np.ndarray, reference_cams
) -> None:
    """The comparison above rejects wrong maps: each method's map against another method's reference, and a map
    with one cell moved by 1e-6. At se2: at se5 only average pooling follows, so the gradient is the same at every
    cell and HiResCAM is Grad-CAM there (as its paper says), which no check could tell apart."""
    from training.checkpoint import model_from_checkpoint

    predictor = Predictor(serving_artifacts / "se_net")
    exact = TorchScriptModel(serving_artifacts / "se_net" / TORCHSCRIPT_FILE, predictor.output_names, dtype="float64")
    eager = model_from_checkpoint(serving_checkpoints / "se_net" / "best.pt")[0].double()
    layer = "se2"
    _, acts, grads, chosen = exact.gradients(noise_batch, layer, [0, 3, 5, 9])
    methods = list(GRADIENT_CAMS)
    for method, other in zip(methods, methods[1:] + methods[:1], strict=True):
        ours = np.stack([GRADIENT_CAMS[method](a, g) for a, g in zip(acts, grads, strict=True)])
        assert not is_blank(ours[0])
        with pytest.raises(AssertionError):
            assert_same_maps(ours, reference_cams(eager, noise_batch, layer, chosen, other))
        nudged = ours.copy()
        nudged[0].flat[int(np.argmax(ours[0]))] -= 1e-6
        with pytest.raises(AssertionError):
            assert_same_maps(nudged, reference_cams(eager, noise_batch, layer, chosen, method))


@pytest.mark.parametrize("method", [*GRADIENT_METHODS, "eigencam"])
def test_the_answer_names_the_engine_that_computed_the_map(serving_artifacts: Path, method: str) -> None:
    """Gradient methods run TorchScript autograd; Eigen-CAM runs the predictor's own engine (ONNX Runtime)."""
    status, body = answer(Predictor(serving_artifacts / "se_net"), method=method)
    assert status == 200, body
    assert body["method"] == method
    assert body["backend"] == ("torchscript" if method in GRADIENT_METHODS else "onnxruntime")
