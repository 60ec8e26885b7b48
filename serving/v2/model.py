"""One exported net as a KServe model: the SDK's `kserve.Model`, predicting through `cifarlens_runtime`."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kserve import Model
from kserve.protocol.infer_type import InferRequest, InferResponse

from cifarlens_runtime.predictor import Predictor, load_metadata
from serving.v2 import tensors


class CifarNet(Model):
    """artifacts/<model>/ (model.onnx, metadata.json) on ONNX Runtime, named as metadata.json names it.

    Decoding and the graph run in the event loop's thread pool, so that one request's images and ONNX Runtime call
    (which lets go of the GIL) do not hold up reading and answering the others.
    """

    def __init__(self, artifact_dir: str | Path, threads: int = 1) -> None:
        self.artifact_dir = Path(artifact_dir)
        super().__init__(load_metadata(self.artifact_dir)["model"])
        self.threads = threads
        self.predictor: Predictor | None = None

    def load(self) -> bool:
        """Open the ONNX Runtime session; the model is ready from here on."""
        self.predictor = Predictor(self.artifact_dir, backend="onnxruntime", threads=self.threads)
        self.ready = True
        return self.ready

    def get_input_types(self) -> list[dict]:
        """The two inputs a request may choose from (see `serving.v2.tensors`)."""
        return [dict(spec) for spec in tensors.INPUT_SPECS]

    def get_output_types(self) -> list[dict]:
        """probabilities, logits and each feature layer, FP32."""
        return tensors.output_specs(self._predictor)

    @property
    def _predictor(self) -> Predictor:
        if self.predictor is None:
            raise RuntimeError(f"{self.name} is not loaded: call load() first")
        return self.predictor

    async def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        """N images in, N answers out, with the outputs the request names (probabilities and logits by default)."""
        return await asyncio.get_running_loop().run_in_executor(None, self._answer, payload)

    def _answer(self, payload: InferRequest) -> InferResponse:
        """Everything that can be refused cheaply (input, shape, outputs, answer size) before any image is decoded."""
        given = tensors.the_input(payload)
        n = tensors.batch_size(given)
        names = tensors.output_names(payload, self._predictor, n)
        images = tensors.batch(given, n)
        return tensors.response(payload, self.name, tensors.forward(self._predictor, images, names))
