"""The class-activation-map section's callbacks: every net's map for its top-1 or a picked class, each net's
default method, a blank map said in words, and errors on the page."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from cifarlens_runtime.vocabulary import METHODS
from gradio_ui.client import LocalBackend, TorchServeBackend
from gradio_ui.sections import cams
from gradio_ui.sections.common import NUM_SLOTS, OVERLAY_SIZE
from training.models import list_models

SERVED = sorted(list_models())


def test_explain_all_and_render(local_backend: LocalBackend, example_image) -> None:
    image, _ = example_image
    status, bodies, panels = cams.explain_all(local_backend, image, cams.TOP1_CHOICE, "gradcam")
    assert status.startswith("✓ 3 of 3")
    for body, panel, name in zip(bodies, panels, SERVED, strict=True):
        assert body["model"] == name and body["method"] == "gradcam"
        assert body["class"] == body["predictions"][0]["class"]  # the net's own top-1
        assert name in panel and f"Grad-CAM for **{body['class']}**" in panel and body["layer"] in panel
    faint, strong = cams.render_cams(bodies, image, 0.1), cams.render_cams(bodies, image, 0.9)
    base = np.asarray(cams.render_cams(bodies, image, 0.0)[0], dtype=float)
    for a, b in zip(faint, strong, strict=True):
        assert a.size == b.size == (OVERLAY_SIZE, OVERLAY_SIZE)
    assert np.abs(np.asarray(faint[0], float) - base).mean() < np.abs(np.asarray(strong[0], float) - base).mean()

    _, cat_bodies, cat_panels = cams.explain_all(local_backend, image, "cat", "gradcam")
    assert all(b["class"] == "cat" for b in cat_bodies) and all("for **cat**" in p for p in cat_panels)
    text, eigen, _ = cams.explain_all(local_backend, image, "cat", "eigencam")  # no class: said, not an error
    assert "Eigen-CAM has no class" in text and all(b["method"] == "eigencam" for b in eigen)


def test_explain_errors_stay_on_page(dead_backend: TorchServeBackend, example_image) -> None:
    status, bodies, _ = cams.explain_all(dead_backend, example_image[0], None, "gradcam")
    assert "unreachable" in status and bodies == [None] * NUM_SLOTS
    assert cams.render_cams(bodies, example_image[0]) == [None] * NUM_SLOTS
    assert "Pick an example" in cams.explain_all(dead_backend, None, None, None)[0]


def test_each_nets_default_method(local_backend: LocalBackend, example_image) -> None:
    """The method radio's first choice sends no method: every net answers with its own default."""
    from cifarlens_runtime.predictor import Predictor

    assert next(iter(cams.METHOD_LABELS)) == "default" and set(cams.METHOD_LABELS) - {"default"} == set(METHODS)
    status, bodies, panels = cams.explain_all(local_backend, example_image[0], cams.TOP1_CHOICE, "default")
    assert status.startswith("✓ 3 of 3")
    for body, panel in zip(bodies, panels, strict=True):
        predictor = Predictor(local_backend.artifacts / body["model"])
        assert (body["method"], body["layer"]) == (predictor.cam_method, predictor.cam_layer)
        assert cams.METHOD_LABELS[predictor.cam_method].split(" (")[0] in panel


def test_a_blank_map_is_said_in_words_and_not_drawn(weights_artifacts: Path, cifar10_test_jpegs) -> None:
    """With the shipped weights, Grad-CAM at inception_net's default layer has no positive cell for some test
    images: its panel says so, naming the class and the layer, and its picture is the plain input, while the
    other nets' maps are drawn over it."""
    from cifarlens_runtime.predictor import Predictor
    from cifarlens_runtime.preprocess import preprocess, resize

    predictor = Predictor(weights_artifacts / "inception_net")
    jpegs = [jpeg for _, jpeg in cifar10_test_jpegs(300)]
    _, maps, _ = predictor.cam(np.stack([preprocess(j) for j in jpegs]), "gradcam")
    blank = [i for i, cam in enumerate(maps) if not (cam > 0).any()]
    assert blank, "no blank Grad-CAM among 300 test images: pick another case for this test"
    image = Image.open(io.BytesIO(jpegs[blank[0]])).convert("RGB")
    status, bodies, panels = cams.explain_all(LocalBackend(weights_artifacts), image, cams.TOP1_CHOICE, "gradcam")
    assert status.startswith("✓"), status
    pictures = cams.render_cams(bodies, image, 0.9)
    plain = np.asarray(resize(image).resize((OVERLAY_SIZE, OVERLAY_SIZE), Image.Resampling.NEAREST))
    for body, panel, picture in zip(bodies, panels, pictures, strict=True):
        if body["model"] == "inception_net":
            assert body["blank"] is True and np.asarray(body["cam"]).max() == 0
            assert f"no positive evidence for '{body['class']}' at {predictor.cam_layer}" in panel, panel
            np.testing.assert_array_equal(np.asarray(picture), plain)
        elif not body["blank"]:
            assert "no positive evidence" not in panel
            assert np.abs(np.asarray(picture, float) - plain).mean() > 1.0  # a map is drawn
