"""The torch-free bottom layer of cifarlens: what a request needs between image bytes and a JSON answer.

Constants and class names, preprocessing, the ONNX Runtime predictor, class activation maps, request
handling and the JSON bodies, plus the small file helpers (key files, atomic writes) shared by every layer
above. NumPy, Pillow, matplotlib's colormaps and ONNX Runtime only: training, serving, the TorchServe
handler and the UI import from here, and nothing here imports them. torch is imported only inside a
Grad-CAM call (autograd through the exported TorchScript graph, see `cam`), never at import time.
Archives ship this package whole.
"""
