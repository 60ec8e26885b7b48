"""Channel grids for the training code: defined once in the torch-free `cifarlens_runtime.grid`."""

from __future__ import annotations

from cifarlens_runtime.grid import channel_grid, channel_order, mean_overlay, png_bytes

__all__ = ["channel_grid", "channel_order", "mean_overlay", "png_bytes"]
