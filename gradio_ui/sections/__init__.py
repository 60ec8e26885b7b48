"""The page's sections, one module each: its layout, its callbacks and its event wiring behind one `build`.

- `predictions`: every net's top-5 for the input image.
- `cams`: every net's class activation map over it.
- `feature_maps`: one net's activations at one layer.
- `compare`: the nets side by side, per-class test accuracy and costs from the server, and REST latency.

`gradio_ui.app` lays out the input, calls each `build` in page order and chains what a section offers
(`common.Section`) onto the input's and the server check's events. Each callback is a plain function of
(backend, inputs) beside its section's `build`, so tests call it directly.
"""
