"""The feature-map section's callbacks against the in-process backend and a dead server."""

from __future__ import annotations

from gradio_ui.client import LocalBackend, TorchServeBackend
from gradio_ui.sections import feature_maps
from gradio_ui.sections.common import OVERLAY_SIZE
from training.models import list_models

SERVED = sorted(list_models())


def test_net_choices_keep_a_served_net(local_backend: LocalBackend, dead_backend: TorchServeBackend) -> None:
    assert feature_maps.net_choices(local_backend, None) == (SERVED, SERVED[0])
    assert feature_maps.net_choices(local_backend, "se_net") == (SERVED, "se_net")
    assert feature_maps.net_choices(local_backend, "gone_net") == (SERVED, SERVED[0])
    # No names invented: "Check server" fills the picker once the server answers.
    assert feature_maps.net_choices(dead_backend, "se_net") == ([], None)


def test_feature_maps_flow(local_backend: LocalBackend, example_image) -> None:
    image, _ = example_image
    listing = local_backend.listing("se_net")
    choices, first, _ = feature_maps.layer_choices(local_backend, "se_net")
    assert [value for _, value in choices] == [d["name"] for d in listing["layers"]]
    assert first == listing["layers"][0]["name"]
    layer = listing["layers"][1]
    act, info = feature_maps.fetch_feature_maps(local_backend, image, "se_net", layer["name"])
    assert list(act.shape) == layer["shape"] and layer["name"] in info
    grid4, overlay, stats, plot = feature_maps.render_feature_maps(act, image, 4, "magma")
    grid_all, *_ = feature_maps.render_feature_maps(act, image, 1024, "viridis")
    assert grid4.size[0] < grid_all.size[0]
    assert overlay.size == (OVERLAY_SIZE, OVERLAY_SIZE) and plot.size[0] > 0
    means = [row[2] for row in stats]
    assert len(stats) == act.shape[0] and means == sorted(means, reverse=True)
    assert sorted(row[1] for row in stats) == list(range(act.shape[0]))
    c = stats[0][1]
    flat = act[c].ravel()
    assert stats[0][2:] == [round(float(f), 4) for f in (flat.mean(), flat.max(), flat.min(), flat.std())]


def test_feature_map_errors_stay_on_page(local_backend: LocalBackend, example_image) -> None:
    act, info = feature_maps.fetch_feature_maps(local_backend, example_image[0], "se_net", "nope")
    assert act is None and info.startswith("⚠") and "unknown layer" in info
    assert feature_maps.fetch_feature_maps(local_backend, None, "se_net", "se1")[0] is None
    assert feature_maps.render_feature_maps(None, None) == (None, None, [], None)
    assert feature_maps.layer_choices(local_backend, "no_such_net")[2].startswith("⚠")


def test_unreachable_server_is_reported_not_raised(dead_backend: TorchServeBackend, example_image) -> None:
    assert "unreachable" in feature_maps.layer_choices(dead_backend, "se_net")[2]
    assert "unreachable" in feature_maps.fetch_feature_maps(dead_backend, example_image[0], "se_net", "se1")[1]
