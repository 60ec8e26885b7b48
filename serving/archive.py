"""Build one TorchServe archive per exported net, all on the one handler in serving/handler.py.

Each archive holds the handler, the torch-free `cifarlens_runtime` package it imports (whole, as it is
in the repository), metadata.json, the model file of the chosen backend, the TorchScript file that
Grad-CAM differentiates, and a model-config.yaml with the per-model settings and that backend.

    python -m serving.archive [--artifacts artifacts] [--out model_store] [--backend onnxruntime|torchscript]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

import cifarlens_runtime
from cifarlens_runtime.constants import (
    ARCHIVE_VERSION,
    BACKEND_FILES,
    BACKENDS,
    DEFAULT_BACKEND,
    METADATA_FILE,
    TORCHSCRIPT_FILE,
)
from cifarlens_runtime.predictor import exported_models

PACKAGE_DIR = Path(__file__).resolve().parent
HANDLER = PACKAGE_DIR / "handler.py"
MODEL_CONFIG = PACKAGE_DIR / "model-config.yaml"
# The one package the handler imports besides TorchServe's own; it imports no torch.
RUNTIME_DIR = Path(cifarlens_runtime.__file__).resolve().parent


def _archiver() -> str:
    exe = Path(sys.executable).parent / "torch-model-archiver"
    found = str(exe) if exe.is_file() else shutil.which("torch-model-archiver")
    if not found:
        raise FileNotFoundError("torch-model-archiver not found: run `make install`")
    return found


def stage(artifact_dir: Path, backend: str, stage_dir: Path, config: Path = MODEL_CONFIG) -> Path:
    """Lay out the archive's extra files in `stage_dir`; returns the model-config.yaml to archive."""
    import json

    # The backend's model file, plus the TorchScript copy Grad-CAM differentiates (the same file when the
    # backend is TorchScript).
    model_files = {artifact_dir / BACKEND_FILES[backend], artifact_dir / TORCHSCRIPT_FILE}
    for path in (artifact_dir / METADATA_FILE, *model_files):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run `make export` first")
    files = stage_dir / "files"
    shutil.copytree(RUNTIME_DIR, files / RUNTIME_DIR.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(artifact_dir / METADATA_FILE, files / METADATA_FILE)
    for path in model_files:
        shutil.copy2(path, files / path.name)
    settings = yaml.safe_load(config.read_text()) or {}
    settings.setdefault("handler", {})["backend"] = backend
    model_config = stage_dir / "model-config.yaml"
    model_config.write_text(yaml.safe_dump(settings, sort_keys=False))
    json.loads((files / METADATA_FILE).read_text())  # fail here, not in the worker, on a broken file
    return model_config


def build_archive(
    model: str,
    artifacts: str | Path = "artifacts",
    out: str | Path = "model_store",
    backend: str = DEFAULT_BACKEND,
    config: str | Path = MODEL_CONFIG,
) -> Path:
    """Write `<out>/<model>.mar` from `artifacts/<model>/`; returns its path."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"cifarlens-mar-{model}-") as tmp:
        tmp = Path(tmp)
        model_config = stage(Path(artifacts) / model, backend, tmp, Path(config))
        cmd = [
            _archiver(),
            "--model-name", model,
            "--version", ARCHIVE_VERSION,
            "--handler", str(HANDLER),
            "--extra-files", str(tmp / "files"),
            "--config-file", str(model_config),
            "--runtime", "python",
            "--export-path", str(out),
            "--force",
        ]  # fmt: skip
        # The archiver stages in $TMPDIR/<model>: a private TMPDIR keeps parallel builds apart.
        (tmp / "tmp").mkdir()
        env = {**os.environ, "TMPDIR": str(tmp / "tmp")}
        result = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"torch-model-archiver failed for {model}:\n{result.stdout}{result.stderr}")
    return out / f"{model}.mar"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.archive", description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", default="artifacts", help="output of serving.export (default: artifacts)")
    parser.add_argument("--out", default="model_store", help="where the .mar files go (default: model_store)")
    parser.add_argument("--models", nargs="+", help="default: every exported model under --artifacts")
    parser.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND)
    parser.add_argument("--config", default=str(MODEL_CONFIG), help="model-config.yaml template")
    args = parser.parse_args(argv)
    names = args.models or exported_models(args.artifacts)
    if not names:
        print(f"error: no exported models under {args.artifacts}: run `make export` first", file=sys.stderr)
        return 1
    try:
        for name in names:
            path = build_archive(name, args.artifacts, args.out, args.backend, args.config)
            print(f"{name}: {path} ({args.backend}, {path.stat().st_size / 1e6:.1f} MB)")
    except (FileNotFoundError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
