"""Which map each net should show by default: blank maps of every gradient method at every layer, and the choice.

For every layer and gradient method (Grad-CAM, Grad-CAM++, LayerCAM, HiResCAM; one forward and one backward
pass per batch of 100 serve them all): the share of all-zero maps and of single-cell maps (top-1 class), and
the localisation (true class). Deletion for the candidates (maps of at least 2x2, at most 1 % blank,
localising no worse than today's default: Grad-CAM at the last layer of at least 8x8); the default is the
qualifying candidate with the largest deletion margin (CHOICE_RULE).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.cam_faithfulness import composites, deletion_of_maps, faithfulness, quadrant_mass, upsample_all
from cifarlens_runtime.cam import GRADIENT_CAMS, default_layer
from cifarlens_runtime.predictor import Predictor, softmax
from cifarlens_runtime.preprocess import to_array
from cifarlens_runtime.vocabulary import GRADIENT_METHODS

BATCH = 100  # images per autograd pass when measuring every layer at once
# A default may leave at most this share of images with an all-zero map.
MAX_BLANK = 0.01
# Candidate layers: maps of at least this many cells a side (a 1x1 map is one cell whatever the image).
MIN_CANDIDATE_SIZE = 2
CHOICE_RULE = (
    "among the candidates with at most 1 % blank maps whose deletion (drop of the map's top 20 %, and its margin "
    "over 20 % random cells of the same grid) and localisation are no worse than today's default (Grad-CAM at the "
    "last layer of at least 8x8), the largest deletion margin (then the most mass in the image's quadrant)"
)


def gradient_maps(
    predictor: Predictor, x: np.ndarray, targets: Sequence[int] | None = None, batch: int = BATCH
) -> tuple[dict[tuple[str, str], np.ndarray], np.ndarray, np.ndarray]:
    """Every gradient method's map at every layer, from one forward and one backward pass per batch of `batch`
    images (the service's float32 path): ({(method, layer): maps (N, H, W)}, probabilities, class indices)."""
    model = predictor.gradients()
    maps: dict[tuple[str, str], list[np.ndarray]] = {(m, la): [] for la in predictor.layers for m in GRADIENT_METHODS}
    probs, chosen = [], []
    for start in range(0, len(x), batch):
        part = x[start : start + batch]
        want = [None] * len(part) if targets is None else [int(t) for t in targets[start : start + batch]]
        logits, acts, grads, picked = model.every(part, predictor.layers, want)
        probs.append(softmax(logits))
        chosen.append(picked)
        for (method, layer), out in maps.items():
            fn = GRADIENT_CAMS[method]
            out.append(np.stack([fn(a, g) for a, g in zip(acts[layer], grads[layer], strict=True)]))
    return {k: np.concatenate(v) for k, v in maps.items()}, np.concatenate(probs), np.concatenate(chosen)


def blank_shares(maps: dict[tuple[str, str], np.ndarray]) -> dict[str, dict[str, dict[str, float]]]:
    """{layer: {method: share of all-zero maps, share of single-cell maps (one cell > 0)}}."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (method, layer), cams in maps.items():
        positive = (cams > 0).reshape(len(cams), -1).sum(axis=1)
        share = {"blank": float((positive == 0).mean()), "single_cell": float((positive == 1).mean())}
        out.setdefault(layer, {})[method] = {k: round(v, 4) for k, v in share.items()}
    return out


def margin(row: dict[str, Any]) -> float:
    """How much more hiding the map's top 20 % hurts than hiding 20 % random cells of its own grid: the check."""
    return round(row["drop_cam"] - row["drop_random_cells"], 4)


def qualifies(row: dict[str, Any], base: dict[str, Any]) -> bool:
    """A candidate default: at most MAX_BLANK blank maps, deletion (drop and margin) and localisation no worse
    than today's default's."""
    return (
        row["blank"] <= MAX_BLANK
        and row["drop_cam"] >= base["drop_cam"]
        and margin(row) >= margin(base)
        and row["mass_in_quadrant"] >= base["mass_in_quadrant"]
    )


def choose(rows: list[dict[str, Any]], base: dict[str, Any]) -> dict[str, Any]:
    """The default among the qualifying candidates: CHOICE_RULE. Today's default when none qualifies."""
    good = [r for r in rows if qualifies(r, base)]
    return max(good, key=lambda r: (margin(r), r["mass_in_quadrant"])) if good else base


def search(predictor: Predictor, images: Sequence[Image.Image], labels: np.ndarray, x: np.ndarray) -> dict[str, Any]:
    """Blank and single-cell shares (top-1 class) and localisation (true class) of every gradient method at every
    layer, then deletion of the candidates (maps of at least 2x2, at most MAX_BLANK blank, localising no worse than
    today's default: Grad-CAM at `default_layer`; the others cannot qualify), and the choice among them."""
    maps, probs, chosen = gradient_maps(predictor, x)
    by_layer = blank_shares(maps)
    cx, quadrants = composites(images)
    true_maps, _, _ = gradient_maps(predictor, cx, labels)
    for (method, layer), m in true_maps.items():
        by_layer[layer][method]["mass_in_quadrant"] = quadrant_mass(upsample_all(m), quadrants)["mass_in_quadrant"]
    old = ("gradcam", default_layer(predictor.layer_shapes))
    rows, cache = [], {}
    for (method, layer), m in maps.items():
        grid = predictor.layer_shapes[layer][1:]
        row = {"method": method, "layer": layer, **by_layer[layer][method]}
        wanted = (method, layer) == old or (
            min(grid) >= MIN_CANDIDATE_SIZE
            and row["blank"] <= MAX_BLANK
            and row["mass_in_quadrant"] >= by_layer[old[1]][old[0]]["mass_in_quadrant"]
        )
        if wanted:
            d = deletion_of_maps(predictor, x, probs, upsample_all(m), chosen, grid, controls=False, cache=cache)
            rows.append({**row, "drop_cam": d["drop_cam"], "drop_random_cells": d["drop_random_cells"]})
            rows[-1]["margin"] = margin(rows[-1])
            print(f"  {method} at {layer}: {rows[-1]}", flush=True)
    base = next(r for r in rows if (r["method"], r["layer"]) == old)
    for r in rows:
        r["qualifies"] = qualifies(r, base)
    best = choose(rows, base)
    return {"maps_by_layer": by_layer, "candidates": rows, "baseline": {"method": old[0], "layer": old[1]},
            "default": {"method": best["method"], "layer": best["layer"]}}  # fmt: skip


def measure_quality(name: str, predictor: Predictor, images: Sequence[Image.Image], labels: np.ndarray) -> dict:
    """Blank shares, the candidate search and the faithfulness of the chosen default (and Eigen-CAM) of one net."""
    x = np.stack([to_array(img) for img in images])
    print(f"{name}: blank maps and candidates on {len(images)} images ...", flush=True)
    found = search(predictor, images, labels, x)
    print(f"{name}: chosen {found['default']}; faithfulness ...", flush=True)
    return {**found, "faithfulness": faithfulness(predictor, images, labels, x, found["default"])}
