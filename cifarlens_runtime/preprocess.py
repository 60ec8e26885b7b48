"""Turn any image into the network's input, the same way for the CLI, the server and the UI.

NumPy and Pillow only, so the serving hot path needs no PyTorch.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cifarlens_runtime.constants import IMAGE_FORMATS, IMAGE_SIZE, MEAN, STD

_MEAN = np.asarray(MEAN, dtype=np.float32).reshape(3, 1, 1)
_STD = np.asarray(STD, dtype=np.float32).reshape(3, 1, 1)


# resize() shrinks by whole factors down to this many times the net's input before its bicubic step.
REDUCING_GAP = 3.0


class ImageError(ValueError):
    """The input is not an image this project can read."""


class UnsupportedFormat(ImageError):
    """An image in a format Pillow recognises but this project does not take (TIFF, ICO, PSD...)."""


# Pillow names the stream it read in its messages ("cannot identify image file <_io.BytesIO object at 0x..>").
_REPR = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")


def plain_reason(exc: BaseException) -> str:
    """Why Pillow could not read an image, in words a client can act on (no Python object reprs)."""
    if isinstance(exc, UnidentifiedImageError):
        return f"not a readable image (expected {', '.join(f for f in IMAGE_FORMATS if f != 'MPO')})"
    text = _REPR.sub("", str(exc)).strip(" :")
    return text or type(exc).__name__


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB; transparent pixels are composited on white, as on a web page."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def check_format(img: Image.Image) -> None:
    """Refuse, before any pixel is decoded, an image whose format is not one of IMAGE_FORMATS."""
    if img.format not in IMAGE_FORMATS:
        allowed = ", ".join(f for f in IMAGE_FORMATS if f != "MPO")
        raise UnsupportedFormat(f"{img.format or 'this'} images are not supported: send {allowed}")


def upright(img: Image.Image) -> Image.Image:
    """Decode an opened image, at reduced scale where JPEG allows, and turn it as its EXIF orientation says.

    JPEG's DCT scaling (`draft`) decodes a 12-megapixel photo at 1/8 scale, still well over what `resize`
    needs, in a fraction of the time; a 32x32 CIFAR-10 image is decoded as it is. A phone's portrait photo is
    stored sideways with an orientation tag: without the turn, the nets would see it lying down.
    """
    side = int(IMAGE_SIZE * REDUCING_GAP)
    if img.format in ("JPEG", "MPO"):
        img.draft("RGB", (side, side))
    img.load()
    return ImageOps.exif_transpose(img)


def load_image(source: bytes | bytearray | str | Path) -> Image.Image:
    """Decode bytes or a file into an upright RGB image, or raise ImageError saying why not."""
    try:
        if isinstance(source, (bytes, bytearray)):
            if not source:
                raise ImageError("empty body: expected JPEG or PNG bytes")
            img = Image.open(io.BytesIO(source))
        else:
            img = Image.open(source)
        check_format(img)
        img = upright(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageError(f"cannot decode the image: {plain_reason(exc)}") from None
    return to_rgb(img)


def resize(img: Image.Image) -> Image.Image:
    """Downsample to 32x32 with an antialiasing filter, as CIFAR-10's images were made."""
    if img.size == (IMAGE_SIZE, IMAGE_SIZE):
        return img
    return img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC, reducing_gap=REDUCING_GAP)


def to_array(img: Image.Image) -> np.ndarray:
    """RGB image -> normalised float32 array of shape (3, 32, 32)."""
    x = np.asarray(resize(to_rgb(img)), dtype=np.float32).transpose(2, 0, 1) / 255.0
    return (x - _MEAN) / _STD


def preprocess(source: bytes | bytearray | str | Path | Image.Image) -> np.ndarray:
    """Bytes, path or image -> normalised (3, 32, 32) float32 array."""
    img = source if isinstance(source, Image.Image) else load_image(source)
    return to_array(img)
