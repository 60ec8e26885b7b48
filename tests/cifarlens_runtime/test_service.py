"""Image decoding of the request path: limits, and error messages in plain words."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from cifarlens_runtime.constants import IMAGE_SIZE, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS
from cifarlens_runtime.preprocess import ImageError, load_image, preprocess
from cifarlens_runtime.service import RequestError, decode_image

# What a Python object looks like when it leaks into a message: <_io.BytesIO object at 0x7f...>.
PYTHON_REPR = re.compile(r"<[^>]*object at 0x|0x[0-9a-f]{6,}|_io\.")


def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return buf.getvalue()


def test_decode_matches_preprocess() -> None:
    body = png((50, 40))
    x = decode_image(body)
    assert x.shape == (3, IMAGE_SIZE, IMAGE_SIZE) and x.dtype == np.float32
    np.testing.assert_array_equal(x, preprocess(body))


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        (b"this is not an image", 400, "not a readable image"),
        (b"", 400, "empty body"),
        (png((64, 64))[:60], 400, "cannot decode the image"),
        (b"\0" * (MAX_IMAGE_BYTES + 1), 413, "over the limit"),
        (png((int(MAX_IMAGE_PIXELS**0.5) + 100,) * 2, "L"), 413, "pixels"),
    ],
    ids=["garbage", "empty", "truncated", "too_many_bytes", "too_many_pixels"],
)
def test_errors_in_plain_words(body: bytes, code: int, words: str) -> None:
    with pytest.raises(RequestError) as info:
        decode_image(body)
    assert info.value.code == code
    assert words in info.value.message
    assert not PYTHON_REPR.search(info.value.message), info.value.message


def test_load_image_error_names_no_python_object() -> None:
    with pytest.raises(ImageError) as info:
        load_image(b"GIF89a but not really")
    assert not PYTHON_REPR.search(str(info.value)), str(info.value)
