"""Run an exported model without PyTorch: ONNX Runtime over artifacts/<model>/.

Used by the TorchServe handler, the UI's in-process backend and the export parity check. The
TorchScript backend is there for comparison and imports torch only when chosen; the same TorchScript
runner (`cifarlens_runtime.torchscript`) gives the gradient CAMs their autograd on either backend.

The predictor trusts the names it is given (methods, layers, outputs): requests are checked once, in
`cifarlens_runtime.service`, against what it lists (`layers`, `cam_method`, `cam_layer`). A wrong name from
code is a programming error and fails with the engine's or the lookup's own error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cifarlens_runtime.cam import GRADIENT_CAMS, default_layer, eigen_cam
from cifarlens_runtime.constants import (
    BACKEND_FILES,
    BACKENDS,
    DEFAULT_BACKEND,
    INPUT_NAME,
    LOGITS_NAME,
    METADATA_FILE,
    TORCHSCRIPT_FILE,
)
from cifarlens_runtime.torchscript import TorchScriptModel
from cifarlens_runtime.vocabulary import DEFAULT_METHOD, EIGEN_METHOD, METHODS


def load_metadata(artifact_dir: str | Path) -> dict[str, Any]:
    """The metadata.json written by `serving.export`, with a clear error when it is missing."""
    path = Path(artifact_dir) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `make export` (python -m serving.export) first")
    return json.loads(path.read_text())


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, shifted by the row max for stability."""
    z = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def onnx_session(path: Path, threads: int, providers: Sequence[str]) -> Any:
    """An ONNX Runtime session of `path` with `threads` intra-op threads and no inter-op parallelism."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=list(providers))


class Predictor:
    """One exported net: probabilities and layer activations for (N, 3, 32, 32) float32 batches.

    `threads` bounds the intra-op threads (1 by default: one worker per core under TorchServe).
    """

    def __init__(
        self,
        artifact_dir: str | Path,
        backend: str = DEFAULT_BACKEND,
        threads: int = 1,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.artifact_dir = Path(artifact_dir)
        self.backend = backend
        self.threads = threads
        self.metadata = load_metadata(self.artifact_dir)
        self.name: str = self.metadata["model"]
        self.classes: list[str] = list(self.metadata["classes"])
        self.layer_shapes: dict[str, list[int]] = {d["name"]: list(d["shape"]) for d in self.metadata["feature_layers"]}
        self.output_names: list[str] = list(self.metadata["output_names"])
        path = self.artifact_dir / BACKEND_FILES[backend]
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run `make export` first")
        self._session = onnx_session(path, threads, providers) if backend == "onnxruntime" else None
        self._torchscript = TorchScriptModel(path, self.output_names, threads) if backend == "torchscript" else None

    @property
    def layers(self) -> list[str]:
        """Inspectable layers in forward order."""
        return list(self.layer_shapes)

    def run(self, batch: np.ndarray, outputs: Sequence[str]) -> list[np.ndarray]:
        """Raw graph outputs (`logits` and/or layer names) for a float32 batch (N, 3, 32, 32) or one image."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim == 3:
            batch = batch[None]
        size = self.metadata["image_size"]
        if batch.ndim != 4 or batch.shape[1:] != (3, size, size):
            raise ValueError(
                f"expected a (N, 3, {size}, {size}) batch (see cifarlens_runtime.preprocess), got {batch.shape}"
            )
        if self._session is not None:
            return self._session.run(list(outputs), {INPUT_NAME: batch})
        return self.gradients().run(batch, outputs)

    def gradients(self) -> TorchScriptModel:
        """The TorchScript runner (model.ts beside the ONNX file): the `torchscript` backend's engine and, on
        either backend, the gradient CAMs' autograd. One per predictor, loaded on first use."""
        if self._torchscript is None:
            self._torchscript = TorchScriptModel(self.artifact_dir / TORCHSCRIPT_FILE, self.output_names, self.threads)
        return self._torchscript

    @property
    def cam_layer(self) -> str:
        """The layer class activation maps use by default: the one the net names (metadata `cam.layer`, chosen by
        benchmarks/cam.py), else, for artefacts exported before, `cifarlens_runtime.cam.default_layer`'s rule."""
        named = (self.metadata.get("cam") or {}).get("layer")
        return named if named in self.layer_shapes else default_layer(self.layer_shapes)

    @property
    def cam_method(self) -> str:
        """The method class activation maps use by default: the net's (metadata `cam.method`), else Grad-CAM."""
        named = (self.metadata.get("cam") or {}).get("method")
        return named if named in METHODS else DEFAULT_METHOD

    def cam(
        self,
        batch: np.ndarray,
        method: str | None = None,
        layer: str | None = None,
        targets: Sequence[int | None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Class activation maps of a (N, 3, 32, 32) batch: (probabilities (N, K), maps (N, H, W) in [0, 1] at the
        layer's resolution, class indices (N,)). None for the method or layer: the net's defaults (`cam_method`,
        `cam_layer`). A target of None is the image's top-1 class. Eigen-CAM has no class: it takes no targets
        and its indices are the top-1 classes."""
        method = method or self.cam_method
        layer = layer or self.cam_layer
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if method == EIGEN_METHOD:
            logits, acts = self.run(batch, [LOGITS_NAME, layer])
            return softmax(logits), np.stack([eigen_cam(a) for a in acts]), logits.argmax(axis=1)
        fn = GRADIENT_CAMS[method]
        targets = list(targets) if targets is not None else [None] * len(batch)
        logits, acts, grads, chosen = self.gradients().gradients(batch, layer, targets)
        return softmax(logits), np.stack([fn(a, g) for a, g in zip(acts, grads, strict=True)]), chosen

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities (N, 10)."""
        return softmax(self.run(batch, [LOGITS_NAME])[0])


def exported_models(artifacts: str | Path) -> list[str]:
    """The nets `serving.export` wrote under `artifacts` (folders with a metadata.json), sorted by name."""
    return sorted(p.parent.name for p in Path(artifacts).glob(f"*/{METADATA_FILE}"))
