"""Gradio inspection page for the three CIFAR-10 nets, in front of TorchServe or an in-process ONNX Runtime.

python -m gradio_ui [--backend torchserve|local] [--port 7860] [--host 127.0.0.1] [--artifacts artifacts]
"""
