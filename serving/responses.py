"""The JSON bodies of the REST service, as pure functions.

Shared by the TorchServe handler and the UI's in-process backend, so both produce byte-identical
JSON (`encode`). NumPy only.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from serving import GRID_MAX_CHANNELS, TOP_K


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
    """Answer of `POST .../feature_maps?layer=<layer>` for one image's (C, H, W) activations.

    The activations travel as little-endian float16 in C order (half the bytes of float32, enough
    for display); the grid PNG shows the strongest channels first.
    """
    from training.grid import channel_grid, png_bytes

    act = np.asarray(act, dtype=np.float32)
    if act.ndim != 3:
        raise ValueError(f"expected (C, H, W) activations, got shape {act.shape}")
    flat = act.reshape(act.shape[0], -1)
    grid = channel_grid(act, max_channels=GRID_MAX_CHANNELS, sort=True)
    return {
        "model": model,
        "backend": backend,
        "layer": layer,
        "shape": [int(s) for s in act.shape],
        "channel_mean": [float(v) for v in flat.mean(axis=1)],
        "channel_max": [float(v) for v in flat.max(axis=1)],
        "dtype": "float16",
        "activations": base64.b64encode(np.ascontiguousarray(act, dtype="<f2").tobytes()).decode("ascii"),
        "grid_png": base64.b64encode(png_bytes(grid)).decode("ascii"),
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
    """Answer of any rejected request (4xx)."""
    return {"error": message, "code": int(code)}


def decode_activations(body: dict[str, Any]) -> np.ndarray:
    """The (C, H, W) float16 array of a feature-map body (for clients and tests)."""
    raw = base64.b64decode(body["activations"])
    return np.frombuffer(raw, dtype="<f2").reshape(body["shape"])


def encode(body: dict[str, Any]) -> bytes:
    """The exact bytes sent on the wire (compact UTF-8 JSON)."""
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")
