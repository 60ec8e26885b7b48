"""The page's callbacks against a real TorchServe (the session's `torchserve` fixture of tests/conftest.py).

Both backends serve the same artefacts, so the REST answers must equal the in-process ones.
"""

from __future__ import annotations

import json

import pytest

from gradio_ui import app
from gradio_ui.client import BackendError, LocalBackend, TorchServeBackend
from gradio_ui.sections import cams, compare, feature_maps, predictions
from gradio_ui.sections.common import NUM_SLOTS
from gradio_ui.uploads import image_bytes
from training.models import list_models

SERVED = sorted(list_models())


@pytest.fixture(scope="module")
def rest(torchserve) -> TorchServeBackend:
    return TorchServeBackend(
        torchserve.inference_url, management_url=torchserve.management_url, key_file=torchserve.key_file, timeout=60
    )


def test_models_and_status(rest: TorchServeBackend) -> None:
    assert rest.models() == SERVED
    assert rest.ping() == "Healthy"
    status, banner = app.on_load(rest)
    assert status.startswith("✓") and "torchserve" in status
    assert feature_maps.net_choices(rest, None) == (SERVED, SERVED[0])
    assert "barely trained" in banner


def test_rest_answers_equal_local_ones(rest: TorchServeBackend, local_backend: LocalBackend, example_image) -> None:
    body = image_bytes(example_image[0])
    for model in list_models():
        assert rest.listing(model) == local_backend.listing(model)
        assert rest.predict(model, body) == local_backend.predict(model, body)
    layer = rest.listing("inception_net")["layers"][2]["name"]
    remote = rest.feature_maps("inception_net", layer, body)
    local = local_backend.feature_maps("inception_net", layer, body)
    assert json.dumps(remote, sort_keys=True) == json.dumps(local, sort_keys=True)


def test_rest_maps_equal_local_ones(rest: TorchServeBackend, local_backend: LocalBackend, example_image) -> None:
    """The explanations API through TorchServe gives the in-process maps, with every choice passed on."""
    body = image_bytes(example_image[0])
    for model in list_models():
        for kwargs in ({}, {"target": "ship"}, {"method": "eigencam"}):
            remote, local = rest.cam(model, body, **kwargs), local_backend.cam(model, body, **kwargs)
            assert remote.keys() == local.keys() and remote["layer"] == local["layer"]
            assert (remote["class"], remote["method"]) == (local["class"], local["method"])
            assert max(abs(a - b) for r, q in zip(remote["cam"], local["cam"]) for a, b in zip(r, q)) < 2e-4
    layer = rest.listing("inception_net")["layers"][3]["name"]
    assert rest.cam("inception_net", body, layer=layer, target="3")["layer"] == layer
    with pytest.raises(BackendError, match="unknown class 'kat'"):
        rest.cam("se_net", body, target="kat")
    assert rest.cam("se_net", body, target=" DOG ", method="GradCAM")["class"] == "dog"
    status, bodies, panels = cams.explain_all(rest, example_image[0], "dog", "gradcam")
    assert status.startswith("✓ 3 of 3") and all(b["class"] == "dog" for b in bodies)
    assert all("via torchscript" in p for p in panels)


def test_callbacks_over_rest(rest: TorchServeBackend, example_image) -> None:
    image, label = example_image
    status, names, labels, panels = predictions.predict_all(rest, image, label)
    assert status.startswith("✓") and names == SERVED
    assert all(v is not None and len(v) == 5 for v in labels)
    assert all("latency" in p and "test accuracy **10.0 %**" in p for p in panels)
    choices, first, _ = feature_maps.layer_choices(rest, "se_net")
    assert first == choices[0][1]
    act, info = feature_maps.fetch_feature_maps(rest, image, "se_net", choices[-1][1])
    assert act is not None and "via torchserve" in info
    grid, overlay, stats, _ = feature_maps.render_feature_maps(act, image, 16, "viridis")
    assert grid is not None and overlay is not None and len(stats) == act.shape[0]


def test_errors_from_the_server_reach_the_page(rest: TorchServeBackend, torchserve, example_image) -> None:
    act, info = feature_maps.fetch_feature_maps(rest, example_image[0], "se_net", "no_such_layer")
    assert act is None and "unknown layer 'no_such_layer': se_net has se1" in info
    with pytest.raises(BackendError, match="400"):
        rest.predict("se_net", b"definitely not an image")
    wrong = TorchServeBackend(
        torchserve.inference_url, management_url=torchserve.management_url, token="wrong", management_token="wrong"
    )
    status = app.status_markdown(wrong)
    # TorchServe 0.12 answers a wrong key with 400 or 401 depending on the API; the page names the token either way.
    assert "not available" in status and "refused the" in status and "CIFARLENS_KEY_FILE" in status
    text, _, labels, _ = predictions.predict_all(wrong, example_image[0], None)
    assert "refused the" in text and labels == [None] * NUM_SLOTS
    only_inference = TorchServeBackend(
        torchserve.inference_url,
        management_url=torchserve.management_url,
        token=torchserve.token("inference"),
        management_token="wrong",
        known_models=["se_net"],  # without the management key, the nets the page was told of (as in compose)
    )
    wrong_inference = TorchServeBackend(
        torchserve.inference_url, management_url=torchserve.management_url, token="wrong", known_models=["se_net"]
    )
    with pytest.raises(BackendError, match="refused the inference token"):
        wrong_inference.predict("se_net", image_bytes(example_image[0]))
    assert only_inference.predict("se_net", image_bytes(example_image[0]))["model"] == "se_net"


def test_compare_over_rest(rest: TorchServeBackend, local_backend: LocalBackend) -> None:
    """The comparison reads the same listings over REST, and times real HTTP requests to TorchServe."""
    text, table, _ = compare.compare_view(rest)
    assert table == compare.compare_view(local_backend)[1] and "listing on **torchserve**" in text
    text, rows = compare.measure_latency(rest, None, 5)
    assert "REST over HTTP to TorchServe" in text and rest.url in text
    assert [row[0] for row in rows] == SERVED and all(row[-1] == 5 and 0 < row[1] <= row[2] for row in rows)
