"""The JSON bodies of the REST service, as pure functions.

Shared by the TorchServe handler and the UI's in-process backend, so both produce byte-identical
JSON (`encode`). A feature-map body carries what clients use and nothing else: the activations, their
shape and dtype, and the top-5 predictions; pictures and statistics are the client's to compute.
NumPy only.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from cifarlens_runtime.cam import is_blank, upsample
from cifarlens_runtime.constants import IMAGE_SIZE, TOP_K

# Activations travel as little-endian float16 in C order: half the bytes of float32, enough for display.
WIRE_DTYPE = "float16"
_WIRE = np.dtype("<f2")


def top_k(probs: np.ndarray, classes: Sequence[str], k: int = TOP_K) -> list[dict[str, Any]]:
    """The `k` most probable classes of one probability vector, most probable first."""
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"class": classes[i], "index": int(i), "probability": float(probs[i])} for i in order]


def prediction_body(model: str, backend: str, probs: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Answer of `POST /predictions/<model>`."""
    return {"model": model, "backend": backend, "predictions": top_k(probs, classes)}


def feature_body(
    model: str, backend: str, layer: str, act: np.ndarray, probs: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """Answer of `POST .../feature_maps/<layer>` for one image's (C, H, W) activations."""
    act = np.asarray(act)
    if act.ndim != 3:
        raise ValueError(f"expected (C, H, W) activations, got shape {act.shape}")
    with np.errstate(over="ignore"):  # overflow is reported below, in words
        wire = np.ascontiguousarray(act, dtype=_WIRE)
    if not np.isfinite(wire).all():
        raise ValueError(f"layer {layer} has activations that are not finite in {WIRE_DTYPE}")
    return {
        "model": model,
        "backend": backend,
        "layer": layer,
        "shape": [int(s) for s in act.shape],
        "dtype": WIRE_DTYPE,
        "activations": base64.b64encode(wire.tobytes()).decode("ascii"),
        "predictions": top_k(probs, classes),
    }


def _rounded(values: np.ndarray, decimals: int = 4) -> list:
    """Nested lists of floats with `decimals` decimals (rounded in float64, so 0.4652 is not 0.4652000069...)."""
    return np.round(np.asarray(values, dtype=np.float64), decimals).tolist()


def cam_body(
    model: str,
    backend: str,
    method: str,
    layer: str,
    cam: np.ndarray,
    index: int,
    probs: np.ndarray,
    classes: Sequence[str],
) -> dict[str, Any]:
    """Answer of `POST /explanations/<model>`: a (H, W) class activation map in [0, 1] for class `index`, at the
    layer's resolution (`cam`) and bilinearly upsampled to the input's size (`cam_upsampled`), 4 decimals.
    `blank` is true when no cell is positive (no positive evidence for the class there), so that a client says
    so instead of drawing an empty overlay."""
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2 or not np.isfinite(cam).all():
        raise ValueError(f"the {method} map of {layer} is not a finite (H, W) array")
    return {
        "model": model,
        "backend": backend,
        "method": method,
        "layer": layer,
        "class": classes[index],
        "index": int(index),
        "probability": float(np.asarray(probs)[index]),
        "shape": [int(s) for s in cam.shape],
        "blank": is_blank(cam),
        "cam": _rounded(cam),
        "upsampled_shape": [IMAGE_SIZE, IMAGE_SIZE],
        "cam_upsampled": _rounded(upsample(cam, IMAGE_SIZE)),
        "predictions": top_k(probs, classes),
    }


def listing_body(metadata: dict[str, Any], backend: str) -> dict[str, Any]:
    """Answer of `POST .../feature_maps` without a layer: what can be inspected, from metadata.json."""
    return {
        "model": metadata["model"],
        "backend": backend,
        "classes": list(metadata["classes"]),
        "normalization": metadata["normalization"],
        "metrics": metadata.get("metrics", {}),
        "layers": [{"name": d["name"], "shape": list(d["shape"])} for d in metadata["feature_layers"]],
    }


def error_body(message: str, code: int) -> dict[str, Any]:
    """Answer of any rejected request."""
    return {"error": message, "code": int(code)}


def decode_activations(body: dict[str, Any]) -> np.ndarray:
    """The (C, H, W) activations of a feature-map body as float32 (for clients and tests)."""
    raw = base64.b64decode(body["activations"])
    dtype = np.dtype(body.get("dtype", WIRE_DTYPE)).newbyteorder("<")
    return np.frombuffer(raw, dtype=dtype).reshape(body["shape"]).astype(np.float32)


def encode(body: dict[str, Any]) -> bytes:
    """The exact bytes sent on the wire (compact UTF-8 JSON)."""
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")
