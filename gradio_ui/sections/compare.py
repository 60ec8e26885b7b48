"""Compare: the nets side by side, from what the server says of each, and their REST latency measured here.

The numbers are each net's listing's `metrics` (the feature-map route without a layer), which `make export`
wrote into metadata.json from the training run's own metrics.json: per-class test accuracy (the diagonal of
the net's confusion matrix) as a grouped bar plot, accuracy and costs as a table. Nothing is read from
training files. A value the net's run did not record says so. Latency is not a recorded number: the
"Measure latency" button times single-image prediction requests from this page, now, through the same
backend client as the other sections, and says so beside the numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from cifarlens_runtime.constants import CLASSES
from gradio_ui.client import Backend, BackendError
from gradio_ui.examples import GALLERY_DIR
from gradio_ui.sections.common import PRIVATE, Listener, Page, Section, figure_image, model_names, percent, pyplot
from gradio_ui.uploads import PageImage, body_of, image_bytes

NOT_RECORDED = "not recorded"
NO_VAL = "none held out"
# Training costs about this many forwards per image: the forward, and a backward of about twice its FLOPs.
TRAIN_FORWARDS = 3
LATENCY_REQUESTS = 20
LATENCY_HEADERS = ["net", "p50 (ms)", "p90 (ms)", "min (ms)", "max (ms)", "timed requests"]
NOTE = (
    "Accuracy on the CIFAR-10 test split, with flip test-time augmentation (the mean of the answers for the "
    "image and its mirror) unless marked *no TTA*; per-class accuracy at the same setting, the diagonal of "
    "each net's confusion matrix. Forward MFLOPs: one 32×32 image through the net. Training costs about "
    f"{TRAIN_FORWARDS}× the forward per image (the backward pass is about twice the forward), so the training "
    f"rows are estimates: {TRAIN_FORWARDS} × forward MFLOPs, and that × the images seen. "
    f"*{NOT_RECORDED}*: the net's training run did not record it; *{NO_VAL}*: the run trained on every training "
    "image, so it has no validation accuracy."
)


def _field(key: str, fmt: Callable[[Any], str]) -> Callable[[dict[str, Any]], str]:
    """A table cell from one metric, or NOT_RECORDED when the metrics lack it."""

    def cell(metrics: dict[str, Any]) -> str:
        value = metrics.get(key)
        return NOT_RECORDED if value is None or value == "" else fmt(value)

    return cell


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _training_compute(metrics: dict[str, Any]) -> str:
    """≈ TRAIN_FORWARDS × forward FLOPs × images seen, in PFLOP (10^15)."""
    mflops, images = metrics.get("mflops"), metrics.get("images_seen")
    if not isinstance(mflops, (int, float)) or not isinstance(images, (int, float)):
        return NOT_RECORDED
    return f"≈ {TRAIN_FORWARDS * mflops * 1e6 * images / 1e15:.2f} PFLOP"


def _accuracy(value: Any) -> str:
    return percent(value, digits=2)


def _val_accuracy(metrics: dict[str, Any]) -> str:
    """Val accuracy; a finished run that recorded it as null held nothing out (it trained on all 50,000 images),
    which is not the same as a run that did not record it."""
    if "val_acc" in metrics and metrics["val_acc"] is None and "images_seen" in metrics:
        return NO_VAL
    return _field("val_acc", _accuracy)(metrics)


# The cost table's rows: a label, and the cell of one net's metrics.
COST_ROWS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("test accuracy (flip TTA)", _field("test_acc", _accuracy)),
    ("test accuracy (no TTA)", _field("test_acc_no_tta", _accuracy)),
    ("validation accuracy", _val_accuracy),
    ("parameters", _field("params", lambda v: f"{v / 1e6:.2f} M")),
    ("forward MFLOPs per image", _field("mflops", lambda v: f"{v:,.1f}")),
    (
        f"training MFLOPs per image (≈ {TRAIN_FORWARDS}× forward)",
        _field("mflops", lambda v: f"≈ {TRAIN_FORWARDS * v:,.0f}"),
    ),
    ("epochs", _field("epochs", lambda v: f"{v:g}")),
    ("training time", _field("train_seconds", _duration)),
    ("images seen in training", _field("images_seen", lambda v: f"{int(v):,}")),
    (f"training compute (≈ {TRAIN_FORWARDS}× forward × images seen)", _training_compute),
    ("trained on", _field("train_device", str)),
    ("training precision", _field("train_precision", str)),
)


def listings_metrics(backend: Backend) -> tuple[dict[str, dict[str, Any]], list[str], str | None]:
    """{net: its listing's metrics} for every net the server serves, the classes in the server's order, and
    the error (the server's, or the nets it could not list) in words, None when all answered."""
    names, error = model_names(backend)
    if error:
        return {}, list(CLASSES), error
    metrics: dict[str, dict[str, Any]] = {}
    classes: list[str] = []
    failed = []
    for name in names:
        try:
            listing = backend.listing(name)
        except BackendError as exc:
            failed.append(f"{name}: {exc}")
            continue
        metrics[name] = listing.get("metrics", {})
        classes = classes or list(listing.get("classes", []))
    return metrics, classes or list(CLASSES), ("cannot list " + "; ".join(failed)) if failed else None


def cost_table(metrics: dict[str, dict[str, Any]]) -> dict[str, list]:
    """The Dataframe value: one row per quantity, one column per net."""
    return {
        "headers": ["", *metrics],
        "data": [[label, *(cell(m) for m in metrics.values())] for label, cell in COST_ROWS],
    }


def per_class_accuracy(
    metrics: dict[str, dict[str, Any]], classes: list[str]
) -> tuple[dict[str, list[float]], list[str]]:
    """{net: its test accuracy per class, in `classes` order} for the nets whose run recorded it, and the others."""
    recorded, missing = {}, []
    for name, m in metrics.items():
        per_class = m.get("per_class_test_acc")
        if isinstance(per_class, dict) and all(isinstance(per_class.get(c), (int, float)) for c in classes):
            recorded[name] = [float(per_class[c]) for c in classes]
        else:
            missing.append(name)
    return recorded, missing


def per_class_plot(recorded: dict[str, list[float]], classes: list[str]) -> Image.Image | None:
    """Grouped bars: for each class, one bar per net (None when no net recorded its per-class accuracy)."""
    if not recorded:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=100)
    x, width = np.arange(len(classes)), 0.8 / len(recorded)
    for k, (name, accs) in enumerate(recorded.items()):
        ax.bar(x + (k - (len(recorded) - 1) / 2) * width, [100 * a for a in accs], width, label=name)
    lowest = min(min(accs) for accs in recorded.values())
    ax.set_ylim(max(0.0, 10 * np.floor(10 * lowest - 0.5)), 100)  # from the 10 % step below the weakest bar
    ax.set_xticks(x, classes, fontsize=9)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(ncol=len(recorded), fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return figure_image(fig)


def compare_view(backend: Backend) -> tuple[str, dict[str, list], Image.Image | None]:
    """The section's words, its cost table and its per-class plot, from the server's listings."""
    metrics, classes, error = listings_metrics(backend)
    if not metrics:
        return f"⚠ {error}", cost_table({}), None
    recorded, missing = per_class_accuracy(metrics, classes)
    lines = [f"From each net's listing on **{backend.name}** at `{backend.location}`. {NOTE}"]
    if missing:
        lines.append(f"Per-class test accuracy {NOT_RECORDED} for {', '.join(missing)}.")
    if error:
        lines.append(f"⚠ {error}")
    return "\n\n".join(lines), cost_table(metrics), per_class_plot(recorded, classes)


def latency_image(image: Image.Image | PageImage | None) -> tuple[bytes, str]:
    """What the latency requests send, and its words: the input image if there is one, else one of the
    shipped 32×32 test JPEGs (else a 32×32 PNG), so that clicks without an input compare alike."""
    if image is not None:
        body = body_of(image)
        return body, f"the input image, {len(body) / 1024:.1f} KB"
    shipped = sorted(GALLERY_DIR.glob("*.jpg"))
    if shipped:
        return shipped[0].read_bytes(), f"the CIFAR-10 test image {shipped[0].name}, 32×32 JPEG"
    return image_bytes(Image.new("RGB", (32, 32), (128, 128, 128))), "a grey 32×32 PNG"


def timed_predictions(
    backend: Backend, models: list[str], body: bytes, n: int
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Milliseconds of `n` prediction requests per net, after one untimed warm-up each, interleaved over the
    nets (so a change of load on this machine falls on all alike); a net that fails is asked no more."""
    times: dict[str, list[float]] = {m: [] for m in models}
    failed: dict[str, str] = {}
    for round_ in range(n + 1):
        for model in models:
            if model in failed:
                continue
            start = time.perf_counter()
            try:
                backend.predict(model, body)
            except BackendError as exc:
                failed[model] = str(exc)
                continue
            if round_:  # round 0 is the warm-up
                times[model].append(1000 * (time.perf_counter() - start))
    return times, failed


def latency_rows(times: dict[str, list[float]]) -> list[list[Any]]:
    """One row per net: p50, p90, min and max in ms, and how many requests they are of."""
    rows = []
    for model, ms in times.items():
        if not ms:
            rows.append([model, "failed", "failed", "failed", "failed", 0])
            continue
        p50, p90 = np.percentile(ms, [50, 90])
        rows.append([model, *(round(float(v), 1) for v in (p50, p90, min(ms), max(ms))), len(ms)])
    return rows


def measure_latency(
    backend: Backend, image: Image.Image | PageImage | None = None, n: int = LATENCY_REQUESTS
) -> tuple[str, list[list[Any]]]:
    """Time `n` single-image predictions per net from this page now; the words say what was measured, how."""
    models, error = model_names(backend)
    if error:
        return f"⚠ {error}", []
    body, what = latency_image(image)
    n = max(1, int(n))
    times, failed = timed_predictions(backend, models, body, n)
    path = "REST over HTTP to TorchServe" if backend.name == "torchserve" else "in process, no HTTP"
    lines = [
        f"Measured from this page at {time.strftime('%H:%M:%S')}, against **{backend.name}** at "
        f"`{backend.location}` ({path}): {n} single-image prediction requests per net ({what}), one at a time, "
        "interleaved over the nets, after one untimed warm-up request each. Each time is the wall time of the "
        "page's own call, through the same client as the predictions above, on this machine under its load now."
    ]
    lines += [f"⚠ {model} failed: {exc}" for model, exc in failed.items()]
    return "\n\n".join(lines), latency_rows(times)


def _layout() -> dict[str, Any]:
    c: dict[str, Any] = {"info": gr.Markdown(elem_id="compare-info")}
    c["table"] = gr.Dataframe(label="Accuracy and costs", interactive=False, elem_id="compare-table")
    c["plot"] = gr.Image(
        label="Per-class test accuracy", type="pil", format="png", interactive=False, elem_id="compare-plot"
    )
    with gr.Row():
        c["requests"] = gr.Slider(5, 100, value=LATENCY_REQUESTS, step=5, label="Requests per net")
        c["button"] = gr.Button("Measure latency", elem_id="latency-btn")
    c["latency_info"] = gr.Markdown(elem_id="latency-info")
    c["latency"] = gr.Dataframe(
        headers=LATENCY_HEADERS, label="Prediction latency", interactive=False, elem_id="latency-table"
    )
    return c


def build(backend: Backend, page: Page) -> Section:
    """The table and the plot, refreshed from the server on load and "Check server"; latency on its button."""
    gr.Markdown("## Compare the nets")
    c = _layout()

    def _view() -> tuple[Any, ...]:
        return compare_view(backend)

    def _latency(img: Any, n: float) -> tuple[Any, ...]:
        pic, error = page.picture(img)
        text, rows = measure_latency(backend, pic, int(n))
        return (f"{error}\n\n{text}" if error else text), rows

    c["button"].click(
        _latency, inputs=[page.image, c["requests"]], outputs=[c["latency_info"], c["latency"]], **PRIVATE
    )

    def on_server(listen: Listener) -> Any:
        return listen(_view, outputs=[c["info"], c["table"], c["plot"]], **PRIVATE)

    return Section(on_server=on_server)
