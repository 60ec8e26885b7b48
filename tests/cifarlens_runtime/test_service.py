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


def _exif_jpeg(img: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95, exif=exif)
    return buf.getvalue()


def test_exif_orientation_is_honoured() -> None:
    """A portrait phone photo is stored sideways with an orientation tag: every decoding path turns it upright."""
    rng = np.random.default_rng(3)
    upright_img = Image.fromarray(rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)).resize((200, 300))
    upright_img = Image.fromarray(np.kron(np.asarray(upright_img)[::20, ::20], np.ones((20, 20, 1), np.uint8)))
    stored = upright_img.transpose(Image.Transpose.ROTATE_90)  # what the camera wrote: turned a quarter
    body = _exif_jpeg(stored, 6)  # 6: "rotate 90 CW to display"
    plain = _exif_jpeg(upright_img, 1)
    width, height = load_image(body).size  # decoded at reduced scale, standing as it should
    assert width * upright_img.size[1] == height * upright_img.size[0] and height > width
    np.testing.assert_allclose(decode_image(body), decode_image(plain), atol=0.15)
    np.testing.assert_allclose(preprocess(body), decode_image(body))
    sideways = decode_image(_exif_jpeg(stored, 1))
    assert np.abs(sideways - decode_image(plain)).mean() > 5 * np.abs(decode_image(body) - decode_image(plain)).mean()


@pytest.mark.parametrize(("fmt", "code"), [("TIFF", 415), ("ICO", 415), ("PPM", 415), ("WEBP", None), ("GIF", None)])
def test_only_the_named_formats_are_decoded(fmt: str, code: int | None) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 30)).save(buf, format=fmt)
    if code is None:
        assert decode_image(buf.getvalue()).shape == (3, IMAGE_SIZE, IMAGE_SIZE)
        return
    with pytest.raises(RequestError) as info:
        decode_image(buf.getvalue())
    assert info.value.code == code and f"{fmt} images are not supported" in info.value.message
    assert "JPEG, PNG, WEBP, GIF, BMP" in info.value.message


def test_a_phone_photo_decodes_fast_and_like_the_full_image() -> None:
    """A 12-megapixel JPEG is decoded at reduced scale (JPEG's DCT scaling): well under a second, and the nets'
    32x32 input differs from a full decode by less than JPEG's own noise."""
    import time

    side = np.linspace(0, 255, 4032, dtype=np.float32)
    pixels = np.stack([np.add.outer(side[:3024] * 0.5, side * 0.5)] * 3, axis=-1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    start = time.perf_counter()
    fast = decode_image(buf.getvalue())
    seconds = time.perf_counter() - start
    with Image.open(io.BytesIO(buf.getvalue())) as img:
        img.load()  # the full decode, for comparison
        full = preprocess(img.convert("RGB"))
    np.testing.assert_allclose(fast, full, atol=0.05)
    assert seconds < 2.0, f"{seconds:.2f} s"  # 0.016 s on a 2-core AVX2 EPYC (a full decode alone: 0.085 s)
