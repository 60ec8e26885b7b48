"""The shipped nets' class activation maps are faithful: the checks of benchmarks/cam_faithfulness.py, on 200
real test images.

Deletion: hiding the 20 % of pixels a net's Grad-CAM (at the last layer of at least 8x8) or its default map (the
method and layer its model file names) ranks highest lowers the top-1 probability more than
hiding a random 20 % of the map's cells (same blocky shapes, random places), and far more than hiding the 20 %
it ranks lowest. Localisation: a test image pasted into one quadrant of a grey canvas draws most of the Grad-CAM
mass for its true class into that quadrant. Both hold for every shipped net and fail for maps that say nothing
(the last test turns the maps into noise and watches both checks fail).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.cam_faithfulness import deletion, load_test_images, localisation
from cifarlens_runtime.cam import default_layer
from cifarlens_runtime.predictor import Predictor
from cifarlens_runtime.preprocess import to_array
from tests.conftest import committed_models

PER_CLASS = 20  # 200 images per net (the issue asks for at least 100)
# About 2.5 minutes on a 2-core AVX2 EPYC: `make test-heavy`, not `make test`.
pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def images(cifar10_dir: Path | None):
    if cifar10_dir is None:
        pytest.skip("CIFAR-10 test images not found: set DATA_DIR or provide ../shared/data/cifar10")
    pictures, labels, _ = load_test_images(cifar10_dir, PER_CLASS)
    return pictures, labels


@pytest.mark.parametrize("model", committed_models())
def test_shipped_grad_cam_is_faithful(weights_artifacts: Path, images, model: str) -> None:
    pictures, labels = images
    predictor = Predictor(weights_artifacts / model)
    layer = default_layer(predictor.layer_shapes)  # Grad-CAM's layer before the nets named their defaults
    d = deletion(predictor, np.stack([to_array(p) for p in pictures]), "gradcam", layer=layer)
    assert d["images"] >= 100
    assert d["drop_cam"] > d["drop_random_cells"] > d["drop_least_cam"], d
    assert d["cam_hurts_more_than_random_cells"] > 0.5, d
    loc = localisation(predictor, pictures, labels, "gradcam", layer)
    assert loc["mass_in_quadrant"] > 0.5 and loc["majority_in_quadrant"] > 0.5, loc


def test_checks_fail_for_maps_that_say_nothing(weights_artifacts: Path, images, monkeypatch) -> None:
    """The same checks on random maps: deletion no better than random cells, localisation near chance."""
    pictures, labels = images
    predictor = Predictor(weights_artifacts / "se_net")
    real_cam = predictor.cam
    rng = np.random.default_rng(0)

    def noise(*args, **kwargs):
        probs, cams, chosen = real_cam(*args, **kwargs)
        return probs, rng.random(cams.shape).astype(np.float32), chosen

    monkeypatch.setattr(predictor, "cam", noise)
    d = deletion(predictor, np.stack([to_array(p) for p in pictures]), "gradcam")
    loc = localisation(predictor, pictures, labels, "gradcam")
    assert not d["drop_cam"] > 1.2 * d["drop_random_cells"], d
    assert loc["mass_in_quadrant"] < 0.35, loc


@pytest.mark.parametrize("model", committed_models())
def test_shipped_default_map_is_rarely_blank_and_faithful(weights_artifacts: Path, images, model: str) -> None:
    """Each shipped net's default map (the method and layer its model file names, chosen by benchmarks/cam.py on
    1,000 test images) is blank (no positive cell, top-1 class) for at most 1 % of these images, and passes the
    same deletion and localisation checks; the committed measurement says that is the choice it made."""
    import json

    from benchmarks.cam_defaults import blank_shares, gradient_maps
    from benchmarks.common import RESULTS
    from cifarlens_runtime.vocabulary import GRADIENT_METHODS

    pictures, labels = images
    predictor = Predictor(weights_artifacts / model)
    method, layer = predictor.cam_method, predictor.cam_layer
    measured = json.loads((RESULTS / "cam_cpu.json").read_text())["nets"][model]["default"]
    assert measured == {"method": method, "layer": layer} and method in GRADIENT_METHODS
    x = np.stack([to_array(p) for p in pictures])
    _, cams, _ = predictor.cam(x)
    blank = float(np.mean([not (c > 0).any() for c in cams]))
    assert blank <= 0.01, f"{model}: {method} at {layer} is blank for {100 * blank:.1f} % of {len(x)} images"
    # The benchmark's path (every method at every layer) gives the service's maps: on 20 images, which keeps
    # this test at a fifth of the time (InceptionNet has ten layers).
    maps, _, _ = gradient_maps(predictor, x[:20])
    np.testing.assert_allclose(maps[(method, layer)], cams[:20], atol=1e-6)
    assert blank_shares(maps)[layer][method]["blank"] == pytest.approx(np.mean([not (c > 0).any() for c in cams[:20]]))
    d = deletion(predictor, x, method)
    assert d["drop_cam"] > d["drop_random_cells"] > d["drop_least_cam"], d
    loc = localisation(predictor, pictures, labels, method)
    assert loc["mass_in_quadrant"] > 0.5 and loc["majority_in_quadrant"] > 0.5, loc
