"""How faithful a class activation map is: deletion and localisation, on real CIFAR-10 test images.

- deletion: the image's top-1 probability after the 20 % most activated pixels of its upsampled map are set
  to the mean colour, against 20 % random cells of the map's grid (the margin), the 20 % least activated and
  20 % scattered pixels (seeded). A faithful map hurts more than random cells;
- localisation: the test image pasted into one quadrant (rotating) of a 64x64 grey canvas, sent through the
  service's preprocessing (to 32x32); the share of the map's mass (upsampled) in that quadrant, for the true
  class. Chance is 25 %.

tests/benchmarks/test_cam_faithfulness.py runs the same checks on the shipped nets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cifarlens_runtime.cam import upsample
from cifarlens_runtime.constants import CLASSES, IMAGE_SIZE
from cifarlens_runtime.predictor import Predictor
from cifarlens_runtime.preprocess import to_array
from cifarlens_runtime.vocabulary import GRADIENT_METHODS

DELETE_FRACTION = 0.2
CANVAS = 2 * IMAGE_SIZE
GREY = (128, 128, 128)


def load_test_images(data_dir: Path, per_class: int) -> tuple[list[Image.Image], np.ndarray, list[bytes]]:
    """`per_class` test images of every class (evenly spaced in each class folder): images, labels, JPEG bytes."""
    images, labels, jpegs = [], [], []
    for label, name in enumerate(CLASSES):
        files = sorted((data_dir / "test" / name).glob("*.jpg"))
        if not files:
            raise FileNotFoundError(f"no test images under {data_dir / 'test' / name}: pass --data-dir")
        for f in files[:: max(len(files) // per_class, 1)][:per_class]:
            with Image.open(f) as img:
                images.append(img.convert("RGB"))
            labels.append(label)
            jpegs.append(f.read_bytes())
    return images, np.asarray(labels), jpegs


def composite(image: Image.Image, quadrant: int) -> Image.Image:
    """`image` (32x32) pasted into quadrant 0..3 (row-major) of a 64x64 grey canvas."""
    canvas = Image.new("RGB", (CANVAS, CANVAS), GREY)
    canvas.paste(image.resize((IMAGE_SIZE, IMAGE_SIZE)), ((quadrant % 2) * IMAGE_SIZE, (quadrant // 2) * IMAGE_SIZE))
    return canvas


def upsampled_maps(
    predictor: Predictor,
    x: np.ndarray,
    method: str,
    targets: Sequence[int | None] | None = None,
    layer: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probabilities, maps upsampled to 32x32, class indices) of a batch (default: the net's default CAM layer)."""
    probs, cams, chosen = predictor.cam(x, method, layer, targets)
    return probs, upsample_all(cams), chosen


def upsample_all(cams: np.ndarray) -> np.ndarray:
    """(N, H, W) maps upsampled to (N, 32, 32)."""
    return np.stack([upsample(c) for c in cams])


def deletion(
    predictor: Predictor,
    x: np.ndarray,
    method: str,
    fraction: float = DELETE_FRACTION,
    seed: int = 0,
    layer: str | None = None,
) -> dict[str, Any]:
    """Top-1 probability drop when the `fraction` most activated pixels of the upsampled map are set to the mean
    colour (see `deletion_of_maps`), for `method` at `layer` (default: the net's default CAM layer)."""
    layer = layer or predictor.cam_layer
    probs, maps, chosen = upsampled_maps(predictor, x, method, layer=layer)
    return deletion_of_maps(predictor, x, probs, maps, chosen, predictor.layer_shapes[layer][1:], fraction, seed)


def deletion_of_maps(
    predictor: Predictor,
    x: np.ndarray,
    probs: np.ndarray,
    maps: np.ndarray,
    chosen: np.ndarray,
    grid: Sequence[int],
    fraction: float = DELETE_FRACTION,
    seed: int = 0,
    controls: bool = True,
    cache: dict | None = None,
) -> dict[str, Any]:
    """Deletion of upsampled `maps` (N, 32, 32) of a (`grid`) layer, against controls of as many pixels: random cells
    of the map's own grid upsampled the same way (the same blocky structure, so the comparison is only about
    *where*: the check) and, with `controls`, the least activated pixels and scattered single pixels (which hurt
    any net by destroying texture everywhere). Pixels are set to 0 in normalised space (the mean colour).
    `cache` keeps the random-cells drop per grid (the same seeded cells for every map of that grid)."""
    n, k = len(x), int(round(fraction * IMAGE_SIZE * IMAGE_SIZE))
    cells_rng, scatter_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    order = np.argsort(-maps.reshape(n, -1), axis=1, kind="stable")
    cells = upsample_all(cells_rng.random((n, *grid)).astype(np.float32))
    masks = {"cam": order[:, :k], "random_cells": np.argsort(-cells.reshape(n, -1), axis=1, kind="stable")[:, :k]}
    if controls:
        masks["least_cam"] = order[:, ::-1][:, :k]
        masks["scattered"] = np.stack([scatter_rng.choice(IMAGE_SIZE * IMAGE_SIZE, k, replace=False) for _ in x])
    rows = np.arange(n)
    before = probs[rows, chosen]
    drops = {}
    for name, idx in masks.items():
        key = (tuple(grid), seed, n)
        if name == "random_cells" and cache is not None and key in cache:
            drops[name] = cache[key]
            continue
        masked = x.copy().reshape(n, 3, -1)
        masked[rows[:, None, None], np.arange(3)[None, :, None], idx[:, None, :]] = 0.0
        drops[name] = before - predictor.predict(masked.reshape(x.shape))[rows, chosen]
        if name == "random_cells" and cache is not None:
            cache[key] = drops[name]
    return {
        "images": n,
        "fraction": fraction,
        "top1_probability": round(float(before.mean()), 4),
        **{f"drop_{name}": round(float(d.mean()), 4) for name, d in drops.items()},
        "cam_hurts_more_than_random_cells": round(float((drops["cam"] > drops["random_cells"]).mean()), 4),
    }


def composites(images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
    """The images pasted into one quadrant each (rotating) of a grey canvas, preprocessed as a request is: (x, quadrants)."""
    quadrants = np.arange(len(images)) % 4
    x = np.stack([to_array(composite(img, int(q))) for img, q in zip(images, quadrants, strict=True)])
    return x, quadrants


def quadrant_mass(maps: np.ndarray, quadrants: np.ndarray) -> dict[str, Any]:
    """Share of each upsampled map's mass in its image's quadrant (a blank map counts as chance, 25 %)."""
    half = IMAGE_SIZE // 2
    shares = []
    for m, q in zip(maps, quadrants, strict=True):
        total = float(m.sum())
        r, c = divmod(int(q), 2)
        inside = float(m[r * half : (r + 1) * half, c * half : (c + 1) * half].sum())
        shares.append(inside / total if total > 0 else 0.25)
    shares = np.asarray(shares)
    return {
        "images": len(maps),
        "mass_in_quadrant": round(float(shares.mean()), 4),
        "majority_in_quadrant": round(float((shares > 0.5).mean()), 4),
        "chance": 0.25,
    }


def localisation(
    predictor: Predictor, images: Sequence[Image.Image], labels: np.ndarray, method: str, layer: str | None = None
) -> dict[str, Any]:
    """Share of the upsampled map's mass in the quadrant holding the image, for its true class (gradient methods;
    Eigen-CAM has no class)."""
    x, quadrants = composites(images)
    targets = [int(t) for t in labels] if method in GRADIENT_METHODS else None
    _, maps, _ = upsampled_maps(predictor, x, method, targets, layer)
    return quadrant_mass(maps, quadrants)


def faithfulness(
    predictor: Predictor, images: Sequence[Image.Image], labels: np.ndarray, x: np.ndarray, at: dict[str, str]
) -> dict[str, Any]:
    """Deletion (with every control) and localisation of `at`'s method and of Eigen-CAM, at `at`'s layer."""
    return {
        method: {
            "deletion": deletion(predictor, x, method, layer=at["layer"]),
            "localisation": localisation(predictor, images, labels, method, at["layer"]),
        }
        for method in dict.fromkeys((at["method"], "eigencam"))
    }
