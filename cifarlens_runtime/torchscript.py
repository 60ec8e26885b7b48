"""The one runner of the exported TorchScript feature model (model.ts): forward runs and autograd.

It serves both the `torchscript` backend of `Predictor` (plain forward runs) and the gradient CAMs, which need
autograd that ONNX Runtime cannot give: one forward and one backward pass return the logits, the asked layers'
activations and the gradient of each image's class logit at them. model.ts is the same graph as the ONNX file,
already returning every inspectable activation, so the net's training code is never needed. torch is imported
only when a runner is made (the TorchServe worker has it anyway); this module imports NumPy alone.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cifarlens_runtime.constants import LOGITS_NAME

if TYPE_CHECKING:
    import torch

DTYPES: tuple[str, ...] = ("float32", "float64")


class TorchScriptModel:
    """model.ts loaded once, its outputs named as in metadata.json (`output_names`: the logits, then each layer).

    Gradient runs switch the graph's profiling executor off: once it has optimised the graph (from the second
    call on) gradients no longer reach intermediate outputs ("appears to not have been used in the graph").
    Unoptimised execution keeps its own plan, so forward runs in between change nothing, and measured on this
    project's nets it is no slower here.

    `dtype="float64"` runs the graph in double precision. The service never does; tests do, so that comparing
    with a reference implementation does not depend on which float32 kernels oneDNN picks for the CPU.
    """

    def __init__(self, path: str | Path, output_names: Sequence[str], threads: int = 1, dtype: str = "float32") -> None:
        import torch

        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} not found: run `make export` (python -m serving.export) first")
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated in torch 2.14.
            module = torch.jit.load(str(path), map_location="cpu").eval()
        self._module = module.double() if dtype == "float64" else module
        self._torch = torch
        self.dtype = np.dtype(dtype)
        self.output_names = list(output_names)

    def _input(self, batch: np.ndarray) -> torch.Tensor:
        """A batch as a tensor of the runner's dtype, sharing memory where it can."""
        return self._torch.from_numpy(np.ascontiguousarray(batch, dtype=self.dtype))

    def run(self, batch: np.ndarray, outputs: Sequence[str]) -> list[np.ndarray]:
        """The named graph outputs (`logits` and/or layer names) of a (N, 3, 32, 32) batch, without autograd."""
        with self._torch.inference_mode():
            outs = self._module(self._input(batch))
        return [outs[self.output_names.index(o)].numpy() for o in outputs]

    def gradients(
        self, batch: np.ndarray, layer: str, targets: Sequence[int | None]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(logits (N, K), activations (N, C, H, W), gradients (N, C, H, W), target indices (N,)) at one layer.

        A target of None is the image's top-1 class.
        """
        logits, acts, grads, chosen = self.every(batch, [layer], targets)
        return logits, acts[layer], grads[layer], chosen

    def every(
        self, batch: np.ndarray, layers: Sequence[str], targets: Sequence[int | None]
    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
        """As `gradients`, for several layers from one forward and one backward pass (benchmarks/cam.py measures
        every layer so): (logits, {layer: activations}, {layer: gradients}, target indices).

        Images of a batch are independent (eval mode), so one backward pass of the summed target logits gives
        every image's own gradient.
        """
        torch = self._torch
        where = [self.output_names.index(layer) for layer in layers]
        with torch.jit.optimized_execution(False), torch.enable_grad():
            outs = self._module(self._input(batch))
            logits, acts = outs[self.output_names.index(LOGITS_NAME)], [outs[i] for i in where]
            top1 = logits.detach().argmax(dim=1)
            chosen = torch.tensor([top1[i] if t is None else t for i, t in enumerate(targets)], dtype=torch.long)
            score = logits.gather(1, chosen[:, None]).sum()
            grads = torch.autograd.grad(score, acts)
        return (
            logits.detach().numpy(),
            {layer: a.detach().numpy() for layer, a in zip(layers, acts, strict=True)},
            {layer: g.numpy() for layer, g in zip(layers, grads, strict=True)},
            chosen.numpy(),
        )
