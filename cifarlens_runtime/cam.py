"""Class activation maps: which pixels of an image drive a class, at one inspectable layer.

Two methods:

- **Grad-CAM** (Selvaraju et al., 2017), the default: the layer's channels weighted by the mean
  gradient of the class logit over each channel, summed, rectified. It needs gradients, which ONNX
  Runtime cannot give, so `GradientModel` runs the exported TorchScript feature model (model.ts, the
  same graph as the ONNX file, already returning every inspectable activation) with autograd.
  torch is imported only when a Grad-CAM is asked for (the TorchServe worker has it anyway); the net's
  training code is never needed. benchmarks/cam.py measures this against Captum's LayerGradCam on the
  eager net rebuilt from the checkpoint.
- **Eigen-CAM** (Muhammad & Yeasin, 2020): the layer's first principal component, from the ONNX Runtime
  activations alone. No gradients and no class: the same map for every class.

Maps are normalised to [0, 1] (divided by their maximum; all zeros when nothing is positive) and come at
the layer's resolution, plus a bilinear upsampling to the input's 32x32. NumPy and Pillow only at import.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from cifarlens_runtime.constants import CLASSES, IMAGE_SIZE

METHODS: tuple[str, ...] = ("gradcam", "eigencam")
DEFAULT_METHOD = "gradcam"
# The default layer is the last inspectable one whose map has at least this many pixels a side (a quarter
# of the input's): coarser maps cannot say where anything is. Measured (benchmarks/results/cam_cpu.md), on a
# test image in one quadrant of a grey canvas, InceptionNet's 4x4 inception5b puts a third of its Grad-CAM
# mass there (chance: a quarter), its 8x8 inception4e over half; PlainCNN's block5 is 1x1.
MIN_CAM_SIZE = 8


def default_layer(layer_shapes: Mapping[str, Sequence[int]]) -> str:
    """The last layer (in forward order) whose (C, H, W) map is at least MIN_CAM_SIZE a side, else the first."""
    names = list(layer_shapes)
    if not names:
        raise ValueError("this net names no inspectable layers")
    spatial = [n for n in names if min(layer_shapes[n][1:]) >= MIN_CAM_SIZE]
    return spatial[-1] if spatial else names[0]


def class_index(target: str | int | None, classes: Sequence[str] = CLASSES) -> int | None:
    """A class given by name (any case) or index as its index; None (or "") means the top-1 class.

    Raises ValueError with the allowed values for anything else.
    """
    if target is None or (isinstance(target, str) and not target.strip()):
        return None
    text = str(target).strip()
    lowered = [c.lower() for c in classes]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    # One ASCII digit: str.isdigit() would take '³' or '٣', and int() '-0' or '09'.
    if len(text) == 1 and "0" <= text <= "9" and int(text) < len(classes):
        return int(text)
    raise ValueError(f"unknown class '{text}': use one of {', '.join(classes)}, or an index 0-{len(classes) - 1}")


def _floats(x: np.ndarray) -> np.ndarray:
    """float32, or float64 when given float64: the reference checks run in double precision (see GradientModel)."""
    x = np.asarray(x)
    return x.astype(np.result_type(x.dtype, np.float32), copy=False)


def normalize(cam: np.ndarray) -> np.ndarray:
    """Rectify and scale a map to [0, 1] by its maximum (Grad-CAM's convention); all zeros if none is positive."""
    cam = np.maximum(_floats(cam), 0.0)
    peak = float(cam.max()) if cam.size else 0.0
    return cam / peak if peak > 0 else np.zeros_like(cam)


def grad_cam(act: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Grad-CAM of one image: (C, H, W) activations and the class logit's gradient -> (H, W) in [0, 1]."""
    act, grad = _floats(act), _floats(grad)
    if act.ndim != 3 or act.shape != grad.shape:
        raise ValueError(f"expected (C, H, W) activations and gradients of one shape, got {act.shape}, {grad.shape}")
    weights = grad.mean(axis=(1, 2))
    return normalize(np.tensordot(weights, act, axes=1))


def eigen_cam(act: np.ndarray) -> np.ndarray:
    """Eigen-CAM of one image: the projection of (C, H, W) activations on their first principal component.

    The component's sign is arbitrary; it is chosen so that the map correlates positively with the mean
    activation (what the layer responds to), as pytorch-grad-cam's EigenCAM leaves to chance.
    """
    act = np.asarray(act, dtype=np.float32)
    if act.ndim != 3:
        raise ValueError(f"expected (C, H, W) activations, got shape {act.shape}")
    c, h, w = act.shape
    flat = act.reshape(c, h * w).T  # (pixels, channels)
    if h * w == 1:
        return normalize(flat.sum(axis=1).reshape(h, w))
    centred = flat - flat.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    proj = (centred @ vt[0]).reshape(h, w)
    mean = act.mean(axis=0)
    if float(((proj - proj.mean()) * (mean - mean.mean())).sum()) < 0:
        proj = -proj
    return normalize(proj)


def upsample(cam: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """A (H, W) map resized bilinearly to (size, size), pixel centres aligned, clipped to [0, 1]."""
    cam = np.asarray(cam, dtype=np.float32)
    if cam.shape == (size, size):
        return cam.copy()
    up = Image.fromarray(cam, mode="F").resize((size, size), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(up, dtype=np.float32), 0.0, 1.0)


class GradientModel:
    """The exported TorchScript feature model run with autograd: logits, a layer's activations and the
    gradient of each image's class logit with respect to them.

    The graph's profiling executor is switched off for these calls: once it has optimised the graph
    (from the second call on) gradients no longer reach intermediate outputs ("appears to not have been
    used in the graph"). Measured on this project's nets, unoptimised execution is also no slower here.

    `dtype="float64"` runs the graph in double precision. The service never does; tests do, so that comparing
    with a reference implementation does not depend on which float32 kernels oneDNN picks for the CPU.
    """

    def __init__(self, path: str | Path, layers: Sequence[str], threads: int = 1, dtype: str = "float32") -> None:
        import torch

        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} not found: Grad-CAM needs the TorchScript export (`make export`)")
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated in torch 2.14.
            self._module = torch.jit.load(str(path), map_location="cpu").eval()
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        if dtype == "float64":
            self._module = self._module.double()
        self.dtype = np.dtype(dtype)
        self._torch = torch
        self.layers = list(layers)

    def __call__(
        self, batch: np.ndarray, layer: str, targets: Sequence[int | None]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(logits (N, K), activations (N, C, H, W), gradients (N, C, H, W), target indices (N,)) for a batch.

        A target of None is the image's top-1 class. Images of a batch are independent (eval mode), so one
        backward pass of the summed target logits gives every image's own gradient.
        """
        torch = self._torch
        index = self.layers.index(layer)
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=self.dtype))
        with torch.jit.optimized_execution(False), torch.enable_grad():
            outs = self._module(x)
            logits, act = outs[0], outs[1 + index]
            top1 = logits.detach().argmax(dim=1)
            chosen = torch.tensor([top1[i] if t is None else t for i, t in enumerate(targets)], dtype=torch.long)
            score = logits.gather(1, chosen[:, None]).sum()
            (grad,) = torch.autograd.grad(score, act)
        return logits.detach().numpy(), act.detach().numpy(), grad.numpy(), chosen.numpy()
