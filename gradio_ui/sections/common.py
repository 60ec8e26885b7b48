"""What the page's sections share: the input they read, how they hook onto the page's events, and the few
words and pictures more than one of them makes."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from cifarlens_runtime.preprocess import resize
from gradio_ui.client import Backend, BackendError
from gradio_ui.uploads import ImageFiles, PageImage, UploadError, page_image, shown_of

# Nets shown side by side (the project trains three); the names in the columns come from the server.
NUM_SLOTS = 3
OVERLAY_SIZE = 256
# Below this, a net's metrics say it is barely trained (a smoke run): the page warns.
BARELY_TRAINED_EPOCHS = 3
BARELY_TRAINED_ACC = 0.5
NO_IMAGE = "Pick an example or upload an image first."
# The page's own callbacks stay off the API page; the named endpoints are gradio_ui.api's.
PRIVATE: dict[str, Any] = {"api_visibility": "private"}

# A Gradio event listener (`button.click`, `demo.load`, `dependency.then`): given a function, its inputs and
# outputs, it returns the event's dependency. A hook chains a section's refresh onto one.
Listener = Callable[..., Any]
Hook = Callable[[Listener], Any]


@dataclass(frozen=True)
class Page:
    """What every section may read or write besides its own components: the input and the status line."""

    image: gr.Image
    true_label: gr.State
    status: gr.Markdown
    files: ImageFiles

    def picture(self, value: Any) -> tuple[PageImage | None, str | None]:
        """The page's image for a path the page offers (see gradio_ui.uploads), or the reason in words."""
        if value is None:
            return None, None
        try:
            return page_image(value, self.files), None
        except UploadError as exc:
            return None, f"⚠ {exc}"


@dataclass(frozen=True)
class Section:
    """What a section's `build` hands the page: hooks that chain the section's refresh onto the page's events.

    `on_image`: a new input image (the Predict button, a gallery click); `on_server`: the page's load and its
    "Check server" button. Each returns the dependency it made, so the next section's hook can follow it.
    """

    on_image: Hook | None = None
    on_server: Hook | None = None


def percent(x: Any, digits: int = 1) -> str:
    """An accuracy as a percentage, whether stored as a fraction or already in percent."""
    if not isinstance(x, (int, float)):
        return "n/a"
    return f"{100 * x:.{digits}f} %" if x <= 1 else f"{x:.{digits}f} %"


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


def listing_or_none(backend: Backend, model: str) -> dict[str, Any] | None:
    """The net's listing, or None when the server cannot give it (the caller shows what it has)."""
    try:
        return backend.listing(model)
    except BackendError:
        return None


def model_names(backend: Backend) -> tuple[list[str], str | None]:
    """The server's models, or no names and the error when the server cannot say."""
    try:
        return backend.models(), None
    except BackendError as exc:
        return [], str(exc)


def overlay_base(image: Image.Image | PageImage) -> Image.Image:
    """The input as maps are drawn over it: the nets' 32x32, enlarged without smoothing to OVERLAY_SIZE."""
    return resize(shown_of(image)).resize((OVERLAY_SIZE, OVERLAY_SIZE), Image.Resampling.NEAREST)


def figure_image(fig: Any) -> Image.Image:
    """A matplotlib figure as an RGB picture (the page shows plots as images), the figure closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (the page draws off screen), imported when a plot is first drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
