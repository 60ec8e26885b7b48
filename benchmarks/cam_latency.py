"""How fast a class activation map is, batch 1 on the CPU, against a prediction; and Grad-CAM against Captum's.

In process: ONNX Runtime prediction; Grad-CAM by autograd through the exported TorchScript model (what the
handler runs); Captum's LayerGradCam on the eager net rebuilt from the checkpoint (the alternative, which
would need the training code in the worker); Eigen-CAM from ONNX Runtime activations. REST, one client,
through a real TorchServe: /predictions/<model> against /explanations/<model> (Grad-CAM and Eigen-CAM).
Target: CAM p50 at most 3x the prediction p50. Every call runs in each of the interleaved rounds of
benchmarks.rounds; a figure is the median over rounds of each round's median.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.rounds import run_rounds, time_calls
from cifarlens_runtime.constants import EXPLANATIONS_ROUTE
from cifarlens_runtime.predictor import Predictor
from cifarlens_runtime.preprocess import to_array

TARGET_CAM_RATIO = 3.0
WARMUP = 5  # untimed calls of each variant before the first round


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


def latency(calls: dict[str, Callable[[int], Any]], rounds: int, n: int, label: str = "round") -> dict[str, float]:
    """p50 (ms) of each call: the median over `rounds` interleaved rounds (benchmarks.rounds) of each round's
    median over `n` calls, round r at inputs r * n onwards."""
    per_round = run_rounds(
        list(calls.values()),
        rounds,
        measure=lambda fn, r: float(np.median(time_calls(fn, n, offset=r * n))),
        warmup=lambda fn: time_calls(fn, WARMUP),
        label=label,
    )
    return {name: round(float(np.median(v)), 3) for name, v in zip(calls, per_round, strict=True)}


def measure_latency(
    name: str, predictor: Predictor, ckpt: Path, server: Any, jpegs: Sequence[bytes], args: argparse.Namespace
) -> dict[str, Any]:
    """Latency rows of one net (in process and through TorchServe) and the float32 Captum check at its default."""
    x = np.stack([to_array(Image.open(io.BytesIO(b))) for b in jpegs[:64]])
    model, captum = eager_captum(predictor, ckpt)
    diff = captum_difference(predictor, captum, x[:16])
    print(f"{name}: latency ...", flush=True)
    calls = {**in_process(predictor, model, captum, x), **rest(server, name, jpegs[:64])}
    p50 = latency(calls, args.rounds, args.calls, label=f"{name}: round")
    ratio = round(p50["REST gradcam"] / p50["REST predict"], 2)
    return {"layer": predictor.cam_layer, "latency_ms": p50, "rest_ratio": ratio,
            "rest_ratio_met": ratio <= TARGET_CAM_RATIO, "captum_max_diff": diff}  # fmt: skip


def earlier_latency(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The latency rows (and the Captum check made with them) of the committed results, kept as they are when a
    run skips latency, with the machine and date they were measured on: (machine, {net: rows})."""
    old = json.loads(path.read_text())
    keep = ("layer", "latency_ms", "rest_ratio", "rest_ratio_met", "captum_max_diff")
    from_machine = old.get("latency_from", {}).get("machine", old["machine"])
    rows = {name: {k: n[k] for k in keep if k in n} for name, n in old["nets"].items()}
    return from_machine, rows
