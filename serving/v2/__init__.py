"""The Open Inference Protocol (v2) server: KServe's Python SDK (`kserve.Model`, `ModelServer`) over the
exported artefacts, REST and gRPC, through `cifarlens_runtime` (ONNX Runtime; no training code, no torch).

`tensors` says what a request holds and what it gets back, `binary` reads the binary tensor data extension on
REST, `errors` says every refusal in words, `model` is one net as a KServe model, `server` puts the SDK's REST and
gRPC servers on one address (loopback by default), `process` runs it in the background for `make serve-v2`.
The SDK lives in its own environment (`make install-v2`, .venv-v2): it pins pandas, psutil and protobuf below
the main one's.
"""
