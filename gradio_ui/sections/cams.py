"""Class activation maps: where each net looks, for its own top-1 or a class the reader picks, by the method the
reader picks (or each net's own default). The maps are drawn here over the input, so the opacity slider needs
no request; a blank map is said in words over the plain input."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from cifarlens_runtime.constants import CLASSES
from cifarlens_runtime.grid import heat_overlay
from cifarlens_runtime.vocabulary import METHODS
from gradio_ui.client import Backend, BackendError
from gradio_ui.sections.common import NO_IMAGE, NUM_SLOTS, PRIVATE, Listener, Page, Section, model_names, overlay_base
from gradio_ui.uploads import PageImage, body_of

# The class picker's "each net's own top-1" entry.
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
        return NO_IMAGE, bodies, panels
    models, error = model_names(backend)
    if error:
        return f"⚠ {error}", bodies, panels
    method = method if method in METHODS else None  # None: each net's own default method
    wanted = None if target in (None, "", TOP1_CHOICE) or method == "eigencam" else target
    body_bytes = body_of(image)
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
    base = overlay_base(image)
    shown: list[Image.Image | None] = []
    for b in bodies:
        if b is None:
            shown.append(None)
        else:
            shown.append(
                base.copy() if b.get("blank") else heat_overlay(base, np.asarray(b["cam"], np.float32), opacity)
            )
    return shown


def _controls() -> tuple[Any, Any, Any, Any]:
    """The class picker, the method radio, the opacity slider and the Explain button."""
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
    return cam_class, cam_method, cam_opacity, cam_btn


def _panels() -> tuple[list[Any], list[Any]]:
    """One overlay and one panel per net."""
    images, panels = [], []
    with gr.Row():
        for i in range(NUM_SLOTS):
            with gr.Column():
                images.append(
                    gr.Image(
                        label=f"net {i + 1}",
                        type="pil",
                        format="png",
                        interactive=False,
                        elem_id=f"cam-{i}",
                        elem_classes=["cam-overlay"],
                    )
                )
                panels.append(gr.Markdown(elem_id=f"cam-info-{i}"))
    return images, panels


def build(backend: Backend, page: Page) -> Section:
    """The controls, a status line, and one overlay and panel per net; refreshed after each new image's
    predictions and whenever the class or method changes; the opacity redraws without a request."""
    gr.Markdown("## Class activation maps: where each net looks")
    bodies = gr.State(None)
    cam_class, cam_method, cam_opacity, cam_btn = _controls()
    info = gr.Markdown(elem_id="cam-status")
    images, panels = _panels()

    def _cams(img: Any, target: str | None, method: str | None, alpha: float) -> tuple:
        pic, error = page.picture(img)
        text, answers, infos = explain_all(backend, pic, target, method)
        named = [gr.Image(value=im, label=(b or {}).get("model", f"net {i + 1}")) for i, (im, b) in
                 enumerate(zip(render_cams(answers, pic, alpha), answers, strict=True))]  # fmt: skip
        return (error or text, answers, *named, *infos)

    def _recolour(answers: list | None, img: Any, alpha: float) -> list:
        return render_cams(answers, page.picture(img)[0], alpha)

    wiring = {"inputs": [page.image, cam_class, cam_method, cam_opacity], "outputs": [info, bodies, *images, *panels]}
    cam_btn.click(_cams, **wiring, **PRIVATE)
    cam_class.input(_cams, **wiring, **PRIVATE)
    cam_method.input(_cams, **wiring, **PRIVATE)
    cam_opacity.release(_recolour, inputs=[bodies, page.image, cam_opacity], outputs=images, **PRIVATE)

    def on_image(listen: Listener) -> Any:
        return listen(_cams, **wiring, **PRIVATE)

    return Section(on_image=on_image)
