"""The page's images: which files it may read, and the bytes it sends for them.

A caller of the page (the browser or the named API) names an image by a path on the server. The page reads
only the files Gradio itself took in or wrote in this process (uploads, the gallery image it put in the
input), never any other path a caller makes up, and says so in words that do not tell whether that path
exists. It reads at most the size limit plus one byte, so a device file cannot exhaust memory.

What it sends is the uploaded file's own bytes when the REST service takes them as they are (a phone's
12-megapixel JPEG is 3 MB). An image of more pixels than the service decodes is sent as a reduced PNG
instead: same aspect ratio, never larger than the original, longest side REDUCED_SIDE, far more than the
nets' 32x32 need, so the answer is the same as for the full image up to resampling.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from cifarlens_runtime.constants import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS
from cifarlens_runtime.preprocess import (
    ImageError,
    UnsupportedFormat,
    check_format,
    load_image,
    plain_reason,
    to_rgb,
    upright,
)

REDUCED_SIDE = 512
# Gradio's own limits, from the same figure as the REST service's (what the page sends goes there).
MAX_UPLOAD_BYTES = MAX_IMAGE_BYTES
# Gradio's cache clean-up: every CACHE_SWEEP_S seconds, files older than CACHE_MAX_AGE_S go (none in use then:
# a request reads its file within seconds of the upload or the click).
CACHE_SWEEP_S = 300
CACHE_MAX_AGE_S = 900
NOT_OFFERED = "this image is not one the page offers: upload it to the page (gradio_client: handle_file) first"


class UploadError(ValueError):
    """An image the page will not read or cannot decode, with a message for the caller."""


def _real(path: str | os.PathLike) -> str:
    return os.path.realpath(os.fspath(path))


class ImageFiles:
    """The files the page may read: those in Gradio's sets of files of this process, and the gallery's own.

    `known` returns the current collections of paths (Gradio adds to them as files arrive); paths are compared
    after resolving links and '..', so no spelling of another path gets through.
    """

    def __init__(self, known: Callable[[], Iterable[Iterable[str]]] = tuple, extra: Iterable[str] = ()) -> None:
        self._known = known
        self._extra = {_real(p) for p in extra}
        self.last: tuple[tuple[str, int], PageImage] | None = None  # see page_image

    def allowed(self, path: str | os.PathLike) -> bool:
        wanted = _real(path)
        if wanted in self._extra:
            return True
        return any(wanted in {_real(p) for p in group} for group in self._known())

    def path_of(self, value: object) -> str:
        """The path in what a callback or the named API received: a str, a FileData dict or object."""
        path = value.get("path") if isinstance(value, dict) else getattr(value, "path", value)
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
            raise UploadError(NOT_OFFERED)
        return os.fspath(path)

    def read(self, value: object) -> bytes:
        """The file's bytes, if the page offers it and it is within the upload limit."""
        path = self.path_of(value)
        if not self.allowed(path):
            raise UploadError(NOT_OFFERED)
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_UPLOAD_BYTES + 1)
        except OSError:
            raise UploadError(
                "the image is no longer on the server (uploads are kept for a while): upload it again"
            ) from None
        if len(data) > MAX_UPLOAD_BYTES:
            raise UploadError(f"the image is over the upload limit of {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB")
        return data


def request_body(data: bytes) -> bytes:
    """What the page sends for an image file: its own bytes when the REST service takes them, else a reduced PNG.

    Raises UploadError, in the REST service's words, for a format neither takes or bytes that are no image.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            check_format(img)
            if img.size[0] * img.size[1] <= MAX_IMAGE_PIXELS:
                return data
            reduced = to_rgb(upright(img))
    except UnsupportedFormat as exc:
        raise UploadError(str(exc)) from None
    except Image.DecompressionBombError:
        raise UploadError(f"the image has far more pixels than the limit of {MAX_IMAGE_PIXELS}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UploadError(f"cannot decode the image: {plain_reason(exc)}") from None
    reduced.thumbnail((REDUCED_SIDE, REDUCED_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    reduced.save(buf, format="PNG")
    return buf.getvalue()


def display_image(data: bytes) -> Image.Image:
    """The image as the page draws it under maps (upright, RGB), decoded at reduced scale where JPEG allows."""
    try:
        return load_image(data)
    except ImageError as exc:
        raise UploadError(str(exc)) from None


@dataclass(frozen=True)
class PageImage:
    """An image the page works on: the bytes it sends to the nets, and the upright RGB picture it draws."""

    body: bytes
    shown: Image.Image


def page_image(value: object, files: ImageFiles) -> PageImage:
    """The PageImage of a path the page offers (see ImageFiles), or UploadError saying why not.

    The last one is kept: one click runs three callbacks (predictions, maps, feature maps) on the same upload,
    and a phone photo takes a tenth of a second to read and decode each time.
    """
    data = files.read(value)
    key = (files.path_of(value), hash(data))
    last = files.last
    if last is not None and last[0] == key:
        return last[1]
    body = request_body(data)
    picture = PageImage(body, display_image(body))
    files.last = (key, picture)
    return picture


def image_bytes(image: Image.Image) -> bytes:
    """PNG bytes of a picture the page made itself (lossless, so both backends see the same pixels)."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


def body_of(image: Image.Image | PageImage) -> bytes:
    """What is sent to the nets: an uploaded file's own bytes (a PageImage's), or a picture as PNG."""
    return image.body if isinstance(image, PageImage) else image_bytes(image)


def shown_of(image: Image.Image | PageImage) -> Image.Image:
    """The upright RGB picture drawn under maps."""
    return image.shown if isinstance(image, PageImage) else image.convert("RGB")
