"""JSON bodies and request parsing, without any model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cifarlens_runtime.constants import CLASSES, FEATURE_ROUTE
from cifarlens_runtime.responses import decode_activations, encode, error_body, feature_body, prediction_body, top_k
from cifarlens_runtime.service import RequestError, parse_route


def test_top_k_sorted() -> None:
    probs = np.linspace(0.0, 1.0, 10)
    probs /= probs.sum()
    top = top_k(probs, CLASSES)
    assert [t["index"] for t in top] == [9, 8, 7, 6, 5]
    assert top[0]["class"] == CLASSES[9]
    assert prediction_body("m", "onnxruntime", probs, CLASSES)["predictions"] == top


def test_feature_body_carries_activations_shape_dtype_and_top5_only() -> None:
    act = np.random.default_rng(0).standard_normal((6, 4, 4)).astype(np.float32)
    body = json.loads(encode(feature_body("m", "onnxruntime", "l", act, np.full(10, 0.1), CLASSES)))
    assert set(body) == {"model", "backend", "layer", "shape", "dtype", "activations", "predictions"}
    assert body["shape"] == [6, 4, 4] and body["dtype"] == "float16" and body["layer"] == "l"
    got = decode_activations(body)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, act, atol=1e-2)
    assert len(body["predictions"]) == 5


def test_feature_body_refuses_what_float16_cannot_carry() -> None:
    act = np.full((2, 2, 2), 1e6, dtype=np.float32)  # beyond float16's range: would arrive as inf
    with pytest.raises(ValueError, match="not finite"):
        feature_body("m", "onnxruntime", "l", act, np.full(10, 0.1), CLASSES)


def test_error_body() -> None:
    assert json.loads(encode(error_body("bad", 400))) == {"error": "bad", "code": 400}


@pytest.mark.parametrize(
    ("route", "layer", "kind", "want"),
    [
        (None, None, "predict", None),
        ("", None, "predict", None),
        (FEATURE_ROUTE, None, "listing", None),
        (f"{FEATURE_ROUTE}/", None, "listing", None),
        (f"{FEATURE_ROUTE}/se3", None, "features", "se3"),
        (f"{FEATURE_ROUTE}?layer=se3", None, "features", "se3"),
        (FEATURE_ROUTE, "se2", "features", "se2"),
    ],
)
def test_parse_route(route: str | None, layer: str | None, kind: str, want: str | None) -> None:
    parsed = parse_route(route, layer)
    assert (parsed.kind, parsed.layer) == (kind, want)


@pytest.mark.parametrize(("route", "code"), [("bogus", 404), (f"{FEATURE_ROUTE}/a/b", 404), ("?layer=x", 400)])
def test_parse_route_errors(route: str, code: int) -> None:
    with pytest.raises(RequestError) as info:
        parse_route(route)
    assert info.value.code == code
