"""Export checkpoints to TorchScript and ONNX, checked against the eager model.

Both artefacts wrap the net in `training.featuremaps.FeatureModel`, so one graph returns the
logits and the activation of every inspectable layer as named outputs: ONNX Runtime only returns
graph outputs, and a loaded TorchScript module refuses hooks. `metadata.json` beside them carries
everything serving and the UI need (classes, normalisation, layers and shapes, metrics).

    python -m serving.export [--runs runs] [--out artifacts] [--models ...] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cifarlens_runtime.constants import (
    CHECKPOINT_FILE,
    CLASSES,
    IMAGE_SIZE,
    IN_CHANNELS,
    INPUT_NAME,
    LOGITS_NAME,
    METADATA_FILE,
    METRICS_FILE,
    ONNX_FILE,
    ONNX_OPSET,
    TORCHSCRIPT_FILE,
    normalization,
)
from cifarlens_runtime.files import TORCHVISION_FOLDER, find_cifar10, write_json
from training.checkpoint import load_checkpoint, model_from_checkpoint
from training.featuremaps import FeatureModel
from training.models import list_models

PARITY_IMAGES = 256
PARITY_ATOL = 1e-4
METRIC_KEYS = ("test_acc", "val_acc", "epochs", "params", "mflops")
# From the run's metrics.json beside the checkpoint, when there is one: what the page's comparison shows
# (per-class test accuracy, from the confusion matrix, and what the training cost), under these names.
RUN_METRIC_KEYS = {
    "test_acc_no_tta": "test_acc_no_tta",
    "per_class_test_acc": "per_class_test_acc",
    "train_seconds": "train_seconds",
    "images_seen": "images_seen",
    "device": "train_device",
    "precision": "train_precision",
}


class ParityError(RuntimeError):
    """An exported artefact disagrees with the eager model beyond the tolerance."""


def parity_images(data_dir: str | Path | None, n: int = PARITY_IMAGES, seed: int = 0) -> tuple[np.ndarray, str]:
    """`n` normalised test images (N, 3, 32, 32) spread over all classes, and where they came from.

    Real CIFAR-10 test images from `data_dir` (an ImageFolder root with test/, or torchvision's
    download), else from wherever `find_cifar10` finds them; otherwise seeded noise, and the returned
    source says so (it is written to the metadata).
    """
    from PIL import Image

    from cifarlens_runtime.preprocess import to_array

    root = find_cifar10(data_dir, "test")
    images = None
    if root is not None and (root / "test").is_dir():
        images, source = _read_test_images(root, n), f"cifar10 test images from {root}"
    elif root is not None:
        from training.data import DEFAULT_DOWNLOAD_ROOT, load_cifar10

        if root.resolve() == DEFAULT_DOWNLOAD_ROOT.resolve():
            all_images, _ = load_cifar10(None, "test")  # already downloaded: no network
            images, source = _spread(all_images, n), f"cifar10 test images from {root / TORCHVISION_FOLDER}"
    if images is not None:
        x = np.stack([to_array(Image.fromarray(img)) for img in images]).astype(np.float32)
        return x, source
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, IN_CHANNELS, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    return x, "random noise (no CIFAR-10 test data found; pass --data-dir)"


def _read_test_images(root: Path, n: int) -> list[np.ndarray]:
    """`n` uint8 (32, 32, 3) images evenly spaced over the test split (which is sorted by class)."""
    from training.data import load_cifar10

    images, _ = load_cifar10(root, "test")
    return _spread(images, n)


def _spread(items: Sequence[Any], n: int) -> list[Any]:
    """`n` items evenly spaced over a sequence sorted by class, so every class is represented."""
    idx = np.linspace(0, len(items) - 1, num=min(n, len(items))).round().astype(int)
    return [items[i] for i in idx]


def _compare(name: str, ref: np.ndarray, got: np.ndarray, atol: float) -> dict[str, Any]:
    diff = float(np.abs(ref - got).max())
    mismatched = int((ref.argmax(1) != got.argmax(1)).sum())
    scale = float(np.abs(ref).max())
    result = {
        "max_abs_logit_diff": diff,
        "argmax_mismatches": mismatched,
        "atol": atol,
        "max_abs_logit": scale,
        "passed": True,
    }
    if diff > atol or mismatched:
        result["passed"] = False
        # Float32 spacing at the largest logit: an absolute tolerance below it cannot hold for any backend.
        spacing = float(np.spacing(np.float32(scale)))
        result["error"] = (
            f"{name}: max abs logit diff {diff:.3g} (tolerance {atol:g}, over by {max(diff - atol, 0.0):.3g}), "
            f"{mismatched} of {len(ref)} images with a different argmax; logits reach {scale:.3g} "
            f"(float32 spacing there {spacing:.2g})"
        )
    return result


def cam_defaults(model: torch.nn.Module, layers: Sequence[str]) -> dict[str, Any]:
    """{"cam": {"method", "layer"}}: the default class activation map the net's class names (checked), or nothing
    (the predictor then falls back to Grad-CAM at `cifarlens_runtime.cam.default_layer`)."""
    from cifarlens_runtime.vocabulary import METHODS

    method, layer = getattr(model, "cam_method", None), getattr(model, "cam_layer", None)
    if method is None and layer is None:
        return {}
    if method not in METHODS or layer not in layers:
        raise ValueError(
            f"{type(model).__name__} names CAM default {method!r} at {layer!r}: not in {METHODS} at {layers}"
        )
    return {"cam": {"method": method, "layer": layer}}


def run_metrics(checkpoint: Path) -> dict[str, Any]:
    """The RUN_METRIC_KEYS of the metrics.json written beside `checkpoint` by its training run ({} if none)."""
    path = checkpoint.parent / METRICS_FILE
    if not path.is_file():
        return {}
    recorded = json.loads(path.read_text())
    return {ours: recorded[theirs] for theirs, ours in RUN_METRIC_KEYS.items() if theirs in recorded}


def write_graphs(fm: FeatureModel, out_dir: Path, output_names: Sequence[str]) -> list[list[int]]:
    """Trace `fm` into model.ts and export it into model.onnx (checked in full), both with a dynamic batch axis;
    returns each layer output's (C, H, W) shape."""
    import onnx

    example = torch.zeros(2, IN_CHANNELS, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        shapes = [list(t.shape[1:]) for t in fm(example)[1:]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript and the TorchScript-based ONNX exporter are deprecated.
        with torch.no_grad():
            traced = torch.jit.trace(fm, example)
        traced.save(str(out_dir / TORCHSCRIPT_FILE))
        torch.onnx.export(
            fm,
            (example,),
            str(out_dir / ONNX_FILE),
            input_names=[INPUT_NAME],
            output_names=list(output_names),
            dynamic_axes={name: {0: "batch"} for name in [INPUT_NAME, *output_names]},
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    onnx.checker.check_model(str(out_dir / ONNX_FILE), full_check=True)
    return shapes


def export_metrics(ckpt: dict[str, Any], model: torch.nn.Module, checkpoint: Path) -> dict[str, Any]:
    """What the page shows of a net: the checkpoint's METRIC_KEYS (epochs and parameters counted when missing),
    the epoch whose weights these are, and the run's own record beside the checkpoint (`run_metrics`)."""
    recorded = ckpt.get("metrics", {})
    metrics = {k: recorded[k] for k in METRIC_KEYS if k in recorded}
    metrics.setdefault("epochs", ckpt.get("epoch"))
    metrics["best_epoch"] = ckpt.get("epoch")  # the epoch whose weights these are (best validation accuracy)
    metrics.setdefault("params", sum(p.numel() for p in model.parameters()))
    metrics.update(run_metrics(checkpoint))
    return metrics


def build_metadata(
    ckpt: dict[str, Any], model: torch.nn.Module, checkpoint: Path, layers: Sequence[str], shapes: Sequence[list[int]]
) -> dict[str, Any]:
    """metadata.json without the parity results: everything serving and the UI read beside the graphs."""
    return {
        "model": ckpt["model"],
        "classes": list(ckpt.get("classes", CLASSES)),
        "normalization": ckpt.get("normalization", normalization()),
        "image_size": IMAGE_SIZE,
        "input_name": INPUT_NAME,
        "output_names": [LOGITS_NAME, *layers],
        "feature_layers": [{"name": n, "shape": s} for n, s in zip(layers, shapes, strict=True)],
        **cam_defaults(model, layers),
        "metrics": export_metrics(ckpt, model, checkpoint),
        "checkpoint": str(checkpoint),
        "onnx_opset": ONNX_OPSET,
        "files": {"onnx": ONNX_FILE, "torchscript": TORCHSCRIPT_FILE},
    }


def check_parity(
    model: torch.nn.Module, out_dir: Path, name: str, data_dir: str | Path | None, n_images: int, atol: float
) -> dict[str, Any]:
    """The eager model's logits against each exported backend's (through `Predictor`, as serving runs them) on
    `n_images` test images: {"images", "source", "torchscript": {...}, "onnxruntime": {...}} (see `_compare`)."""
    from cifarlens_runtime.predictor import Predictor

    x, source = parity_images(data_dir, n_images)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    parity: dict[str, Any] = {"images": len(x), "source": source}
    for backend in ("torchscript", "onnxruntime"):
        logits = Predictor(out_dir, backend=backend).run(x, [LOGITS_NAME])[0]
        parity[backend] = _compare(f"{name} {backend}", ref, logits, atol)
    return parity


def export_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    data_dir: str | Path | None = None,
    n_images: int = PARITY_IMAGES,
    atol: float = PARITY_ATOL,
) -> dict[str, Any]:
    """Write model.ts, model.onnx and metadata.json for one checkpoint; raise ParityError on a mismatch.

    The metadata is written before the parity check, then again with its results, so that it is there even
    when parity fails, to show by how much.
    """
    checkpoint = Path(checkpoint)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = load_checkpoint(checkpoint)
    model, _ = model_from_checkpoint(ckpt)
    fm = FeatureModel(model).eval()
    layers = list(fm.layers)
    shapes = write_graphs(fm, out_dir, [LOGITS_NAME, *layers])
    metadata = build_metadata(ckpt, model, checkpoint, layers, shapes)
    write_json(out_dir / METADATA_FILE, metadata)
    metadata["parity"] = parity = check_parity(model, out_dir, ckpt["model"], data_dir, n_images, atol)
    write_json(out_dir / METADATA_FILE, metadata)
    errors = [parity[b]["error"] for b in ("torchscript", "onnxruntime") if not parity[b]["passed"]]
    if errors:
        raise ParityError("; ".join(errors))
    return metadata


def export_all(
    runs: str | Path,
    out: str | Path,
    models: Sequence[str] | None = None,
    data_dir: str | Path | None = None,
    n_images: int = PARITY_IMAGES,
    atol: float = PARITY_ATOL,
) -> dict[str, dict[str, Any]]:
    """Export `runs/<model>/best.pt` of each model; every model is tried, then the failures are raised."""
    results, failures = {}, []
    for name in models or list_models():
        ckpt = Path(runs) / name / CHECKPOINT_FILE
        try:
            results[name] = export_checkpoint(ckpt, Path(out) / name, data_dir=data_dir, n_images=n_images, atol=atol)
        except (ParityError, FileNotFoundError, ValueError) as exc:
            failures.append(f"{name}: {exc}")
            continue
        p = results[name]["parity"]
        print(
            f"{name}: exported to {Path(out) / name} | parity on {p['images']} images ({p['source']}): "
            f"torchscript {p['torchscript']['max_abs_logit_diff']:.2e}, "
            f"onnxruntime {p['onnxruntime']['max_abs_logit_diff']:.2e} (tolerance {atol:g})"
        )
    if failures:
        raise ParityError("export failed for " + " | ".join(failures))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="runs", help="folder with <model>/best.pt (default: runs)")
    parser.add_argument("--out", default="artifacts", help="output folder (default: artifacts)")
    parser.add_argument("--models", nargs="+", choices=list_models(), help="default: every registered model")
    parser.add_argument(
        "--data-dir", default=None, help="CIFAR-10 ImageFolder root for the parity images (default: $DATA_DIR, ./data)"
    )
    parser.add_argument("--images", type=int, default=PARITY_IMAGES, help="parity images (default: 256)")
    parser.add_argument("--atol", type=float, default=PARITY_ATOL, help="largest logit difference (default: 1e-4)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        export_all(args.runs, args.out, args.models, data_dir=args.data_dir, n_images=args.images, atol=args.atol)
    except ParityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
