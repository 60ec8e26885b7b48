"""Class activation maps: which pixels of an image drive a class, at one inspectable layer.

Four gradient methods, all from one image's (C, H, W) activations A and the class logit's gradient G at them
(one autograd pass serves them all):

- **Grad-CAM** (Selvaraju et al., 2017): channels weighted by their mean gradient, summed, rectified. The
  channel means can cancel: where the weighted sum is negative everywhere the map is blank (measured on the
  shipped InceptionNet at inception4e: 29 % of test images), which is why the others exist.
- **Grad-CAM++** (Chattopadhay et al., 2018): channel weights from positive gradients only, each cell weighted
  by alpha = G^2 / (2 G^2 + sum(A) G^3), the closed form for an exp-of-score output with first-order gradients
  only (as jacobgil's pytorch-grad-cam computes it).
- **LayerCAM** (Jiang et al., 2021): every cell's activation weighted by its own positive gradient, summed.
- **HiResCAM** (Draelos & Carin, 2020): the element-wise product G * A summed over channels (no averaging).

And one without gradients:

- **Eigen-CAM** (Muhammad & Yeasin, 2020): the layer's first principal component, from the ONNX Runtime
  activations alone. No gradients and no class: the same map for every class.

This module is the arithmetic alone: NumPy arrays in, NumPy arrays out. The activations and gradients come from
`cifarlens_runtime.torchscript` (autograd through the exported graph, which ONNX Runtime cannot give), the method
names and the reading of a class from `cifarlens_runtime.vocabulary`. tests/cifarlens_runtime/test_cam.py checks
each gradient method against jacobgil's pytorch-grad-cam (and Grad-CAM against Captum) on the eager net rebuilt
from the checkpoint.

Maps are normalised to [0, 1] (divided by their maximum; all zeros when nothing is positive: `is_blank`) and
come at the layer's resolution, plus a bilinear upsampling to the input's 32x32. Each net names its default
method and layer (metadata.json, from the model file); older artefacts fall back to Grad-CAM at
`default_layer`. NumPy and Pillow only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from cifarlens_runtime.constants import IMAGE_SIZE

# Grad-CAM++'s guard against 0/0 where a gradient is zero, pytorch-grad-cam's value.
GRADCAMPP_EPS = 1e-6
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


def _floats(x: np.ndarray) -> np.ndarray:
    """float32, or float64 when given float64: the reference checks run in double precision (see
    `cifarlens_runtime.torchscript`)."""
    x = np.asarray(x)
    return x.astype(np.result_type(x.dtype, np.float32), copy=False)


def normalize(cam: np.ndarray) -> np.ndarray:
    """Rectify and scale a map to [0, 1] by its maximum (Grad-CAM's convention); all zeros if none is positive."""
    cam = np.maximum(_floats(cam), 0.0)
    peak = float(cam.max()) if cam.size else 0.0
    return cam / peak if peak > 0 else np.zeros_like(cam)


def is_blank(cam: np.ndarray) -> bool:
    """True when no cell of a map is positive: nothing to show (the page says so in words instead)."""
    return not bool((np.asarray(cam) > 0).any())


def _pair(act: np.ndarray, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One image's activations and gradients as floats (see `_floats`), checked to be (C, H, W) of one shape."""
    act, grad = _floats(act), _floats(grad)
    if act.ndim != 3 or act.shape != grad.shape:
        raise ValueError(f"expected (C, H, W) activations and gradients of one shape, got {act.shape}, {grad.shape}")
    return act, grad


def grad_cam(act: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Grad-CAM of one image: (C, H, W) activations and the class logit's gradient -> (H, W) in [0, 1]."""
    act, grad = _pair(act, grad)
    weights = grad.mean(axis=(1, 2))
    return normalize(np.tensordot(weights, act, axes=1))


def grad_cam_pp(act: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Grad-CAM++ of one image, first-order form (pytorch-grad-cam's): channel weights sum(relu(G) * alpha) with
    alpha = G^2 / (2 G^2 + sum_hw(A) G^3 + eps), 0 where G is 0 -> (H, W) in [0, 1]."""
    act, grad = _pair(act, grad)
    g2 = grad**2
    g3 = g2 * grad
    alpha = g2 / (2 * g2 + act.sum(axis=(1, 2), keepdims=True) * g3 + GRADCAMPP_EPS)
    alpha = np.where(grad != 0, alpha, 0.0)
    weights = (np.maximum(grad, 0.0) * alpha).sum(axis=(1, 2))
    return normalize(np.tensordot(weights, act, axes=1))


def layer_cam(act: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """LayerCAM of one image: sum over channels of relu(G) * A, cell by cell -> (H, W) in [0, 1]."""
    act, grad = _pair(act, grad)
    return normalize((np.maximum(grad, 0.0) * act).sum(axis=0))


def hires_cam(act: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """HiResCAM of one image: sum over channels of G * A, cell by cell -> (H, W) in [0, 1]."""
    act, grad = _pair(act, grad)
    return normalize((grad * act).sum(axis=0))


# Each gradient method's map of one image, by name (`vocabulary.GRADIENT_METHODS`, in that order).
GRADIENT_CAMS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "gradcam": grad_cam,
    "gradcampp": grad_cam_pp,
    "layercam": layer_cam,
    "hirescam": hires_cam,
}


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
