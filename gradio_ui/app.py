"""The page: layout in `build_app`, callbacks as plain functions of (backend, inputs) so tests call them directly.

Every callback catches `BackendError` and puts its message on the page (the status line or the
net's own panel), so an unreachable or failing server never breaks the page.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from typing import Any

import gradio as gr
import numpy as np
from gradio.data_classes import FileData
from PIL import Image

from cifarlens_runtime.cam import METHODS
from cifarlens_runtime.constants import CLASSES, HOST, TOP_K, UI_PORT
from cifarlens_runtime.grid import channel_grid, channel_order, heat_overlay, mean_overlay
from cifarlens_runtime.preprocess import resize
from cifarlens_runtime.responses import decode_activations
from gradio_ui.client import Backend, BackendError
from gradio_ui.examples import Example
from gradio_ui.uploads import (
    CACHE_MAX_AGE_S,
    CACHE_SWEEP_S,
    MAX_UPLOAD_BYTES,
    ImageFiles,
    PageImage,
    UploadError,
    page_image,
)

# Nets shown side by side (the project trains three); the names in the columns come from the server.
NUM_SLOTS = 3
COLORMAPS = ("viridis", "magma", "inferno", "gray", "coolwarm")
DEFAULT_CHANNELS = 64
MAX_CHANNELS = 1024
OVERLAY_SIZE = 256
# Below this, a net's metrics say it is barely trained (a smoke run): the page warns.
BARELY_TRAINED_EPOCHS = 3
BARELY_TRAINED_ACC = 0.5
STATS_HEADERS = ["rank", "channel", "mean", "max", "min", "std"]
# Class activation maps: the class picker's "each net's own top-1" entry, the methods' labels, the default opacity.
TOP1_CHOICE = "top-1 of each net"
# "default": no method in the request, so each net answers with its own default (metadata.json, see the README).
METHOD_LABELS = {
    "default": "Each net's default",
    "gradcam": "Grad-CAM (per class)",
    "gradcampp": "Grad-CAM++ (per class)",
    "layercam": "LayerCAM (per class)",
    "hirescam": "HiResCAM (per class)",
    "eigencam": "Eigen-CAM (no gradients, one map for all classes)",
}
DEFAULT_OPACITY = 0.5

CSS = """
#input-image img, #example-gallery img, #fm-grid img, #fm-overlay img { image-rendering: pixelated; }
.cam-overlay img { image-rendering: pixelated; }
#input-image img { width: 100%; height: 100%; object-fit: contain; }
#status { min-height: 1.5em; }
"""


# --- small helpers ---


def image_bytes(image: Image.Image) -> bytes:
    """PNG bytes of a picture the page made itself (lossless, so both backends see the same pixels)."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


def _body(image: Image.Image | PageImage) -> bytes:
    """What is sent to the nets: an uploaded file's own bytes (see gradio_ui.uploads), or a picture as PNG."""
    return image.body if isinstance(image, PageImage) else image_bytes(image)


def _shown(image: Image.Image | PageImage) -> Image.Image:
    """The upright RGB picture drawn under maps."""
    return image.shown if isinstance(image, PageImage) else image.convert("RGB")


def percent(x: Any) -> str:
    """An accuracy as a percentage, whether stored as a fraction or already in percent."""
    if not isinstance(x, (int, float)):
        return "n/a"
    return f"{100 * x:.1f} %" if x <= 1 else f"{x:.1f} %"


def label_value(body: dict[str, Any]) -> dict[str, float]:
    """{class: probability} of a prediction body, the value gr.Label(num_top_classes=k) takes."""
    return {p["class"]: float(p["probability"]) for p in body.get("predictions", [])}


def is_barely_trained(metrics: dict[str, Any]) -> bool:
    """Judged from the checkpoint's own metrics: few epochs, or a test accuracy not far above chance."""
    epochs, acc = metrics.get("epochs"), metrics.get("test_acc")
    if isinstance(epochs, (int, float)) and epochs < BARELY_TRAINED_EPOCHS:
        return True
    if isinstance(acc, (int, float)):
        return (acc if acc <= 1 else acc / 100) < BARELY_TRAINED_ACC
    return False


def metrics_line(metrics: dict[str, Any]) -> str:
    """Test accuracy and epochs, the net's metadata in one line."""
    parts = [f"test accuracy **{percent(metrics.get('test_acc'))}**"]
    if isinstance(metrics.get("epochs"), (int, float)):
        epochs = metrics["epochs"]
        parts.append(f"{epochs:g} epoch{'' if epochs == 1 else 's'}")
    if isinstance(metrics.get("params"), (int, float)):
        parts.append(f"{metrics['params'] / 1e6:.2f} M params")
    return " · ".join(parts)


def _listing(backend: Backend, model: str) -> dict[str, Any] | None:
    try:
        return backend.listing(model)
    except BackendError:
        return None


# --- status and page load ---


def model_names(backend: Backend) -> tuple[list[str], str | None]:
    """The server's models, or no names and the error when the server cannot say."""
    try:
        return backend.models(), None
    except BackendError as exc:
        return [], str(exc)


def status_markdown(backend: Backend) -> str:
    """One line on where the page gets its answers and whether that works right now."""
    names, error = model_names(backend)
    where = f"**{backend.name}** at `{backend.location}`"
    if not error:
        try:
            health = backend.ping()
            if health != "Healthy":
                error = f"it reports itself {health}."
        except BackendError as exc:
            error = str(exc)
    if error:
        return f"⚠ Backend {where} is not available: {error} The page keeps working; retry any time."
    return f"✓ Backend {where} · models: {', '.join(names)}"


def training_banner(backend: Backend, names: Sequence[str]) -> str:
    """A warning when the served nets are barely trained (by their own metrics, e.g. a smoke run of `make demo`)."""
    weak = []
    for name in names:
        listing = _listing(backend, name)
        if listing is not None and is_barely_trained(listing.get("metrics", {})):
            weak.append(f"{name} ({metrics_line(listing.get('metrics', {}))})")
    if not weak:
        return ""
    return (
        "⚠ **These nets are barely trained** (by their checkpoints' metrics): "
        + "; ".join(weak)
        + ". Their predictions are close to guesses; train them with `make train-all` for real results."
    )


def on_load(backend: Backend) -> tuple[str, str, list[str], str | None]:
    """Status line, training banner, the nets for the feature-map picker and the one selected."""
    names, _ = model_names(backend)
    return status_markdown(backend), training_banner(backend, names), names, (names[0] if names else None)


# --- input ---


def select_example(examples: Sequence[Example], index: int) -> tuple[Image.Image, str | None, str]:
    """The picked gallery image, its true class and a line saying so."""
    ex = examples[index]
    return ex.image, ex.label, true_class_markdown(ex.label)


def true_class_markdown(label: str | None) -> str:
    return f"True class: **{label}**" if label else "True class: unknown (your own image)"


# --- predictions ---


def net_markdown(
    model: str,
    body: dict[str, Any] | None,
    latency_ms: float | None,
    metrics: dict[str, Any],
    true_label: str | None,
    error: str | None = None,
) -> str:
    """The panel under a net's bars: name, test accuracy, latency, and how the true class fared."""
    lines = [f"### {model}", metrics_line(metrics) if metrics else "test accuracy n/a"]
    if is_barely_trained(metrics):
        lines.append("⚠ barely trained")
    if error:
        lines.append(f"⚠ {error}")
        return "\n\n".join(lines)
    lines.append(f"latency **{latency_ms:.1f} ms** ({body.get('backend', '?')})" if body else "")
    if true_label and body:
        ranked = [p["class"] for p in body.get("predictions", [])]
        if ranked and ranked[0] == true_label:
            lines.append(f"✓ correct: **{true_label}**")
        elif true_label in ranked:
            lines.append(f"✗ true class **{true_label}** ranked {ranked.index(true_label) + 1}")
        else:
            lines.append(f"✗ true class **{true_label}** not in the top {len(ranked)}")
    return "\n\n".join(line for line in lines if line)


def predict_all(
    backend: Backend, image: Image.Image | PageImage | None, true_label: str | None, slots: int = NUM_SLOTS
) -> tuple[str, list[str], list[dict[str, float] | None], list[str]]:
    """Ask every net for its top-5: the status line, then per slot the net's name, its Label value and its panel."""
    names = [f"net {i + 1}" for i in range(slots)]
    labels: list[dict[str, float] | None] = [None] * slots
    panels = [""] * slots
    if image is None:
        return "Pick an example or upload an image first.", names, labels, panels
    models, error = model_names(backend)
    if error:
        return f"⚠ {error}", names, labels, panels
    body_bytes = _body(image)
    failures, first_error = 0, ""
    for i, model in enumerate(models[:slots]):
        names[i] = model
        listing = _listing(backend, model)
        metrics = (listing or {}).get("metrics", {})
        start = time.perf_counter()
        try:
            body = backend.predict(model, body_bytes)
        except BackendError as exc:
            failures += 1
            first_error = first_error or str(exc)
            panels[i] = net_markdown(model, None, None, metrics, true_label, error=str(exc))
            continue
        latency_ms = 1000 * (time.perf_counter() - start)
        labels[i] = label_value(body)
        panels[i] = net_markdown(model, body, latency_ms, metrics, true_label)
    shown = min(len(models), slots)
    if failures and failures == shown:
        status = f"⚠ No net answered: {first_error}"
    elif failures:
        status = f"⚠ {failures} of {shown} nets failed to answer (see their panels); the others are shown."
    else:
        status = f"✓ {shown} nets answered via {backend.name} at `{backend.location}`."
    return status, names, labels, panels


# --- feature maps ---


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
        return None, "Pick an example or upload an image first."
    if not model or not layer:
        return None, "Choose a net and a layer."
    start = time.perf_counter()
    try:
        body = backend.feature_maps(model, layer, _body(image))
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
    order = channel_order(act)
    rows = []
    for rank, c in enumerate(order, start=1):
        v = flat[c]
        rows.append(
            [
                rank,
                int(c),
                round(float(v.mean()), 4),
                round(float(v.max()), 4),
                round(float(v.min()), 4),
                round(float(v.std()), 4),
            ]
        )
    return rows


def stats_plot(act: np.ndarray) -> Image.Image:
    """Sorted channel means with their max, so one glance shows how many channels carry signal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flat = act.reshape(act.shape[0], -1)
    order = channel_order(act)
    fig, ax = plt.subplots(figsize=(6, 2.4), dpi=100)
    x = np.arange(len(order))
    ax.bar(x, flat[order].max(axis=1), color="#c7d7ee", width=1.0, label="max")
    ax.plot(x, flat[order].mean(axis=1), color="#1f4e9c", lw=1.5, label="mean")
    ax.set_xlabel("channel (sorted by mean)")
    ax.set_ylabel("activation")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


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
    overlay = None
    if image is not None:
        base = resize(_shown(image)).resize((OVERLAY_SIZE, OVERLAY_SIZE), Image.Resampling.NEAREST)
        overlay = mean_overlay(base, act)
    return grid, overlay, channel_stats(act), stats_plot(act)


# --- class activation maps ---


def explain_all(
    backend: Backend,
    image: Image.Image | PageImage | None,
    target: str | None,
    method: str | None,
    slots: int = NUM_SLOTS,
) -> tuple[str, list[dict[str, Any] | None], list[str]]:
    """Ask every net for its class activation map of the image: the status line, then per slot the answer
    (None on failure) and its panel. `target` is a class name or TOP1_CHOICE/None for each net's own top-1."""
    bodies: list[dict[str, Any] | None] = [None] * slots
    panels = [""] * slots
    if image is None:
        return "Pick an example or upload an image first.", bodies, panels
    models, error = model_names(backend)
    if error:
        return f"⚠ {error}", bodies, panels
    method = method if method in METHODS else None  # None: each net's own default method
    wanted = None if target in (None, "", TOP1_CHOICE) or method == "eigencam" else target
    body_bytes = _body(image)
    failures = 0
    for i, model in enumerate(models[:slots]):
        start = time.perf_counter()
        try:
            body = backend.cam(model, body_bytes, target=wanted, method=method)
        except BackendError as exc:
            failures += 1
            panels[i] = f"### {model}\n\n⚠ {exc}"
            continue
        bodies[i] = body
        panels[i] = cam_markdown(body, 1000 * (time.perf_counter() - start))
    shown = min(len(models), slots)
    note = (
        " Eigen-CAM has no class: the picker applies to Grad-CAM." if method == "eigencam" and wanted != target else ""
    )
    if failures == shown:
        return f"⚠ No net could explain the image (see their panels).{note}", bodies, panels
    return f"✓ {shown - failures} of {shown} nets explained via {backend.name}.{note}", bodies, panels


def cam_markdown(body: dict[str, Any], latency_ms: float) -> str:
    """A CAM panel: the net, its top-1, the class the map is for, the method, the layer and the latency; for a
    blank map (no cell positive) the words that say so, since the picture shows only the input."""
    top = (body.get("predictions") or [{}])[0]
    lines = [
        f"### {body.get('model', '?')}",
        f"top-1 **{top.get('class', '?')}** ({100 * float(top.get('probability', 0)):.1f} %)",
    ]
    method = METHOD_LABELS.get(body.get("method", ""), body.get("method", "?")).split(" (")[0]
    shape = "×".join(str(s) for s in body.get("shape", []))
    if body.get("method") == "eigencam":
        lines.append(f"{method} at {body.get('layer')} ({shape})")
    else:
        lines.append(
            f"{method} for **{body.get('class')}** ({100 * float(body.get('probability', 0)):.1f} %) "
            f"at {body.get('layer')} ({shape})"
        )
    if body.get("blank"):
        evidence = "no positive evidence" + ("" if body.get("method") == "eigencam" else f" for '{body.get('class')}'")
        lines.append(f"⚠ {method}: {evidence} at {body.get('layer')}: the map is empty, so only the input is shown.")
    lines.append(f"{latency_ms:.1f} ms via {body.get('backend', '?')}")
    return "\n\n".join(lines)


def render_cams(
    bodies: Sequence[dict[str, Any] | None] | None,
    image: Image.Image | PageImage | None,
    opacity: float = DEFAULT_OPACITY,
) -> list[Image.Image | None]:
    """Each answer's map over the input image (locally, so the opacity slider needs no request); the plain input
    for a blank map (its panel says so in words), not an overlay of nothing."""
    bodies = list(bodies or [None] * NUM_SLOTS)
    if image is None:
        return [None] * len(bodies)
    base = resize(_shown(image)).resize((OVERLAY_SIZE, OVERLAY_SIZE), Image.Resampling.NEAREST)
    shown: list[Image.Image | None] = []
    for b in bodies:
        if b is None:
            shown.append(None)
        else:
            shown.append(
                base.copy() if b.get("blank") else heat_overlay(base, np.asarray(b["cam"], np.float32), opacity)
            )
    return shown


# --- the named API (gradio_client): typed functions over the backend, errors as gr.Error ---


def api_functions(backend: Backend, files: ImageFiles) -> dict[str, Any]:
    """`/predict`, `/feature_maps` and `/cam`: the REST answers of the backend, for an image uploaded to the page
    (or one of its gallery's); names are checked by the backend before they go into a URL."""

    def _read(image: Any) -> bytes:
        try:
            return page_image(image, files).body
        except UploadError as exc:
            raise gr.Error(str(exc)) from None

    def _call(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return fn(*args, **kwargs)
        except BackendError as exc:
            raise gr.Error(str(exc)) from None

    def predict(image: FileData, model: str) -> dict[str, Any]:
        """The top-5 classes of one net for an image (JPEG, PNG, WebP, GIF or BMP)."""
        return _call(backend.predict, model, _read(image))

    def feature_maps(image: FileData, model: str, layer: str) -> dict[str, Any]:
        """One layer's activations (base64 float16, with their shape) and the top-5 of one net."""
        return _call(backend.feature_maps, model, layer, _read(image))

    def cam(image: FileData, model: str, layer: str = "", class_name: str = "", method: str = "") -> dict[str, Any]:
        """A class activation map in [0, 1] (layer resolution and 32x32). Empty layer, class or method: the net's
        defaults (the top-1 class); `class_name` a class name (any case) or one digit 0-9."""
        return _call(backend.cam, model, _read(image), layer=layer or None, target=class_name or None, method=method)

    return {"predict": predict, "feature_maps": feature_maps, "cam": cam}


# --- layout ---


def build_app(backend: Backend, examples: Sequence[Example] = (), data_note: str = "") -> Any:
    """The Blocks of the page; launch it with `launch`."""
    examples = list(examples)
    with gr.Blocks(
        title="cifarlens: inside three CIFAR-10 nets", delete_cache=(CACHE_SWEEP_S, CACHE_MAX_AGE_S)
    ) as demo:
        # The only files callbacks and the named API read: those Gradio took in or wrote in this process.
        files = ImageFiles(lambda: demo.temp_file_sets)
        gr.Markdown("# cifarlens: inside three CIFAR-10 nets")
        status = gr.Markdown(elem_id="status")
        banner = gr.Markdown(elem_id="training-banner")
        true_label = gr.State(None)
        activations = gr.State(None)

        with gr.Row():
            with gr.Column(scale=1):
                # A path, so that the upload's own bytes reach the nets (see gradio_ui.uploads); format: what
                # Gradio saves a pasted or gallery picture as.
                image = gr.Image(
                    label=f"Input image (upload or paste; up to {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB)",
                    type="filepath",
                    format="png",
                    image_mode=None,
                    sources=["upload", "clipboard"],
                    height=220,
                    elem_id="input-image",
                )
                truth = gr.Markdown(true_class_markdown(None), elem_id="true-class")
                predict_btn = gr.Button("Predict with all nets", variant="primary", elem_id="predict-btn")
                check_btn = gr.Button("Check server", size="sm")
            with gr.Column(scale=2):
                if examples:
                    gallery = gr.Gallery(
                        value=[(ex.image, ex.caption) for ex in examples],
                        label=f"{len(examples)} CIFAR-10 test images: click one",
                        columns=7,
                        height="auto",
                        allow_preview=False,
                        format="png",
                        elem_id="example-gallery",
                        interactive=False,
                    )
                else:
                    gallery = None
                    gr.Markdown(f"No CIFAR-10 test images found, so there is no gallery. {data_note}")

        gr.Markdown("## Predictions (top 5 of each net)")
        labels, panels = [], []
        with gr.Row():
            for i in range(NUM_SLOTS):
                with gr.Column():
                    labels.append(gr.Label(num_top_classes=TOP_K, label=f"net {i + 1}", elem_id=f"pred-{i}"))
                    panels.append(gr.Markdown(elem_id=f"pred-info-{i}"))

        gr.Markdown("## Class activation maps: where each net looks")
        cam_bodies = gr.State(None)
        with gr.Row():
            cam_class = gr.Dropdown(
                choices=[TOP1_CHOICE, *CLASSES], value=TOP1_CHOICE, label="Explain the class", elem_id="cam-class"
            )
            cam_method = gr.Radio(
                choices=[(label, m) for m, label in METHOD_LABELS.items()],
                value="default",
                label="Method",
                elem_id="cam-method",
            )
            cam_opacity = gr.Slider(0, 1, value=DEFAULT_OPACITY, step=0.05, label="Map opacity", elem_id="cam-opacity")
            cam_btn = gr.Button("Explain", elem_id="cam-btn")
        cam_info = gr.Markdown(elem_id="cam-status")
        cam_images, cam_panels = [], []
        with gr.Row():
            for i in range(NUM_SLOTS):
                with gr.Column():
                    cam_images.append(
                        gr.Image(
                            label=f"net {i + 1}",
                            type="pil",
                            format="png",
                            interactive=False,
                            elem_id=f"cam-{i}",
                            elem_classes=["cam-overlay"],
                        )
                    )
                    cam_panels.append(gr.Markdown(elem_id=f"cam-info-{i}"))

        gr.Markdown("## Feature maps")
        with gr.Row():
            net = gr.Dropdown(choices=[], value=None, label="Net (from the server)", elem_id="fm-net")
            layer = gr.Dropdown(choices=[], value=None, label="Layer (from the server)", elem_id="fm-layer")
            channels = gr.Slider(1, MAX_CHANNELS, value=DEFAULT_CHANNELS, step=1, label="Channels shown")
            cmap = gr.Dropdown(choices=list(COLORMAPS), value=COLORMAPS[0], label="Colormap")
            fm_btn = gr.Button("Show feature maps", elem_id="fm-btn")
        fm_info = gr.Markdown(elem_id="fm-info")
        with gr.Row():
            grid = gr.Image(
                label="Channels, strongest mean first", type="pil", format="png", elem_id="fm-grid", interactive=False
            )
            overlay = gr.Image(
                label="Mean activation over the input",
                type="pil",
                format="png",
                elem_id="fm-overlay",
                interactive=False,
            )
        with gr.Row():
            stats = gr.Dataframe(
                headers=STATS_HEADERS,
                label="Per-channel statistics",
                max_height=300,
                interactive=False,
                elem_id="fm-stats",
            )
            plot = gr.Image(
                label="Channel means (line) and maxima (bars)",
                type="pil",
                format="png",
                interactive=False,
                elem_id="fm-plot",
            )

        # --- wiring: thin closures over the plain functions above ---

        def _load() -> tuple[Any, ...]:
            text, warn, names, first = on_load(backend)
            choices, value, _ = layer_choices(backend, first)
            return text, warn, gr.Dropdown(choices=names, value=first), gr.Dropdown(choices=choices, value=value)

        def _check(current: str | None) -> tuple[Any, ...]:
            text, warn, names, first = on_load(backend)
            return text, warn, gr.Dropdown(choices=names, value=current if current in names else first)

        def _picture(value: Any) -> tuple[PageImage | None, str | None]:
            """The page's image for a path the page offers, or the reason in words."""
            if value is None:
                return None, None
            try:
                return page_image(value, files), None
            except UploadError as exc:
                return None, f"⚠ {exc}"

        def _predict(img: Any, truth_label: str | None) -> tuple[Any, ...]:
            pic, error = _picture(img)
            text, names, values, infos = predict_all(backend, pic, truth_label)
            labelled = (gr.Label(value=v, label=n) for v, n in zip(values, names, strict=True))
            return (error or text, *labelled, *infos)

        def _select(evt: gr.SelectData) -> tuple[Any, ...]:
            return select_example(examples, evt.index)

        def _user_image() -> tuple[Any, ...]:
            return None, true_class_markdown(None)

        def _layers(model: str | None) -> tuple[Any, ...]:
            choices, value, text = layer_choices(backend, model)
            return gr.Dropdown(choices=choices, value=value), text

        def _features(img: Any, model: str | None, name: str | None, n: int, cm: str) -> tuple:
            pic, error = _picture(img)
            act, text = fetch_feature_maps(backend, pic, model, name)
            return (act, error or text, *render_feature_maps(act, pic, n, cm))

        def _rerender(act: np.ndarray | None, img: Any, n: int, cm: str) -> tuple:
            return render_feature_maps(act, _picture(img)[0], n, cm)

        def _cams(img: Any, target: str | None, method: str | None, alpha: float) -> tuple:
            img, error = _picture(img)
            text, bodies, infos = explain_all(backend, img, target, method)
            text = error or text
            named = [gr.Image(value=im, label=(b or {}).get("model", f"net {i + 1}")) for i, (im, b) in
                     enumerate(zip(render_cams(bodies, img, alpha), bodies, strict=True))]  # fmt: skip
            return (text, bodies, *named, *infos)

        def _recolour(bodies: list | None, img: Any, alpha: float) -> list:
            return render_cams(bodies, _picture(img)[0], alpha)

        predict_outputs = [status, *labels, *panels]
        fm_outputs = [activations, fm_info, grid, overlay, stats, plot]
        fm_inputs = [image, net, layer, channels, cmap]
        cam_inputs = [image, cam_class, cam_method, cam_opacity]
        cam_outputs = [cam_info, cam_bodies, *cam_images, *cam_panels]

        # The page's own callbacks stay off the API page; the named endpoints are below.
        private: dict[str, Any] = {"api_visibility": "private"}
        demo.load(_load, outputs=[status, banner, net, layer], **private)
        check_btn.click(_check, inputs=[net], outputs=[status, banner, net], **private)
        predict_btn.click(_predict, inputs=[image, true_label], outputs=predict_outputs, **private).then(
            _cams, inputs=cam_inputs, outputs=cam_outputs, **private
        )
        if gallery is not None:
            gallery.select(_select, outputs=[image, true_label, truth], **private).then(
                _predict, inputs=[image, true_label], outputs=predict_outputs, **private
            ).then(_cams, inputs=cam_inputs, outputs=cam_outputs, **private)
        image.input(_user_image, outputs=[true_label, truth], **private)
        net.input(_layers, inputs=[net], outputs=[layer, fm_info], **private).then(
            _features, inputs=fm_inputs, outputs=fm_outputs, **private
        )
        layer.input(_features, inputs=fm_inputs, outputs=fm_outputs, **private)
        fm_btn.click(_features, inputs=fm_inputs, outputs=fm_outputs, **private)
        rerender = {"inputs": [activations, image, channels, cmap], "outputs": [grid, overlay, stats, plot]}
        channels.release(_rerender, **rerender, **private)
        cmap.input(_rerender, **rerender, **private)
        cam_btn.click(_cams, inputs=cam_inputs, outputs=cam_outputs, **private)
        cam_class.input(_cams, inputs=cam_inputs, outputs=cam_outputs, **private)
        cam_method.input(_cams, inputs=cam_inputs, outputs=cam_outputs, **private)
        cam_opacity.release(_recolour, inputs=[cam_bodies, image, cam_opacity], outputs=cam_images, **private)

        for name, fn in api_functions(backend, files).items():
            gr.api(fn, api_name=name)
    return demo


def launch(demo: Any, host: str = HOST, port: int = UI_PORT, block: bool = True) -> Any:
    """Serve the page locally (never shared through Gradio's tunnel), without the Node SSR server."""
    return demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        ssr_mode=False,
        css=CSS,
        prevent_thread_lock=not block,
        max_file_size=MAX_UPLOAD_BYTES,
        footer_links=["api"],
        quiet=True,
    )
