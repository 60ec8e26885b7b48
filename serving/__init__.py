"""Export, archive and serve the CIFAR-10 nets (the layer above `training` and `cifarlens_runtime`).

`serving.export` turns checkpoints into ONNX and TorchScript artefacts, `serving.archive` packs them
with `serving/handler.py` and the `cifarlens_runtime` package into TorchServe archives, and
`serving.server` starts and stops TorchServe. The request path itself (preprocessing, ONNX Runtime,
JSON) is `cifarlens_runtime`, which the archives ship whole.
"""
