"""What a careless or hostile caller sends to the real TorchServe: look-alike v2 forms in one batch, duplicated
fields, classes that only look like digits, formats the service does not take. Each gets its own 4xx in
words, and the worker keeps serving."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from PIL import Image

from cifarlens_runtime.constants import EXPLANATIONS_ROUTE

TIMEOUT = 60


def image(fmt: str, size: tuple[int, int] = (40, 30), seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def post_form(server, path: str, fields: list[tuple[str, tuple | str]]) -> requests.Response:
    """A multipart form with the fields in order, repeats allowed (requests takes a list of pairs)."""
    return requests.post(f"{server.inference_url}/{path}", files=fields, headers=server.headers(), timeout=TIMEOUT)


def still_serving(server) -> None:
    resp = requests.post(
        f"{server.inference_url}/predictions/se_net",
        data=image("PNG"),
        headers={"Content-Type": "image/png", **server.headers()},
        timeout=TIMEOUT,
    )
    assert resp.status_code == 200, resp.text


def v2_lookalike(body: bytes) -> list[tuple[str, tuple | str]]:
    """A REST form whose fields are named like an Open Inference Protocol tensor."""
    return [("name", (None, "input-0")), ("datatype", (None, "BYTES")), ("data", ("x.png", body, "image/png"))]


def test_v2_lookalike_forms_in_one_batch_keep_their_own_status(torchserve) -> None:
    """Good and bad forms named like v2 tensors, sent together so that TorchServe batches them: each request
    gets its own status (before, they were taken for one v2 request and swapped statuses in 10 rounds of 10)."""
    good, bad = image("PNG"), b"not an image"
    bodies = [good, bad, bad, good, good, bad, good, bad]
    for _ in range(5):
        with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
            answers = list(pool.map(lambda b: post_form(torchserve, "predictions/plain_cnn", v2_lookalike(b)), bodies))
        assert [a.status_code for a in answers] == [200 if b is good else 400 for b in bodies]
        assert all("predictions" in a.json() for a, b in zip(answers, bodies, strict=True) if b is good)
        assert all(
            "not a readable image" in a.json()["error"] for a, b in zip(answers, bodies, strict=True) if b is bad
        )
    still_serving(torchserve)


@pytest.mark.parametrize("field", ["class", "layer", "method"])
def test_a_duplicated_field_is_refused_naming_it(torchserve, field: str) -> None:
    values = {"class": ("cat", "dog"), "layer": ("se4", "se5"), "method": ("gradcam", "gradcam")}[field]
    fields = [("data", ("x.png", image("PNG"), "image/png")), *((field, (None, v)) for v in values)]
    resp = post_form(torchserve, f"{EXPLANATIONS_ROUTE}/se_net", fields)
    assert resp.status_code == 400, resp.text
    assert f"'{field}' was sent more than once" in resp.json()["error"]
    alone = post_form(torchserve, f"{EXPLANATIONS_ROUTE}/se_net", fields[:2])
    assert alone.status_code == 200, alone.text
    still_serving(torchserve)


@pytest.mark.parametrize("given", ["³", "٣", "-0", "09", "+3", "3.0", "10"])
def test_a_class_is_a_name_or_one_ascii_digit(torchserve, given: str) -> None:
    fields = [("data", ("x.png", image("PNG"), "image/png")), ("class", (None, given))]
    resp = post_form(torchserve, f"{EXPLANATIONS_ROUTE}/se_net", fields)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert f"unknown class '{given}'" in error and "airplane" in error and "invalid literal" not in error


@pytest.mark.parametrize(("given", "index"), [("3", 3), (" DOG ", 5), ("Cat", 3)])
def test_class_names_and_digits_are_taken(torchserve, given: str, index: int) -> None:
    fields = [("data", ("x.png", image("PNG"), "image/png")), ("class", (None, given))]
    resp = post_form(torchserve, f"{EXPLANATIONS_ROUTE}/se_net", fields)
    assert resp.status_code == 200, resp.text
    assert resp.json()["index"] == index


@pytest.mark.parametrize(
    ("fmt", "code", "words"),
    [
        ("TIFF", 415, "TIFF images are not supported"),
        ("ICO", 415, "ICO images are not supported"),
        ("WEBP", 200, ""),
        ("GIF", 200, ""),
        ("BMP", 200, ""),
        ("JPEG", 200, ""),
    ],
)
def test_formats(torchserve, fmt: str, code: int, words: str) -> None:
    resp = requests.post(
        f"{torchserve.inference_url}/predictions/se_net",
        data=image(fmt),
        headers={"Content-Type": "application/octet-stream", **torchserve.headers()},
        timeout=TIMEOUT,
    )
    assert resp.status_code == code, resp.text
    if words:
        assert words in resp.json()["error"] and "JPEG, PNG, WEBP, GIF, BMP" in resp.json()["error"]
    still_serving(torchserve)
