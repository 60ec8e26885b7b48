"""Render a layer's activations as a picture: a grid of channels with a colormap.

NumPy, Pillow and matplotlib's colormaps only (no PyTorch), so the server can use it too.
"""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib import colormaps
from PIL import Image


def channel_order(act: np.ndarray) -> np.ndarray:
    """Channel indices sorted by mean activation, strongest first."""
    return np.argsort(-act.reshape(act.shape[0], -1).mean(axis=1), kind="stable")


def channel_grid(
    act: np.ndarray,
    max_channels: int = 64,
    tile: int = 48,
    cmap: str = "viridis",
    sort: bool = True,
    pad: int = 2,
) -> Image.Image:
    """(C, H, W) activations -> RGB grid image, each channel min-max scaled on its own,
    upscaled with nearest neighbour to `tile` pixels so that single activations stay visible."""
    act = np.asarray(act, dtype=np.float32)
    if act.ndim != 3:
        raise ValueError(f"expected (C, H, W) activations, got shape {act.shape}")
    order = channel_order(act) if sort else np.arange(act.shape[0])
    order = order[: max(1, max_channels)]
    n = len(order)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    h, w = act.shape[1:]
    scale = max(1, tile // max(h, w))
    th, tw = h * scale, w * scale
    canvas = np.full((rows * (th + pad) + pad, cols * (tw + pad) + pad, 3), 255, dtype=np.uint8)
    colour = colormaps[cmap]
    for k, c in enumerate(order):
        a = act[c]
        lo, hi = float(a.min()), float(a.max())
        norm = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
        rgb = (colour(norm)[..., :3] * 255).astype(np.uint8)
        rgb = rgb.repeat(scale, axis=0).repeat(scale, axis=1)
        r, q = divmod(k, cols)
        y, x = pad + r * (th + pad), pad + q * (tw + pad)
        canvas[y : y + th, x : x + tw] = rgb
    return Image.fromarray(canvas)


def heat_overlay(image: Image.Image, heat: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> Image.Image:
    """A (H, W) map in [0, 1], coloured, upscaled bilinearly to the image and blended on it (`alpha`: its opacity)."""
    m = np.clip(np.asarray(heat, dtype=np.float32), 0.0, 1.0)
    coloured = Image.fromarray((colormaps[cmap](m)[..., :3] * 255).astype(np.uint8))
    base = image.convert("RGB")
    coloured = coloured.resize(base.size, Image.Resampling.BILINEAR)
    return Image.blend(base, coloured, float(np.clip(alpha, 0.0, 1.0)))


def mean_overlay(image: Image.Image, act: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> Image.Image:
    """The layer's mean activation over channels, min-max scaled, upscaled and blended on the input image."""
    m = np.asarray(act, dtype=np.float32).mean(axis=0)
    lo, hi = float(m.min()), float(m.max())
    m = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
    return heat_overlay(image, m, alpha, cmap)


def png_bytes(img: Image.Image) -> bytes:
    """Encode an image as PNG."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
