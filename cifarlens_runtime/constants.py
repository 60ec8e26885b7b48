"""Names and numbers shared by training, export, serving and the UI, each defined once.

CIFAR-10 facts first, then the artefact layout and graph names that export writes and serving reads,
then the REST contract and the local server's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# --- CIFAR-10 ---

CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
NUM_CLASSES = len(CLASSES)
IMAGE_SIZE = 32
IN_CHANNELS = 3
# Per-channel statistics of the CIFAR-10 training set (RGB, pixel values scaled to [0, 1]).
MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)

VAL_PER_CLASS = 1000
DEFAULT_SEED = 42
# Image files an ImageFolder copy (train/<class>/*.jpg) may hold.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")


def normalization() -> dict[str, list[float]]:
    """The normalisation as plain lists, the form stored in checkpoints and metadata."""
    return {"mean": list(MEAN), "std": list(STD)}


# --- a training run: runs/<model>/{best.pt, metrics.json, ...}, and a shipped net: weights/<model>/ alike ---

CHECKPOINT_FILE = "best.pt"
METRICS_FILE = "metrics.json"

# --- exported artefacts: artifacts/<model>/{model.onnx, model.ts, metadata.json} ---

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

# --- REST ---

# Archives are registered under this version; feature maps live at
# /predictions/<model>/<ARCHIVE_VERSION>/<FEATURE_ROUTE>/<layer> (or a `layer` form field).
ARCHIVE_VERSION = "1.0"
FEATURE_ROUTE = "feature_maps"
LAYER_PARAM = "layer"
# Class activation maps: POST /explanations/<model>[/<ARCHIVE_VERSION>[/<layer>[/<class>]]], or the form
# fields `layer`, `class` and `method` (TorchServe 0.12 drops query strings before the handler).
EXPLANATIONS_ROUTE = "explanations"
CLASS_PARAM = "class"
METHOD_PARAM = "method"
TOP_K = 5
# Largest accepted image body; anything bigger is answered 413 before decoding.
MAX_IMAGE_BYTES = 10 * 1024 * 1024
# Decoded size cap, well under Pillow's decompression-bomb error, so a small file cannot blow up memory.
MAX_IMAGE_PIXELS = 40_000_000
# Image formats decoded (Pillow's names): what browsers send. MPO is how Pillow reads many phone JPEGs.
# Anything else Pillow recognises (TIFF, ICO, PSD...) is answered 415; bytes that are no image at all, 400.
IMAGE_FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP")

# --- the local TorchServe (`make serve`) and the page (`make ui`) ---

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Ports:
    """Inference, management and metrics ports, and the two gRPC ports TorchServe always opens
    (two servers with the default 7070/7071 collide even when their HTTP ports differ)."""

    inference: int = 8080
    management: int = 8081
    metrics: int = 8082
    grpc_inference: int = 7070
    grpc_management: int = 7071


UI_PORT = 7860
# `make serve` runs TorchServe here; TorchServe writes KEY_FILE into its working directory.
DEFAULT_WORKDIR = Path(".ts_tmp/serve")
KEY_FILE = "key_file.json"
# The renewer (cifarlens_runtime/keys.py) keeps the inference key alone in this file beside KEY_FILE, for clients
# that must not hold the management or API key (the page's container).
INFERENCE_KEY_FILE = "inference_key.json"
# Lifetime of TorchServe's inference and management keys (its token_expiration_min, written into every server's
# config); the renewer replaces them after half of it.
TOKEN_EXPIRATION_MIN = 1440


def url(port: int, host: str = HOST) -> str:
    """http://host:port, the form every client and config file uses."""
    return f"http://{host}:{port}"


# --- the Open Inference Protocol (v2) server (`make serve-v2`, serving/v2/) ---

# REST and gRPC ports of `make serve-v2` (on HOST unless told otherwise).
V2_REST_PORT = 8085
V2_GRPC_PORT = 8086
# `make serve-v2` keeps its pid file and log here.
V2_WORKDIR = Path(".ts_tmp/v2")
# Tensor names: one input per request, encoded images or 32x32 RGB pixels; outputs besides LOGITS_NAME and the
# feature layers of metadata.json.
V2_IMAGE_INPUT = "image"
V2_PIXELS_INPUT = "pixels"
PROBABILITIES_NAME = "probabilities"
# A whole request (REST body or gRPC message): room for one MAX_IMAGE_BYTES image as base64 JSON (4/3 larger).
V2_MAX_REQUEST_BYTES = 16 * 1024 * 1024
V2_MAX_IMAGES = 256
# The float32 outputs one answer may carry (feature layers are up to 2 MB an image).
V2_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
