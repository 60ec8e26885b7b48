"""The page: the input (an upload or a gallery pick), the status line, and the sections of gradio_ui.sections,
composed in `build_app` and served by `launch`.

Every callback catches `BackendError` and puts its message on the page (the status line or the net's own
panel), so an unreachable or failing server never breaks the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from cifarlens_runtime.constants import HOST, UI_PORT
from gradio_ui import api
from gradio_ui.client import Backend, BackendError
from gradio_ui.examples import Example
from gradio_ui.sections import cams, compare, feature_maps, predictions
from gradio_ui.sections.common import (
    PRIVATE,
    Hook,
    Listener,
    Page,
    Section,
    is_barely_trained,
    listing_or_none,
    metrics_line,
    model_names,
)
from gradio_ui.uploads import CACHE_MAX_AGE_S, CACHE_SWEEP_S, MAX_UPLOAD_BYTES, ImageFiles

TITLE = "cifarlens: inside three CIFAR-10 nets"
CSS = """
#input-image img, #example-gallery img, #fm-grid img, #fm-overlay img { image-rendering: pixelated; }
.cam-overlay img { image-rendering: pixelated; }
#input-image img { width: 100%; height: 100%; object-fit: contain; }
#status { min-height: 1.5em; }
"""


# --- status ---


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
        listing = listing_or_none(backend, name)
        if listing is not None and is_barely_trained(listing.get("metrics", {})):
            weak.append(f"{name} ({metrics_line(listing.get('metrics', {}))})")
    if not weak:
        return ""
    return (
        "⚠ **These nets are barely trained** (by their checkpoints' metrics): "
        + "; ".join(weak)
        + ". Their predictions are close to guesses; train them with `make train-all` for real results."
    )


def on_load(backend: Backend) -> tuple[str, str]:
    """The status line and the training banner, on load and on "Check server"."""
    names, _ = model_names(backend)
    return status_markdown(backend), training_banner(backend, names)


# --- input ---


def select_example(examples: Sequence[Example], index: int) -> tuple[Image.Image, str | None, str]:
    """The picked gallery image, its true class and a line saying so."""
    ex = examples[index]
    return ex.image, ex.label, true_class_markdown(ex.label)


def true_class_markdown(label: str | None) -> str:
    return f"True class: **{label}**" if label else "True class: unknown (your own image)"


@dataclass(frozen=True)
class _Input:
    """The input row's components that the wiring needs, and the examples its gallery shows."""

    image: Any
    truth: Any
    predict: Any
    check: Any
    gallery: Any | None
    examples: Sequence[Example]


def _gallery(examples: Sequence[Example], data_note: str) -> Any | None:
    if not examples:
        gr.Markdown(f"No CIFAR-10 test images found, so there is no gallery. {data_note}")
        return None
    return gr.Gallery(
        value=[(ex.image, ex.caption) for ex in examples],
        label=f"{len(examples)} CIFAR-10 test images: click one",
        columns=7,
        height="auto",
        allow_preview=False,
        format="png",
        elem_id="example-gallery",
        interactive=False,
    )


def _input_row(examples: Sequence[Example], data_note: str) -> _Input:
    """The input image, its true class, the two buttons, and the gallery beside them."""
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
            predict = gr.Button("Predict with all nets", variant="primary", elem_id="predict-btn")
            check = gr.Button("Check server", size="sm", elem_id="check-btn")
        with gr.Column(scale=2):
            gallery = _gallery(examples, data_note)
    return _Input(image, truth, predict, check, gallery, examples)


# --- composition ---


def _chain(listen: Listener, hooks: Sequence[Hook | None]) -> None:
    """Each hook's event after the one before: `listen` starts the first."""
    for hook in hooks:
        if hook is not None:
            listen = hook(listen).then


def _wire(demo: Any, backend: Backend, page: Page, row: _Input, banner: Any, sections: Sequence[Section]) -> None:
    """The page's own events: load and "Check server" refresh the status and the sections that read the server;
    Predict and a gallery pick refresh the sections that read the image, in page order."""
    on_image = [s.on_image for s in sections]
    on_server = [s.on_server for s in sections]

    def _status() -> tuple[str, str]:
        return on_load(backend)

    def _select(evt: gr.SelectData) -> tuple[Any, ...]:
        return select_example(row.examples, evt.index)

    def _user_image() -> tuple[Any, ...]:
        return None, true_class_markdown(None)

    for listen in (demo.load, row.check.click):
        _chain(listen(_status, outputs=[page.status, banner], **PRIVATE).then, on_server)
    _chain(row.predict.click, on_image)
    if row.gallery is not None:
        picked = row.gallery.select(_select, outputs=[page.image, page.true_label, row.truth], **PRIVATE)
        _chain(picked.then, on_image)
    row.image.input(_user_image, outputs=[page.true_label, row.truth], **PRIVATE)


def build_app(backend: Backend, examples: Sequence[Example] = (), data_note: str = "") -> Any:
    """The Blocks of the page; launch it with `launch`."""
    examples = list(examples)
    with gr.Blocks(title=TITLE, delete_cache=(CACHE_SWEEP_S, CACHE_MAX_AGE_S)) as demo:
        # The only files callbacks and the named API read: those Gradio took in or wrote in this process.
        files = ImageFiles(lambda: demo.temp_file_sets)
        gr.Markdown(f"# {TITLE}")
        status = gr.Markdown(elem_id="status")
        banner = gr.Markdown(elem_id="training-banner")
        true_label = gr.State(None)
        row = _input_row(examples, data_note)
        page = Page(image=row.image, true_label=true_label, status=status, files=files)
        sections = [section.build(backend, page) for section in (predictions, cams, feature_maps, compare)]
        _wire(demo, backend, page, row, banner, sections)
        api.register(backend, files)
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
