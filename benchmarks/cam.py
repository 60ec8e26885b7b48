"""Class activation maps on the CPU: how fast (in process and through TorchServe) and how faithful, per net.

Latency, batch 1, real JPEG test images, every variant in each of `--rounds` rounds (order rotating):
- in process: ONNX Runtime prediction; Grad-CAM by autograd through the exported TorchScript model (what the
  handler runs); Captum's LayerGradCam on the eager net rebuilt from the checkpoint (the alternative, which
  would need the training code in the worker); Eigen-CAM from ONNX Runtime activations;
- REST, one client, through a real TorchServe (free ports, token auth on): /predictions/<model> against
  /explanations/<model> (Grad-CAM and Eigen-CAM). Target: CAM p50 at most 3x the prediction p50.

Faithfulness, on `--images` real test images per net (spread over the classes), each net's default CAM layer:
- deletion: the image's top-1 probability after the 20 % most activated pixels of its upsampled map are set
  to the mean colour, against 20 % random pixels (seeded). A faithful map hurts more;
- localisation: the test image pasted into one quadrant (rotating) of a 64x64 grey canvas, sent through the
  service's preprocessing (to 32x32); the share of the map's mass (upsampled) in that quadrant, for the true
  class. Chance is 25 %.

The Grad-CAM of every net is also compared with Captum's on the same images (largest difference of the maps).

    python -m benchmarks.cam [--weights weights] [--data-dir ../shared/data/cifar10] [--images 500] [--quick]

The nets are exported and archived from `--weights` into a temporary folder. The CPU, its load and the busiest
processes are recorded before and after; a busy machine (load > 0.5) does not overwrite committed results.
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
from cifarlens_runtime.cam import METHODS, upsample
from cifarlens_runtime.constants import CLASSES, EXPLANATIONS_ROUTE, IMAGE_SIZE
from cifarlens_runtime.predictor import Predictor
from cifarlens_runtime.preprocess import to_array

TARGET_CAM_RATIO = 3.0
DELETE_FRACTION = 0.2
CANVAS = 2 * IMAGE_SIZE
GREY = (128, 128, 128)


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
    return probs, np.stack([upsample(c) for c in cams]), chosen


def deletion(predictor: Predictor, x: np.ndarray, method: str, fraction: float = DELETE_FRACTION, seed: int = 0):
    """Top-1 probability drop when the `fraction` most activated pixels of the upsampled map are set to the mean
    colour (0 in normalised space), against three controls of as many pixels: random cells of the map's own grid
    upsampled the same way (the same blocky structure, so the comparison is only about *where*: the check), the
    least activated pixels, and scattered single pixels (which hurt any net by destroying texture everywhere)."""
    probs, maps, chosen = upsampled_maps(predictor, x, method)
    n, k = len(x), int(round(fraction * IMAGE_SIZE * IMAGE_SIZE))
    h, w = predictor.layer_shapes[predictor.cam_layer][1:]
    rng = np.random.default_rng(seed)
    masks: dict[str, list[np.ndarray]] = {"cam": [], "random_cells": [], "least_cam": [], "scattered": []}
    for i in range(n):
        order = np.argsort(-maps[i].reshape(-1), kind="stable")
        masks["cam"].append(order[:k])
        masks["least_cam"].append(order[::-1][:k])
        cells = upsample(rng.random((h, w)).astype(np.float32))
        masks["random_cells"].append(np.argsort(-cells.reshape(-1), kind="stable")[:k])
        masks["scattered"].append(rng.choice(IMAGE_SIZE * IMAGE_SIZE, size=k, replace=False))
    rows = np.arange(n)
    before = probs[rows, chosen]
    drops = {}
    for name, idx in masks.items():
        masked = x.copy()
        for i in range(n):
            masked[i].reshape(3, -1)[:, idx[i]] = 0.0
        drops[name] = before - predictor.predict(masked)[rows, chosen]
    return {
        "images": n,
        "fraction": fraction,
        "top1_probability": round(float(before.mean()), 4),
        **{f"drop_{name}": round(float(d.mean()), 4) for name, d in drops.items()},
        "cam_hurts_more_than_random_cells": round(float((drops["cam"] > drops["random_cells"]).mean()), 4),
    }


def localisation(
    predictor: Predictor, images: Sequence[Image.Image], labels: np.ndarray, method: str, layer: str | None = None
):
    """Share of the upsampled map's mass in the quadrant holding the image, for its true class (Grad-CAM)."""
    quadrants = np.arange(len(images)) % 4
    x = np.stack([to_array(composite(img, int(q))) for img, q in zip(images, quadrants, strict=True)])
    targets = [int(t) for t in labels] if method == "gradcam" else None
    _, maps, _ = upsampled_maps(predictor, x, method, targets, layer)
    half = IMAGE_SIZE // 2
    shares = []
    for m, q in zip(maps, quadrants, strict=True):
        total = float(m.sum())
        r, c = divmod(int(q), 2)
        inside = float(m[r * half : (r + 1) * half, c * half : (c + 1) * half].sum())
        shares.append(inside / total if total > 0 else 0.25)
    shares = np.asarray(shares)
    return {
        "images": len(images),
        "mass_in_quadrant": round(float(shares.mean()), 4),
        "majority_in_quadrant": round(float((shares > 0.5).mean()), 4),
        "chance": 0.25,
    }


def localisation_by_layer(predictor: Predictor, images: Sequence[Image.Image], labels: np.ndarray) -> dict[str, float]:
    """Grad-CAM localisation (mass in the image's quadrant) at every layer with a map of at least 2x2."""
    out = {}
    for layer in predictor.layers:
        if min(predictor.layer_shapes[layer][1:]) >= 2:
            out[layer] = localisation(predictor, images, labels, "gradcam", layer)["mass_in_quadrant"]
    return out


def faithfulness(predictor: Predictor, images: Sequence[Image.Image], labels: np.ndarray) -> dict[str, Any]:
    """Deletion and localisation of every method for one net."""
    x = np.stack([to_array(img) for img in images])
    return {
        method: {
            "deletion": deletion(predictor, x, method),
            "localisation": localisation(predictor, images, labels, method),
        }
        for method in METHODS
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
        "REST gradcam": post(f"/{EXPLANATIONS_ROUTE}/{model}"),
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


def markdown(payload: dict[str, Any]) -> str:
    nets = list(payload["nets"])
    lines = [
        "# Class activation maps: latency and faithfulness",
        "",
        f"Batch 1, median of {payload['settings']['rounds']} interleaved rounds; one TorchServe worker per net "
        "(1 thread). Default CAM layer: the last inspectable layer with a map of at least 8x8.",
        "",
        "## Latency (p50, ms)",
        "",
    ]
    cols = ["net", "layer", *payload["nets"][nets[0]]["latency_ms"], "CAM / prediction (REST)", "target <= 3x"]
    rows = []
    for name in nets:
        n = payload["nets"][name]
        rows.append({"net": name, "layer": n["layer"], **n["latency_ms"], "CAM / prediction (REST)": n["rest_ratio"],
                     "target <= 3x": "met" if n["rest_ratio_met"] else "missed"})  # fmt: skip
    lines += [markdown_table(rows, cols), ""]
    lines += [
        "Grad-CAM against Captum's LayerGradCam on the eager net (same images, layer and classes): largest difference "
        "of the [0, 1] maps " + ", ".join(f"{n} {payload['nets'][n]['captum_max_diff']:.1e}" for n in nets) + ".",
        "",
        f"## Faithfulness ({payload['settings']['images']} test images per net)",
        "",
    ]
    cols = ["net", "method", "top-1 prob", "drop: top 20 % of the map", "drop: random 20 % of its cells",
            "drop: least 20 %", "drop: 20 % scattered pixels", "images where the map beats random cells",
            "map mass in the image's quadrant", "images with > 50 % there"]  # fmt: skip
    rows = []
    for name in nets:
        for method, f in payload["nets"][name]["faithfulness"].items():
            d, loc = f["deletion"], f["localisation"]
            rows.append({"net": name, "method": method, "top-1 prob": d["top1_probability"],
                         "drop: top 20 % of the map": d["drop_cam"], "drop: random 20 % of its cells": d["drop_random_cells"],
                         "drop: least 20 %": d["drop_least_cam"], "drop: 20 % scattered pixels": d["drop_scattered"],
                         "images where the map beats random cells": f"{100 * d['cam_hurts_more_than_random_cells']:.0f} %",
                         "map mass in the image's quadrant": f"{100 * loc['mass_in_quadrant']:.0f} %",
                         "images with > 50 % there": f"{100 * loc['majority_in_quadrant']:.0f} %"})  # fmt: skip
    lines += [markdown_table(rows, cols), ""]
    lines += [
        "Deletion: pixels set to the training mean colour; the drop is in the top-1 class's probability. The check "
        "compares the map's top 20 % with a random 20 % of the map's own cells, upsampled the same way (same blocky "
        "shapes, random places). Scattered single pixels hurt more than either on every net: they break the texture "
        "of the whole image, which says more about the nets than about the maps.",
        "",
        "Localisation: a test image in one quadrant of a 64x64 grey canvas, resized to 32x32 like any request; "
        "Grad-CAM for the image's true class (Eigen-CAM has no class); chance is 25 %. Grad-CAM by layer "
        "(share of the mass in the image's quadrant):",
        "",
    ]
    for name in nets:
        by_layer = payload["nets"][name]["localisation_by_layer"]
        lines.append(f"- {name}: " + ", ".join(f"{k} {100 * v:.0f} %" for k, v in by_layer.items()))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=Path("weights"), help="<model>/best.pt (default: weights)")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/cifar10"), help="ImageFolder root")
    parser.add_argument("--images", type=int, default=500, help="test images per net for faithfulness (default 500)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=60, help="timed calls per variant and round (default 60)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--force", action="store_true", help="overwrite committed results from a busy machine")
    parser.add_argument("--quick", action="store_true", help="few images and calls: validates the script")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.rounds, args.calls = 40, 2, 5
    import torch

    from serving.archive import build_archive
    from serving.export import export_checkpoint
    from serving.server import Ports, free_ports, start_server, stop

    torch.set_num_threads(1)
    info = machine()
    print(f"machine: {describe_machine(info)}", flush=True)
    check_quiet(args.out, args.force or (args.quick and args.out != RESULTS), info)
    models = sorted(p.parent.name for p in args.weights.glob("*/best.pt"))
    if not models:
        print(f"error: no <model>/best.pt under {args.weights}", file=sys.stderr)
        return 1
    images, labels, jpegs = load_test_images(args.data_dir, max(args.images // len(CLASSES), 1))
    work = Path(tempfile.mkdtemp(prefix="cifarlens-bench-cam-"))
    nets: dict[str, Any] = {}
    server = None
    try:
        for name in models:
            export_checkpoint(args.weights / name / "best.pt", work / "artifacts" / name, data_dir=args.data_dir)
            build_archive(name, work / "artifacts", work / "store")
        server = start_server(work / "store", Ports(*free_ports()), work / "ts", foreground=True)
        x = np.stack([to_array(Image.open(io.BytesIO(b))) for b in jpegs[:64]])
        for name in models:
            predictor = Predictor(work / "artifacts" / name)
            ckpt = args.weights / name / "best.pt"
            print(f"{name}: faithfulness on {len(images)} images ...", flush=True)
            faith = faithfulness(predictor, images, labels)
            by_layer = localisation_by_layer(predictor, images, labels)
            model, captum = eager_captum(predictor, ckpt)
            diff = captum_difference(predictor, captum, x[:16])
            print(f"{name}: latency ...", flush=True)
            calls = {**in_process(predictor, model, captum, x), **rest(server, name, jpegs[:64])}
            latency = run_rounds(calls, args.rounds, args.calls, warmup=5)
            ratio = round(latency["REST gradcam"] / latency["REST predict"], 2)
            nets[name] = {"layer": predictor.cam_layer, "latency_ms": latency, "rest_ratio": ratio,
                          "rest_ratio_met": ratio <= TARGET_CAM_RATIO, "captum_max_diff": diff,
                          "faithfulness": faith, "localisation_by_layer": by_layer}  # fmt: skip
            print(name, nets[name], flush=True)
    finally:
        if server is not None:
            stop(server)
        shutil.rmtree(work, ignore_errors=True)
    payload = {
        "machine": finish(info),
        "settings": {
            "images": len(images),
            "rounds": args.rounds,
            "calls": args.calls,
            "weights": str(args.weights),
            "delete_fraction": DELETE_FRACTION,
            "target_cam_ratio": TARGET_CAM_RATIO,
        },  # fmt: skip
        "nets": nets,
    }
    for path in write_results("cam_cpu", payload, markdown(payload), args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
