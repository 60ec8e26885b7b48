"""The words a class activation map request may use: the method names and how a class is named.

Defined once here, below the service that checks requests with them and the page that checks its own
choices before sending: `METHODS` (the gradient methods, then Eigen-CAM) and `class_index`. What each
method computes is `cifarlens_runtime.cam`'s. Standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence

from cifarlens_runtime.constants import CLASSES

# The gradient methods (one autograd pass serves them all), then Eigen-CAM (no gradients, no class).
GRADIENT_METHODS: tuple[str, ...] = ("gradcam", "gradcampp", "layercam", "hirescam")
EIGEN_METHOD = "eigencam"
METHODS: tuple[str, ...] = (*GRADIENT_METHODS, EIGEN_METHOD)
# The method of artefacts whose metadata names none (exported before nets named their own).
DEFAULT_METHOD = "gradcam"


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
