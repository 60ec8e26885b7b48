"""Image preprocessing for the training code: defined once in the torch-free `cifarlens_runtime.preprocess`."""

from __future__ import annotations

from cifarlens_runtime.preprocess import ImageError, load_image, preprocess, resize, to_array, to_rgb

__all__ = ["ImageError", "load_image", "preprocess", "resize", "to_array", "to_rgb"]
