"""Class activation maps on the CPU: how often each method's map is blank, how faithful, and how fast, per net.

Blank maps and the default, on `--images` real test images per net (spread over the classes), shipped weights:
- for every layer and gradient method (Grad-CAM, Grad-CAM++, LayerCAM, HiResCAM; one forward and one backward
  pass per batch of 100 serve them all), the share of all-zero maps and of single-cell maps (top-1 class), and
  the localisation below (true class);
- deletion for the candidates (maps of at least 2x2, at most 1 % blank, localising no worse than today's default:
  Grad-CAM at the last layer of at least 8x8); the default is the qualifying candidate with the largest deletion
  margin (CHOICE_RULE). The model files name the choice (`cam_method`, `cam_layer`);
- deletion, with every control, and localisation of the chosen default and of Eigen-CAM at its layer:
  - deletion: the image's top-1 probability after the 20 % most activated pixels of its upsampled map are set
    to the mean colour, against 20 % random cells of the map's grid (the margin), the 20 % least activated and
    20 % scattered pixels (seeded). A faithful map hurts more than random cells;
  - localisation: the test image pasted into one quadrant (rotating) of a 64x64 grey canvas, sent through the
    service's preprocessing (to 32x32); the share of the map's mass (upsampled) in that quadrant, for the true
    class. Chance is 25 %.

Latency, batch 1, real JPEG test images, every variant in each of `--rounds` rounds (order rotating):
- in process: ONNX Runtime prediction; Grad-CAM by autograd through the exported TorchScript model (what the
  handler runs); Captum's LayerGradCam on the eager net rebuilt from the checkpoint (the alternative, which
  would need the training code in the worker); Eigen-CAM from ONNX Runtime activations;
- REST, one client, through a real TorchServe (free ports, token auth on): /predictions/<model> against
  /explanations/<model> (Grad-CAM and Eigen-CAM). Target: CAM p50 at most 3x the prediction p50.
The Grad-CAM of every net is also compared with Captum's on the same images (largest difference of the maps).
`--skip-latency` keeps the committed latency rows (and says so, with their date): a shared machine's timings
mean nothing, while the maps do not depend on the load.

    python -m benchmarks.cam [--weights weights] [--data-dir ../shared/data/cifar10] [--images 1000]
                             [--skip-latency] [--quick]

The nets are exported and archived from `--weights` into a temporary folder. The CPU, its load and the busiest
processes are recorded before and after; a busy machine (load > 0.5) does not overwrite committed latency.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.common import RESULTS, check_quiet, describe_machine, finish, machine, markdown_table, write_results
from cifarlens_runtime.cam import GRADIENT_CAMS, GRADIENT_METHODS, MIN_CAM_SIZE, default_layer, upsample
from cifarlens_runtime.constants import CLASSES, EXPLANATIONS_ROUTE, IMAGE_SIZE
from cifarlens_runtime.predictor import Predictor, softmax
from cifarlens_runtime.preprocess import to_array

TARGET_CAM_RATIO = 3.0
DELETE_FRACTION = 0.2
CANVAS = 2 * IMAGE_SIZE
GREY = (128, 128, 128)
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


# --- inputs ---


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


# --- faithfulness ---


def upsampled_maps(
    predictor: Predictor,
    x: np.ndarray,
    method: str,
    targets: Sequence[int | None] | None = None,
    layer: str | None = None,
):
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
):
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
):
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
):
    """Share of the upsampled map's mass in the quadrant holding the image, for its true class (gradient methods;
    Eigen-CAM has no class)."""
    x, quadrants = composites(images)
    targets = [int(t) for t in labels] if method in GRADIENT_METHODS else None
    _, maps, _ = upsampled_maps(predictor, x, method, targets, layer)
    return quadrant_mass(maps, quadrants)


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


def eager_captum(predictor: Predictor, checkpoint: Path) -> tuple[Any, Any]:
    """The eager net rebuilt from `checkpoint` and Captum's LayerGradCam at the predictor's default CAM layer."""
    from captum.attr import LayerGradCam

    from training.checkpoint import model_from_checkpoint

    model, _ = model_from_checkpoint(checkpoint)
    return model, LayerGradCam(model, model.get_submodule(predictor.cam_layer))


def captum_difference(predictor: Predictor, captum: Any, x: np.ndarray) -> float:
    """Largest difference between this project's Grad-CAM and Captum's LayerGradCam (rectified, scaled to its max)
    on the eager net, same images, layer and (top-1) classes."""
    import torch

    from cifarlens_runtime.cam import normalize

    _, ours, chosen = predictor.cam(x, "gradcam")
    attr = captum.attribute(torch.from_numpy(x), target=torch.from_numpy(chosen))
    theirs = np.stack([normalize(a[0]) for a in attr.detach().numpy()])
    return float(np.abs(ours - theirs).max())


# --- latency ---


def _timed(fn: Callable[[int], Any], n: int, offset: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(offset + i)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def in_process(predictor: Predictor, model: Any, captum: Any, x: np.ndarray) -> dict[str, Callable[[int], Any]]:
    """Batch-1 calls to time: prediction, Grad-CAM (TorchScript autograd), Captum on the eager net, Eigen-CAM."""
    import torch

    def captum_call(i: int) -> None:
        xi = torch.from_numpy(x[i % len(x)][None])
        with torch.no_grad():
            target = int(model(xi).argmax())
        captum.attribute(xi, target=target)

    return {
        "predict (onnxruntime)": lambda i: predictor.predict(x[i % len(x)][None]),
        "gradcam (torchscript autograd)": lambda i: predictor.cam(x[i % len(x)][None], "gradcam"),
        "gradcam (captum, eager net)": captum_call,
        "eigencam (onnxruntime)": lambda i: predictor.cam(x[i % len(x)][None], "eigencam"),
    }


def rest(server: Any, model: str, jpegs: Sequence[bytes]) -> dict[str, Callable[[int], Any]]:
    """Batch-1 REST calls to time, each checked for a 200 answer."""
    import requests

    from cifarlens_runtime.keys import refused

    session = requests.Session()
    session.trust_env = False
    base = server.inference_url
    keys = {"auth": server.headers("inference")}

    def post(path: str, data: dict[str, str] | None = None) -> Callable[[int], None]:
        def send(body: bytes) -> requests.Response:
            auth = keys["auth"]
            if data:
                return session.post(base + path, files={"data": ("i.jpg", body, "image/jpeg")}, data=data, headers=auth)
            return session.post(base + path, data=body, headers={**auth, "Content-Type": "image/jpeg"})

        def call(i: int) -> None:
            body = jpegs[i % len(jpegs)]
            resp = send(body)
            if refused(resp.status_code, resp.text):  # the server's renewer replaced the key: read it again, once
                keys["auth"] = server.headers("inference")
                resp = send(body)
            if resp.status_code != 200:
                raise RuntimeError(f"{path}: HTTP {resp.status_code} {resp.text[:200]}")

        return call

    return {
        "REST predict": post(f"/predictions/{model}"),
        "REST gradcam": post(f"/{EXPLANATIONS_ROUTE}/{model}", {"method": "gradcam"}),
        "REST eigencam": post(f"/{EXPLANATIONS_ROUTE}/{model}", {"method": "eigencam"}),
    }


def run_rounds(calls: dict[str, Callable[[int], Any]], rounds: int, n: int, warmup: int) -> dict[str, float]:
    """p50 (ms) of each call: median over rounds of each round's median; the order rotates between rounds."""
    names = list(calls)
    for name in names:
        for i in range(warmup):
            calls[name](i)
    per_round: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            per_round[name].append(float(np.median(_timed(calls[name], n, r * n))))
    return {name: round(float(np.median(v)), 3) for name, v in per_round.items()}


# --- report ---


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def markdown_defaults(payload: dict[str, Any]) -> list[str]:
    """The chosen default of each net against today's (Grad-CAM at the last layer of at least 8x8)."""
    cols = ["net", "default", "blank maps", "single-cell maps", "drop: top 20 % of the map", "margin over random cells",
            "map mass in the image's quadrant", "today's default", "its blank maps", "its single-cell maps",
            "its drop", "its margin", "its mass"]  # fmt: skip
    rows = []
    for name, n in payload["nets"].items():
        found = {(r["method"], r["layer"]): r for r in n["candidates"]}
        new, old = found[tuple(n["default"].values())], found[tuple(n["baseline"].values())]
        rows.append({"net": name, "default": f"**{new['method']} at {new['layer']}**", "blank maps": pct(new["blank"]),
                     "single-cell maps": pct(new["single_cell"]), "drop: top 20 % of the map": new["drop_cam"],
                     "margin over random cells": new["margin"], "map mass in the image's quadrant": pct(new["mass_in_quadrant"]),
                     "today's default": f"{old['method']} at {old['layer']}", "its blank maps": pct(old["blank"]),
                     "its single-cell maps": pct(old["single_cell"]), "its drop": old["drop_cam"],
                     "its margin": old["margin"], "its mass": pct(old["mass_in_quadrant"])})  # fmt: skip
    return [
        f"## Defaults ({payload['settings']['images']} test images per net)",
        "",
        f"Rule: {payload['settings']['choice']}. The model file names the choice (`cam_method`, `cam_layer`); the "
        "export writes it into metadata.json.",
        "",
        markdown_table(rows, cols),
        "",
    ]


def markdown_blank(payload: dict[str, Any]) -> list[str]:
    """Blank and single-cell shares (top-1 class) and localisation (true class) of every method at every layer."""
    methods = list(GRADIENT_METHODS)
    cols = ["net", "layer", *(f"{m}: blank / single cell" for m in methods), *(f"{m}: mass" for m in methods)]
    rows = []
    for name, n in payload["nets"].items():
        for layer, by_method in n["maps_by_layer"].items():
            row: dict[str, Any] = {"net": name, "layer": layer}
            for m in methods:
                s = by_method[m]
                row[f"{m}: blank / single cell"] = f"{pct(s['blank'])} / {pct(s['single_cell'])}"
                row[f"{m}: mass"] = pct(s["mass_in_quadrant"])
            rows.append(row)
    return [
        "## Blank and single-cell maps, by layer and method",
        "",
        "Share of test images whose map (top-1 class) is all zeros (blank) or has one positive cell (single cell), "
        "and the localisation mass (true class, image in one quadrant of a grey canvas; chance 25 %). One forward "
        "and one backward pass per batch of 100 serve every layer and method. A 1x1 layer has one cell, so every "
        "map there that is not blank is single-cell.",
        "",
        markdown_table(rows, cols),
        "",
    ]


def markdown_candidates(payload: dict[str, Any]) -> list[str]:
    """Deletion and localisation of every candidate the search measured."""
    cols = ["net", "method", "layer", "blank", "drop: top 20 %", "drop: random 20 % of its cells", "margin", "mass",
            "qualifies"]  # fmt: skip
    rows = [{"net": name, "method": r["method"], "layer": r["layer"], "blank": pct(r["blank"]),
             "drop: top 20 %": r["drop_cam"], "drop: random 20 % of its cells": r["drop_random_cells"],
             "margin": r["margin"], "mass": pct(r["mass_in_quadrant"]),
             "qualifies": "baseline" if (r["method"], r["layer"]) == tuple(n["baseline"].values())
             else ("yes" if r["qualifies"] else "no")}
            for name, n in payload["nets"].items() for r in n["candidates"]]  # fmt: skip
    return [
        "## Candidates",
        "",
        "Deletion was measured for today's default and for every (method, layer) with maps of at least 2x2, at most "
        "1 % blank and localisation no worse than today's default (the others cannot qualify).",
        "",
        markdown_table(rows, cols),
        "",
    ]


def markdown_latency(payload: dict[str, Any]) -> list[str]:
    """The latency table (kept from an earlier run when this one skipped latency, which it says, with the date)."""
    nets = list(payload["nets"])
    source = payload.get("latency_from", {})
    when = (
        f"These rows come from the earlier run of {source['machine']['date'][:10]} ({describe_machine(source['machine'])}): "
        "this run did not re-measure latency (`--skip-latency`; the machine was shared)."
        if source.get("kept")
        else "Measured in this run."
    )
    cols = ["net", "layer", *payload["nets"][nets[0]]["latency_ms"], "CAM / prediction (REST)", "target <= 3x"]
    rows = []
    for name in nets:
        n = payload["nets"][name]
        rows.append({"net": name, "layer": n["layer"], **n["latency_ms"], "CAM / prediction (REST)": n["rest_ratio"],
                     "target <= 3x": "met" if n["rest_ratio_met"] else "missed"})  # fmt: skip
    return [
        "## Latency (p50, ms)",
        "",
        f"Batch 1, median of interleaved rounds; one TorchServe worker per net (1 thread), Grad-CAM at the layer "
        f"shown. {when}",
        "",
        markdown_table(rows, cols),
        "",
        "Grad-CAM against Captum's LayerGradCam on the eager net (float32, same images, layer and classes): largest "
        "difference of the [0, 1] maps "
        + ", ".join(f"{n} {payload['nets'][n]['captum_max_diff']:.1e}" for n in nets)
        + ". The tests compare every gradient method in float64 with pytorch-grad-cam (and Grad-CAM with Captum).",
        "",
    ]


def markdown(payload: dict[str, Any]) -> str:
    lines = ["# Class activation maps: blank maps, faithfulness and latency", ""]
    lines += markdown_defaults(payload)
    cols = ["net", "method", "layer", "top-1 prob", "drop: top 20 % of the map", "drop: random 20 % of its cells",
            "drop: least 20 %", "drop: 20 % scattered pixels", "images where the map beats random cells",
            "map mass in the image's quadrant", "images with > 50 % there"]  # fmt: skip
    rows = []
    for name, n in payload["nets"].items():
        for method, f in n["faithfulness"].items():
            d, loc = f["deletion"], f["localisation"]
            rows.append({"net": name, "method": method, "layer": n["default"]["layer"], "top-1 prob": d["top1_probability"],
                         "drop: top 20 % of the map": d["drop_cam"], "drop: random 20 % of its cells": d["drop_random_cells"],
                         "drop: least 20 %": d["drop_least_cam"], "drop: 20 % scattered pixels": d["drop_scattered"],
                         "images where the map beats random cells": f"{100 * d['cam_hurts_more_than_random_cells']:.0f} %",
                         "map mass in the image's quadrant": f"{100 * loc['mass_in_quadrant']:.0f} %",
                         "images with > 50 % there": f"{100 * loc['majority_in_quadrant']:.0f} %"})  # fmt: skip
    lines += [
        "## Faithfulness at the defaults (and Eigen-CAM at the same layer)",
        "",
        markdown_table(rows, cols),
        "",
        "Deletion: pixels set to the training mean colour; the drop is in the top-1 class's probability. The check "
        "compares the map's top 20 % with a random 20 % of the map's own cells, upsampled the same way (same blocky "
        "shapes, random places). Scattered single pixels hurt more than either on every net: they break the texture "
        "of the whole image, which says more about the nets than about the maps.",
        "",
        "Localisation: a test image in one quadrant of a 64x64 grey canvas, resized to 32x32 like any request; "
        "the map for the image's true class (Eigen-CAM has no class); chance is 25 %. The grey canvas has no edges, "
        "so even a layer that finds only edges localises well here: deletion is the other half of the check.",
        "",
    ]
    lines += markdown_blank(payload) + markdown_candidates(payload) + markdown_latency(payload)
    return "\n".join(lines)


def earlier_latency(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The latency rows (and the Captum check made with them) of the committed results, kept as they are when a
    run skips latency, with the machine and date they were measured on: (machine, {net: rows})."""
    import json

    old = json.loads(path.read_text())
    keep = ("layer", "latency_ms", "rest_ratio", "rest_ratio_met", "captum_max_diff")
    from_machine = old.get("latency_from", {}).get("machine", old["machine"])
    rows = {name: {k: n[k] for k in keep if k in n} for name, n in old["nets"].items()}
    return from_machine, rows


def measure_latency(name: str, predictor: Predictor, ckpt: Path, server: Any, jpegs: Sequence[bytes], args) -> dict:
    """Latency rows of one net (in process and through TorchServe) and the float32 Captum check at its default."""
    x = np.stack([to_array(Image.open(io.BytesIO(b))) for b in jpegs[:64]])
    model, captum = eager_captum(predictor, ckpt)
    diff = captum_difference(predictor, captum, x[:16])
    print(f"{name}: latency ...", flush=True)
    calls = {**in_process(predictor, model, captum, x), **rest(server, name, jpegs[:64])}
    latency = run_rounds(calls, args.rounds, args.calls, warmup=5)
    ratio = round(latency["REST gradcam"] / latency["REST predict"], 2)
    return {"layer": predictor.cam_layer, "latency_ms": latency, "rest_ratio": ratio,
            "rest_ratio_met": ratio <= TARGET_CAM_RATIO, "captum_max_diff": diff}  # fmt: skip


def measure_quality(name: str, predictor: Predictor, images: Sequence[Image.Image], labels: np.ndarray) -> dict:
    """Blank shares, the candidate search and the faithfulness of the chosen default (and Eigen-CAM) of one net."""
    x = np.stack([to_array(img) for img in images])
    print(f"{name}: blank maps and candidates on {len(images)} images ...", flush=True)
    found = search(predictor, images, labels, x)
    print(f"{name}: chosen {found['default']}; faithfulness ...", flush=True)
    return {**found, "faithfulness": faithfulness(predictor, images, labels, x, found["default"])}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=Path("weights"), help="<model>/best.pt (default: weights)")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/cifar10"), help="ImageFolder root")
    parser.add_argument("--images", type=int, default=1000, help="test images per net for the maps (default 1000)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=60, help="timed calls per variant and round (default 60)")
    parser.add_argument("--skip-latency", action="store_true",
                        help="keep the latency rows of the committed results (for a busy machine: maps do not "
                             "depend on the load)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--force", action="store_true", help="overwrite committed latency from a busy machine")
    parser.add_argument("--quick", action="store_true", help="few images and calls: validates the script")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.rounds, args.calls = 40, 2, 5
    return args


def settings(args: argparse.Namespace, images: int) -> dict[str, Any]:
    """What a run measured with, written beside its results."""
    return {"images": images, "rounds": args.rounds, "calls": args.calls, "weights": str(args.weights),
            "delete_fraction": DELETE_FRACTION, "target_cam_ratio": TARGET_CAM_RATIO, "max_blank": MAX_BLANK,
            "min_cam_size": MIN_CAM_SIZE, "choice": CHOICE_RULE}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from serving.archive import build_archive
    from serving.export import export_checkpoint
    from serving.server import Ports, free_ports, start_server, stop

    torch.set_num_threads(1)
    info = machine()
    print(f"machine: {describe_machine(info)}", flush=True)
    if not args.skip_latency:  # the maps do not depend on how busy the machine is; latency does
        check_quiet(args.out, args.force or (args.quick and args.out != RESULTS), info)
    models = sorted(p.parent.name for p in args.weights.glob("*/best.pt"))
    if not models:
        print(f"error: no <model>/best.pt under {args.weights}", file=sys.stderr)
        return 1
    images, labels, jpegs = load_test_images(args.data_dir, max(args.images // len(CLASSES), 1))
    latency_machine, kept = earlier_latency(RESULTS / "cam_cpu.json") if args.skip_latency else (None, {})
    work = Path(tempfile.mkdtemp(prefix="cifarlens-bench-cam-"))
    nets: dict[str, Any] = {}
    server = None
    try:
        for name in models:
            export_checkpoint(args.weights / name / "best.pt", work / "artifacts" / name, data_dir=args.data_dir)
            build_archive(name, work / "artifacts", work / "store")
        if not args.skip_latency:
            server = start_server(work / "store", Ports(*free_ports()), work / "ts", foreground=True)
        for name in models:
            predictor = Predictor(work / "artifacts" / name)
            nets[name] = measure_quality(name, predictor, images, labels)
            if args.skip_latency:
                nets[name].update(kept[name])
            else:
                nets[name].update(
                    measure_latency(name, predictor, args.weights / name / "best.pt", server, jpegs, args)
                )
            print(name, {k: nets[name][k] for k in ("default", "baseline")}, flush=True)
    finally:
        if server is not None:
            stop(server)
        shutil.rmtree(work, ignore_errors=True)
    payload = {"machine": finish(info), "latency_from": {"machine": latency_machine or info, "kept": args.skip_latency},
               "settings": settings(args, len(images)), "nets": nets}  # fmt: skip
    for path in write_results("cam_cpu", payload, markdown(payload), args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
