"""Export, archive and serve the CIFAR-10 nets.

Names and limits shared by the exporter, the TorchServe handler, the server helpers and the UI's
in-process backend live here, once. This module imports neither torch nor onnxruntime: the
handler ships it inside every archive.
"""

from __future__ import annotations

# Artefact layout: artifacts/<model>/{model.onnx, model.ts, metadata.json}.
ONNX_FILE = "model.onnx"
TORCHSCRIPT_FILE = "model.ts"
METADATA_FILE = "metadata.json"

# Graph names of the exported FeatureModel: one input, the logits, then one output per feature layer.
INPUT_NAME = "input"
LOGITS_NAME = "logits"
ONNX_OPSET = 17

BACKENDS: tuple[str, ...] = ("onnxruntime", "torchscript")
DEFAULT_BACKEND = "onnxruntime"
BACKEND_FILES: dict[str, str] = {"onnxruntime": ONNX_FILE, "torchscript": TORCHSCRIPT_FILE}

# REST: archives are registered under this version; feature maps live at
# /predictions/<model>/<ARCHIVE_VERSION>/<FEATURE_ROUTE>?layer=<name> (or .../<FEATURE_ROUTE>/<name>).
ARCHIVE_VERSION = "1.0"
FEATURE_ROUTE = "feature_maps"
TOP_K = 5
# Largest accepted image body; anything bigger is answered 413 before decoding.
MAX_IMAGE_BYTES = 10 * 1024 * 1024
# Decoded size cap, well under Pillow's decompression-bomb error, so a small file cannot blow up memory.
MAX_IMAGE_PIXELS = 40_000_000
# Channels drawn in the grid PNG of a feature-map response (strongest mean first).
GRID_MAX_CHANNELS = 64
