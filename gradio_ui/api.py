"""The page's named API (gradio_client): `/predict`, `/feature_maps` and `/cam`, typed functions over the
backend that return its REST answers, with every failure as a gr.Error in words.

They read only images the page itself took in (gradio_ui.uploads), and the backend checks every name before
it goes into a URL (gradio_ui.client.checked).
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from gradio_ui.client import Backend, BackendError
from gradio_ui.uploads import ImageFiles, UploadError, page_image


def api_functions(backend: Backend, files: ImageFiles) -> dict[str, Any]:
    """The endpoints by name: the REST answers of the backend, for an image uploaded to the page (or one of its
    gallery's)."""

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


def register(backend: Backend, files: ImageFiles) -> None:
    """Add the named endpoints to the Blocks being built (call inside its `with`)."""
    for name, fn in api_functions(backend, files).items():
        gr.api(fn, api_name=name)
