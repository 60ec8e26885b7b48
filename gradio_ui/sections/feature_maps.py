"""Feature maps: one net's activations at one layer (both picked from what the server lists), as a grid of the
strongest channels, their mean over the input, per-channel statistics and a plot. The activations are fetched
once; the channel count and the colormap redraw them here without a request."""

from __future__ import annotations

import time
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from cifarlens_runtime.grid import channel_grid, channel_order, mean_overlay
from cifarlens_runtime.responses import decode_activations
from gradio_ui.client import Backend, BackendError
from gradio_ui.sections.common import (
    NO_IMAGE,
    PRIVATE,
    Listener,
    Page,
    Section,
    figure_image,
    model_names,
    overlay_base,
    pyplot,
)
from gradio_ui.uploads import PageImage, body_of

COLORMAPS = ("viridis", "magma", "inferno", "gray", "coolwarm")
DEFAULT_CHANNELS = 64
MAX_CHANNELS = 1024
STATS_HEADERS = ["rank", "channel", "mean", "max", "min", "std"]


def net_choices(backend: Backend, current: str | None) -> tuple[list[str], str | None]:
    """The nets the server serves, and the one to select: `current` while it is still served, else the first."""
    names, _ = model_names(backend)
    return names, (current if current in names else (names[0] if names else None))


def layer_choices(backend: Backend, model: str | None) -> tuple[list[tuple[str, str]], str | None, str]:
    """The layers `model` offers (from the server's listing), the first one, and a status line."""
    if not model:
        return [], None, "Choose a net."
    try:
        listing = backend.listing(model)
    except BackendError as exc:
        return [], None, f"⚠ cannot list the layers of {model}: {exc}"
    layers = listing.get("layers", [])
    choices = [(f"{d['name']}  ({'×'.join(str(s) for s in d.get('shape', []))})", d["name"]) for d in layers]
    return choices, (layers[0]["name"] if layers else None), f"{model}: {len(layers)} layers."


def fetch_feature_maps(
    backend: Backend, image: Image.Image | PageImage | None, model: str | None, layer: str | None
) -> tuple[np.ndarray | None, str]:
    """The (C, H, W) activations of `layer` for the image, and a line with the shape and the top prediction."""
    if image is None:
        return None, NO_IMAGE
    if not model or not layer:
        return None, "Choose a net and a layer."
    start = time.perf_counter()
    try:
        body = backend.feature_maps(model, layer, body_of(image))
        act = decode_activations(body)
    except BackendError as exc:
        return None, f"⚠ {exc}"
    except (KeyError, ValueError, TypeError) as exc:
        return None, f"⚠ the server's feature-map answer is malformed: {exc}"
    latency_ms = 1000 * (time.perf_counter() - start)
    top = body.get("predictions", [{}])[0]
    c, h, w = act.shape
    return act, (
        f"**{model} / {layer}**: {c} channels of {h}×{w} · top-1 {top.get('class', '?')} "
        f"({100 * float(top.get('probability', 0)):.1f} %) · {latency_ms:.1f} ms via {backend.name}"
    )


def channel_stats(act: np.ndarray) -> list[list[float | int]]:
    """Per-channel mean, max, min and std, strongest mean first (the grid's order)."""
    flat = act.reshape(act.shape[0], -1)
    return [
        [rank, int(c), *(round(float(f(flat[c])), 4) for f in (np.mean, np.max, np.min, np.std))]
        for rank, c in enumerate(channel_order(act), start=1)
    ]


def stats_plot(act: np.ndarray) -> Image.Image:
    """Sorted channel means with their max, so one glance shows how many channels carry signal."""
    plt = pyplot()
    flat = act.reshape(act.shape[0], -1)
    order = channel_order(act)
    fig, ax = plt.subplots(figsize=(6, 2.4), dpi=100)
    x = np.arange(len(order))
    ax.bar(x, flat[order].max(axis=1), color="#c7d7ee", width=1.0, label="max")
    ax.plot(x, flat[order].mean(axis=1), color="#1f4e9c", lw=1.5, label="mean")
    ax.set_xlabel("channel (sorted by mean)")
    ax.set_ylabel("activation")
    ax.legend(loc="upper right", fontsize=8)
    return figure_image(fig)


def render_feature_maps(
    act: np.ndarray | None,
    image: Image.Image | PageImage | None,
    channels: int = DEFAULT_CHANNELS,
    cmap: str = "viridis",
) -> tuple[Image.Image | None, Image.Image | None, list[list[float | int]], Image.Image | None]:
    """Grid of the strongest `channels` channels, mean activation over the input, statistics table and plot.

    Runs locally on the activations already fetched, so the slider and the colormap need no request.
    """
    if act is None:
        return None, None, [], None
    grid = channel_grid(act, max_channels=int(channels), tile=48, cmap=cmap, sort=True)
    overlay = mean_overlay(overlay_base(image), act) if image is not None else None
    return grid, overlay, channel_stats(act), stats_plot(act)


def _layout() -> dict[str, Any]:
    """The pickers, the button, the info line and the four views, by name."""
    c: dict[str, Any] = {}
    with gr.Row():
        c["net"] = gr.Dropdown(choices=[], value=None, label="Net (from the server)", elem_id="fm-net")
        c["layer"] = gr.Dropdown(choices=[], value=None, label="Layer (from the server)", elem_id="fm-layer")
        c["channels"] = gr.Slider(1, MAX_CHANNELS, value=DEFAULT_CHANNELS, step=1, label="Channels shown")
        c["cmap"] = gr.Dropdown(choices=list(COLORMAPS), value=COLORMAPS[0], label="Colormap")
        c["button"] = gr.Button("Show feature maps", elem_id="fm-btn")
    c["info"] = gr.Markdown(elem_id="fm-info")
    image = {"type": "pil", "format": "png", "interactive": False}
    with gr.Row():
        c["grid"] = gr.Image(label="Channels, strongest mean first", elem_id="fm-grid", **image)
        c["overlay"] = gr.Image(label="Mean activation over the input", elem_id="fm-overlay", **image)
    with gr.Row():
        c["stats"] = gr.Dataframe(
            headers=STATS_HEADERS, label="Per-channel statistics", max_height=300, interactive=False, elem_id="fm-stats"
        )
        c["plot"] = gr.Image(label="Channel means (line) and maxima (bars)", elem_id="fm-plot", **image)
    return c


def build(backend: Backend, page: Page) -> Section:
    """The section, fetched on a click, a new net or a new layer; its pickers refreshed from the server."""
    gr.Markdown("## Feature maps")
    activations = gr.State(None)
    c = _layout()

    def _pickers(current: str | None) -> tuple[Any, Any]:
        names, value = net_choices(backend, current)
        if value == current and current is not None:  # the same net: its layer stays
            return gr.Dropdown(choices=names, value=value), gr.skip()
        choices, first, _ = layer_choices(backend, value)
        return gr.Dropdown(choices=names, value=value), gr.Dropdown(choices=choices, value=first)

    def _layers(model: str | None) -> tuple[Any, ...]:
        choices, value, text = layer_choices(backend, model)
        return gr.Dropdown(choices=choices, value=value), text

    def _features(img: Any, model: str | None, name: str | None, n: int, cm: str) -> tuple:
        pic, error = page.picture(img)
        act, text = fetch_feature_maps(backend, pic, model, name)
        return (act, error or text, *render_feature_maps(act, pic, n, cm))

    def _rerender(act: np.ndarray | None, img: Any, n: int, cm: str) -> tuple:
        return render_feature_maps(act, page.picture(img)[0], n, cm)

    fetch = {"inputs": [page.image, c["net"], c["layer"], c["channels"], c["cmap"]],
             "outputs": [activations, c["info"], c["grid"], c["overlay"], c["stats"], c["plot"]]}  # fmt: skip
    c["net"].input(_layers, inputs=[c["net"]], outputs=[c["layer"], c["info"]], **PRIVATE).then(
        _features, **fetch, **PRIVATE
    )
    c["layer"].input(_features, **fetch, **PRIVATE)
    c["button"].click(_features, **fetch, **PRIVATE)
    redraw = {"inputs": [activations, page.image, c["channels"], c["cmap"]], "outputs": fetch["outputs"][2:]}
    c["channels"].release(_rerender, **redraw, **PRIVATE)
    c["cmap"].input(_rerender, **redraw, **PRIVATE)

    def on_server(listen: Listener) -> Any:
        return listen(_pickers, inputs=[c["net"]], outputs=[c["net"], c["layer"]], **PRIVATE)

    return Section(on_server=on_server)
