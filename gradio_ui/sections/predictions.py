"""Predictions: every net's top-5 for the input image, with its test accuracy, its latency and how the true
class fared. Failures are written in the net's own panel and the status line, never raised."""

from __future__ import annotations

import time
from typing import Any

import gradio as gr
from PIL import Image

from cifarlens_runtime.constants import TOP_K
from gradio_ui.client import Backend, BackendError
from gradio_ui.sections.common import (
    NO_IMAGE,
    NUM_SLOTS,
    PRIVATE,
    Listener,
    Page,
    Section,
    is_barely_trained,
    listing_or_none,
    metrics_line,
    model_names,
)
from gradio_ui.uploads import PageImage, body_of


def label_value(body: dict[str, Any]) -> dict[str, float]:
    """{class: probability} of a prediction body, the value gr.Label(num_top_classes=k) takes."""
    return {p["class"]: float(p["probability"]) for p in body.get("predictions", [])}


def _true_class_line(body: dict[str, Any], true_label: str) -> str:
    ranked = [p["class"] for p in body.get("predictions", [])]
    if ranked and ranked[0] == true_label:
        return f"✓ correct: **{true_label}**"
    if true_label in ranked:
        return f"✗ true class **{true_label}** ranked {ranked.index(true_label) + 1}"
    return f"✗ true class **{true_label}** not in the top {len(ranked)}"


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
        lines.append(_true_class_line(body, true_label))
    return "\n\n".join(line for line in lines if line)


def _status(backend: Backend, shown: int, failures: int, first_error: str) -> str:
    if failures and failures == shown:
        return f"⚠ No net answered: {first_error}"
    if failures:
        return f"⚠ {failures} of {shown} nets failed to answer (see their panels); the others are shown."
    return f"✓ {shown} nets answered via {backend.name} at `{backend.location}`."


def predict_all(
    backend: Backend, image: Image.Image | PageImage | None, true_label: str | None, slots: int = NUM_SLOTS
) -> tuple[str, list[str], list[dict[str, float] | None], list[str]]:
    """Ask every net for its top-5: the status line, then per slot the net's name, its Label value and its panel."""
    names = [f"net {i + 1}" for i in range(slots)]
    labels: list[dict[str, float] | None] = [None] * slots
    panels = [""] * slots
    if image is None:
        return NO_IMAGE, names, labels, panels
    models, error = model_names(backend)
    if error:
        return f"⚠ {error}", names, labels, panels
    body_bytes = body_of(image)
    failures, first_error = 0, ""
    for i, model in enumerate(models[:slots]):
        names[i] = model
        metrics = (listing_or_none(backend, model) or {}).get("metrics", {})
        start = time.perf_counter()
        try:
            body = backend.predict(model, body_bytes)
        except BackendError as exc:
            failures += 1
            first_error = first_error or str(exc)
            panels[i] = net_markdown(model, None, None, metrics, true_label, error=str(exc))
            continue
        labels[i] = label_value(body)
        panels[i] = net_markdown(model, body, 1000 * (time.perf_counter() - start), metrics, true_label)
    return _status(backend, min(len(models), slots), failures, first_error), names, labels, panels


def build(backend: Backend, page: Page) -> Section:
    """One column per net: its top-5 bars, named after the net, and its panel. Refreshed for each new image."""
    gr.Markdown("## Predictions (top 5 of each net)")
    labels, panels = [], []
    with gr.Row():
        for i in range(NUM_SLOTS):
            with gr.Column():
                labels.append(gr.Label(num_top_classes=TOP_K, label=f"net {i + 1}", elem_id=f"pred-{i}"))
                panels.append(gr.Markdown(elem_id=f"pred-info-{i}"))

    def _predict(img: Any, truth_label: str | None) -> tuple[Any, ...]:
        pic, error = page.picture(img)
        text, names, values, infos = predict_all(backend, pic, truth_label)
        labelled = (gr.Label(value=v, label=n) for v, n in zip(values, names, strict=True))
        return (error or text, *labelled, *infos)

    def on_image(listen: Listener) -> Any:
        return listen(
            _predict, inputs=[page.image, page.true_label], outputs=[page.status, *labels, *panels], **PRIVATE
        )

    return Section(on_image=on_image)
