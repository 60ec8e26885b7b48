"""JSON bodies and request parsing, without any model."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from serving import FEATURE_ROUTE
from serving.responses import decode_activations, encode, error_body, feature_body, prediction_body, top_k
from serving.service import RequestError, parse_route
from training.constants import CLASSES


def test_top_k_sorted() -> None:
    probs = np.linspace(0.0, 1.0, 10)
    probs /= probs.sum()
    top = top_k(probs, CLASSES)
    assert [t["index"] for t in top] == [9, 8, 7, 6, 5]
    assert top[0]["class"] == CLASSES[9]
    assert prediction_body("m", "onnxruntime", probs, CLASSES)["predictions"] == top


def test_feature_body_roundtrip() -> None:
    act = np.random.default_rng(0).standard_normal((6, 4, 4)).astype(np.float32)
    body = json.loads(encode(feature_body("m", "onnxruntime", "l", act, np.full(10, 0.1), CLASSES)))
    assert body["shape"] == [6, 4, 4] and body["dtype"] == "float16" and body["layer"] == "l"
    np.testing.assert_allclose(decode_activations(body), act, atol=1e-2)
    np.testing.assert_allclose(body["channel_mean"], act.reshape(6, -1).mean(1), atol=1e-6)
    np.testing.assert_allclose(body["channel_max"], act.reshape(6, -1).max(1), atol=1e-6)
    assert Image.open(io.BytesIO(base64.b64decode(body["grid_png"]))).format == "PNG"
    assert len(body["predictions"]) == 5


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


def test_serving_hot_path_imports_no_torch() -> None:
    """The modules shipped in the archives (and used by the UI's local backend) never import torch."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; import serving.service, serving.predictor, serving.responses; "
        "bad = [m for m in ('torch', 'torchvision') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
