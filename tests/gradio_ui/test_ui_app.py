"""The page's callbacks as plain functions, against the in-process backend and against a dead server."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifarlens_runtime.cam import METHODS
from cifarlens_runtime.constants import CLASSES
from cifarlens_runtime.files import find_cifar10
from gradio_ui import app, examples
from gradio_ui.client import BackendError, LocalBackend, TorchServeBackend
from tests.gradio_ui.conftest import free_port
from training.models import list_models

# The page lists the nets the backend serves, sorted by name.
SERVED = sorted(list_models())


def test_on_load_flags_barely_trained_nets(local_backend: LocalBackend) -> None:
    status, banner, names, first = app.on_load(local_backend)
    assert status.startswith("✓") and "local" in status
    assert names == SERVED and first == names[0]
    assert "barely trained" in banner and all(n in banner for n in names)
    assert "epoch" in banner and "10.0 %" in banner


def test_predict_all(local_backend: LocalBackend, example_image) -> None:
    image, label = example_image
    status, names, labels, panels = app.predict_all(local_backend, image, label)
    assert status.startswith("✓")
    assert names == SERVED
    for value, panel in zip(labels, panels, strict=True):
        assert value is not None and len(value) == 5 and set(value) <= set(CLASSES)
        assert "latency" in panel and "test accuracy **10.0 %**" in panel and "barely trained" in panel
        if label:
            assert label in panel


def test_predict_without_image(local_backend: LocalBackend) -> None:
    status, _, labels, _ = app.predict_all(local_backend, None, None)
    assert "Pick an example" in status and labels == [None] * app.NUM_SLOTS


def test_feature_maps_flow(local_backend: LocalBackend, example_image) -> None:
    image, _ = example_image
    listing = local_backend.listing("se_net")
    choices, first, _ = app.layer_choices(local_backend, "se_net")
    assert [value for _, value in choices] == [d["name"] for d in listing["layers"]]
    assert first == listing["layers"][0]["name"]
    layer = listing["layers"][1]
    act, info = app.fetch_feature_maps(local_backend, image, "se_net", layer["name"])
    assert list(act.shape) == layer["shape"] and layer["name"] in info
    grid4, overlay, stats, plot = app.render_feature_maps(act, image, 4, "magma")
    grid_all, *_ = app.render_feature_maps(act, image, 1024, "viridis")
    assert grid4.size[0] < grid_all.size[0]
    assert overlay.size == (app.OVERLAY_SIZE, app.OVERLAY_SIZE) and plot.size[0] > 0
    means = [row[2] for row in stats]
    assert len(stats) == act.shape[0] and means == sorted(means, reverse=True)
    assert sorted(row[1] for row in stats) == list(range(act.shape[0]))


def test_feature_map_errors_stay_on_page(local_backend: LocalBackend, example_image) -> None:
    act, info = app.fetch_feature_maps(local_backend, example_image[0], "se_net", "nope")
    assert act is None and info.startswith("⚠") and "unknown layer" in info
    assert app.fetch_feature_maps(local_backend, None, "se_net", "se1")[0] is None
    assert app.render_feature_maps(None, None) == (None, None, [], None)
    assert app.layer_choices(local_backend, "no_such_net")[2].startswith("⚠")


def _dead_backend() -> TorchServeBackend:
    port = free_port()  # free, so nothing answers there
    return TorchServeBackend(f"http://127.0.0.1:{port}", management_url=f"http://127.0.0.1:{port}", timeout=2)


def test_unreachable_server_is_reported_not_raised(example_image) -> None:
    backend = _dead_backend()
    status, banner, names, _ = app.on_load(backend)
    assert "not available" in status and "unreachable" in status and banner == ""
    assert names == []  # no names invented: "Check server" fills the picker once the server answers
    status, _, labels, _ = app.predict_all(backend, example_image[0], None)
    assert "unreachable" in status and labels == [None] * app.NUM_SLOTS
    assert "unreachable" in app.layer_choices(backend, "se_net")[2]
    assert "unreachable" in app.fetch_feature_maps(backend, example_image[0], "se_net", "se1")[1]


class _HalfBroken(LocalBackend):
    """One net fails: the others must still be shown."""

    def predict(self, model: str, image: bytes) -> dict:
        if model == "inception_net":
            raise BackendError("TorchServe answered 503: worker died")
        return super().predict(model, image)


def test_one_failing_net_keeps_the_others(ui_artifacts: Path, example_image) -> None:
    status, _, labels, panels = app.predict_all(_HalfBroken(ui_artifacts), example_image[0], None)
    assert "1 of 3" in status
    broken = SERVED.index("inception_net")
    assert labels[broken] is None and "worker died" in panels[broken]
    assert all(labels[i] for i in range(len(SERVED)) if i != broken)


def test_helpers() -> None:
    assert app.percent(0.9123) == "91.2 %" and app.percent(91.23) == "91.2 %" and app.percent(None) == "n/a"
    assert app.is_barely_trained({"epochs": 1, "test_acc": 0.9})
    assert app.is_barely_trained({"epochs": 30, "test_acc": 0.2})
    assert not app.is_barely_trained({"epochs": 30, "test_acc": 0.9})
    img = Image.new("RGB", (40, 20), (1, 2, 3))
    assert Image.open(__import__("io").BytesIO(app.image_bytes(img))).size == (40, 20)


def test_build_app(local_backend: LocalBackend) -> None:
    demo = app.build_app(local_backend, examples.load_examples())
    assert demo.title.startswith("cifarlens")


# --- examples ---


def test_examples_cover_every_class() -> None:
    root = find_cifar10()
    if root is None or not (root / "test").is_dir():
        pytest.skip("no CIFAR-10 test data reachable (set DATA_DIR)")
    found = examples.load_examples(root)
    assert len(found) >= 20
    assert {ex.label for ex in found} == set(CLASSES)
    assert [ex.label for ex in found[:10]] == list(CLASSES)  # interleaved, so the first row shows every class
    assert all(ex.image.size == (32, 32) for ex in found)
    assert found == examples.load_examples(root)  # same seed, same pick


def test_examples_from_torchvision_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch.parent.mkdir()
    labels = [i % 10 for i in range(40)]
    data = np.random.default_rng(0).integers(0, 255, (40, 3072), dtype=np.uint8)
    batch.write_bytes(pickle.dumps({"data": data, "labels": labels}))
    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path / "cifar-10-batches-py")  # nothing in ./data here: only the explicit folder counts
    found = examples.load_examples(tmp_path)
    assert len(found) == 20 and {ex.label for ex in found} == set(CLASSES)


def test_without_data_the_shipped_gallery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_backend) -> None:
    """A fresh clone without CIFAR-10: 5 real test images of every class, interleaved, from gradio_ui/gallery/."""
    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert find_cifar10(tmp_path / "nowhere") is None
    for found in (examples.load_examples(), examples.load_examples(tmp_path / "nowhere")):
        assert len(found) == 50 and [ex.label for ex in found[:10]] == list(CLASSES)
        assert all(sum(ex.label == c for ex in found) == 5 for c in CLASSES)
        assert all(ex.image.size == (32, 32) and ex.image.mode == "RGB" for ex in found)
    app.build_app(local_backend, [], data_note="Set DATA_DIR.")  # and the page still builds without any gallery


def test_shipped_gallery_is_real_test_images_with_true_labels(cifar10_dir: Path | None) -> None:
    """Each shipped file is byte for byte the test image of that class and number in the CIFAR-10 copy."""
    if cifar10_dir is None:
        pytest.skip("CIFAR-10 test images not found: set DATA_DIR or provide ../shared/data/cifar10")
    files = sorted(examples.GALLERY_DIR.glob("*.jpg"))
    assert len(files) == 50 and sum(f.stat().st_size for f in files) < 100_000
    for f in files:
        label, number = f.stem.rsplit("_", 1)
        assert f.read_bytes() == (cifar10_dir / "test" / label / f"{number}.jpg").read_bytes(), f.name


# --- class activation maps ---


def test_explain_all_and_render(local_backend: LocalBackend, example_image) -> None:
    image, _ = example_image
    status, bodies, panels = app.explain_all(local_backend, image, app.TOP1_CHOICE, "gradcam")
    assert status.startswith("✓ 3 of 3")
    for body, panel, name in zip(bodies, panels, SERVED, strict=True):
        assert body["model"] == name and body["method"] == "gradcam"
        assert body["class"] == body["predictions"][0]["class"]  # the net's own top-1
        assert name in panel and f"Grad-CAM for **{body['class']}**" in panel and body["layer"] in panel
    faint, strong = app.render_cams(bodies, image, 0.1), app.render_cams(bodies, image, 0.9)
    base = np.asarray(app.render_cams(bodies, image, 0.0)[0], dtype=float)
    for a, b in zip(faint, strong, strict=True):
        assert a.size == b.size == (app.OVERLAY_SIZE, app.OVERLAY_SIZE)
    assert np.abs(np.asarray(faint[0], float) - base).mean() < np.abs(np.asarray(strong[0], float) - base).mean()

    _, cat_bodies, cat_panels = app.explain_all(local_backend, image, "cat", "gradcam")
    assert all(b["class"] == "cat" for b in cat_bodies) and all("for **cat**" in p for p in cat_panels)
    text, eigen, _ = app.explain_all(local_backend, image, "cat", "eigencam")  # no class: said, not an error
    assert "Eigen-CAM has no class" in text and all(b["method"] == "eigencam" for b in eigen)


def test_explain_errors_stay_on_page(example_image) -> None:
    status, bodies, _ = app.explain_all(_dead_backend(), example_image[0], None, "gradcam")
    assert "unreachable" in status and bodies == [None] * app.NUM_SLOTS
    assert app.render_cams(bodies, example_image[0]) == [None] * app.NUM_SLOTS
    assert "Pick an example" in app.explain_all(_dead_backend(), None, None, None)[0]


def test_each_nets_default_method(local_backend: LocalBackend, example_image) -> None:
    """The method radio's first choice sends no method: every net answers with its own default."""
    from cifarlens_runtime.predictor import Predictor

    assert next(iter(app.METHOD_LABELS)) == "default" and set(app.METHOD_LABELS) - {"default"} == set(METHODS)
    status, bodies, panels = app.explain_all(local_backend, example_image[0], app.TOP1_CHOICE, "default")
    assert status.startswith("✓ 3 of 3")
    for body, panel in zip(bodies, panels, strict=True):
        predictor = Predictor(local_backend.artifacts / body["model"])
        assert (body["method"], body["layer"]) == (predictor.cam_method, predictor.cam_layer)
        assert app.METHOD_LABELS[predictor.cam_method].split(" (")[0] in panel


def test_a_blank_map_is_said_in_words_and_not_drawn(weights_artifacts: Path, cifar10_test_jpegs) -> None:
    """With the shipped weights, Grad-CAM at inception_net's default layer has no positive cell for some test
    images: its panel says so, naming the class and the layer, and its picture is the plain input, while the
    other nets' maps are drawn over it."""
    from cifarlens_runtime.predictor import Predictor
    from cifarlens_runtime.preprocess import preprocess, resize

    predictor = Predictor(weights_artifacts / "inception_net")
    jpegs = [jpeg for _, jpeg in cifar10_test_jpegs(300)]
    _, cams, _ = predictor.cam(np.stack([preprocess(j) for j in jpegs]), "gradcam")
    blank = [i for i, cam in enumerate(cams) if not (cam > 0).any()]
    assert blank, "no blank Grad-CAM among 300 test images: pick another case for this test"
    image = Image.open(io.BytesIO(jpegs[blank[0]])).convert("RGB")
    status, bodies, panels = app.explain_all(LocalBackend(weights_artifacts), image, app.TOP1_CHOICE, "gradcam")
    assert status.startswith("✓"), status
    pictures = app.render_cams(bodies, image, 0.9)
    plain = np.asarray(resize(image).resize((app.OVERLAY_SIZE, app.OVERLAY_SIZE), Image.Resampling.NEAREST))
    for body, panel, picture in zip(bodies, panels, pictures, strict=True):
        if body["model"] == "inception_net":
            assert body["blank"] is True and np.asarray(body["cam"]).max() == 0
            assert f"no positive evidence for '{body['class']}' at {predictor.cam_layer}" in panel, panel
            np.testing.assert_array_equal(np.asarray(picture), plain)
        elif not body["blank"]:
            assert "no positive evidence" not in panel
            assert np.abs(np.asarray(picture, float) - plain).mean() > 1.0  # a map is drawn
