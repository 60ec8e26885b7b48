"""What the serving benchmark serves and sends: the nets' artefacts and archives, and real JPEG test images."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cifarlens_runtime.constants import DEFAULT_BACKEND, METADATA_FILE, ONNX_FILE, TORCHSCRIPT_FILE


def test_inputs(data_dir: Path, n: int) -> tuple[np.ndarray, list[bytes]]:
    """`n` preprocessed test images (N, 3, 32, 32) and `n` JPEG bodies spread over the classes.

    JPEGs are the files of the ImageFolder copy when there are any (what a client would send);
    otherwise the decoded test images are encoded as JPEG (quality 95).
    """
    from cifarlens_runtime.preprocess import preprocess

    files = sorted((data_dir / "test").glob("*/*.jpg"))
    if files:
        step = max(len(files) // n, 1)
        jpegs = [f.read_bytes() for f in files[::step][:n]]
    else:
        jpegs = encoded_test_images(data_dir, n)
    x = np.stack([preprocess(b) for b in jpegs]).astype(np.float32)
    return x, jpegs


def encoded_test_images(data_dir: Path, n: int) -> list[bytes]:
    """`n` decoded test images spread over the set, encoded as JPEG (quality 95): for a copy without JPEG files."""
    from PIL import Image

    from training.data import load_cifar10

    images, _ = load_cifar10(data_dir, "test")
    step = max(len(images) // n, 1)
    jpegs = []
    for img in images[::step][:n]:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=95)
        jpegs.append(buf.getvalue())
    return jpegs


def ensure_archives(
    models: Sequence[str], runs: Path, artifacts: Path, model_store: Path, data_dir: Path | None
) -> list[str]:
    """Export and archive what is missing or stale (archive older than its artefact or model-config.yaml), so a
    run measures the nets it names. Returns what was built; SystemExit with the command to run when a checkpoint
    is missing."""
    built = []
    for name in models:
        built += ensure_artifacts(name, runs, artifacts, data_dir)
        built += ensure_archive(name, artifacts, model_store)
    return built


def ensure_artifacts(name: str, runs: Path, artifacts: Path, data_dir: Path | None) -> list[str]:
    """Export runs/<name>/best.pt to artifacts/<name> unless every artefact file is there."""
    art = artifacts / name
    if all((art / f).is_file() for f in (ONNX_FILE, TORCHSCRIPT_FILE, METADATA_FILE)):
        return []
    ckpt = runs / name / "best.pt"
    if not ckpt.is_file():
        raise SystemExit(
            f"error: {art} is incomplete and {ckpt} does not exist: train first "
            f"(`make train-all`), then `make export archive`, or pass --runs/--artifacts"
        )
    from serving.export import export_checkpoint

    export_checkpoint(ckpt, art, data_dir=data_dir)
    return [f"{name}: exported {ckpt} -> {art}"]


def ensure_archive(name: str, artifacts: Path, model_store: Path) -> list[str]:
    """Rebuild <model_store>/<name>.mar when missing or older than its ONNX file or model-config.yaml."""
    from serving.archive import MODEL_CONFIG, build_archive

    mar = model_store / f"{name}.mar"
    newest = max((artifacts / name / ONNX_FILE).stat().st_mtime, MODEL_CONFIG.stat().st_mtime)
    if mar.is_file() and mar.stat().st_mtime >= newest:
        return []
    # Keep the backend of an existing archive (make archive BACKEND=torchscript), else the default.
    backend = (archive_config(mar).get("handler") or {}).get("backend") if mar.is_file() else None
    build_archive(name, artifacts, model_store, backend=backend or DEFAULT_BACKEND)
    return [f"{name}: archived ({backend or DEFAULT_BACKEND}) -> {mar}"]


def archive_config(mar: Path) -> dict[str, Any]:
    """The model-config.yaml inside an archive (batch size, delay, workers, backend), as TorchServe sees it."""
    with zipfile.ZipFile(mar) as z:
        name = next((n for n in z.namelist() if n.endswith("model-config.yaml")), None)
        return yaml.safe_load(z.read(name)) if name else {}
